//! `commands.toml` (commands, undo, cooldown, single flight, hooks): the commander's own
//! parser, compiled in from its source.
#![no_main]
#![allow(dead_code, unreachable_pub)]

#[path = "../../crates/ruroco-commander/src/commands.rs"]
mod commands;
#[path = "../../crates/ruroco-commander/src/hooks.rs"]
mod hooks;
#[path = "../../crates/ruroco-commander/src/values.rs"]
mod values;

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    // The property: any text gives a set of commands or an error naming the file, never
    // a panic.
    match commands::Commands::parse(text, Path::new("/etc/ruroco/commands.toml")) {
        Ok(parsed) => {
            let _ = parsed.any_undo();
        }
        Err(e) => assert!(e.to_string().contains("/etc/ruroco/commands.toml"), "{e}"),
    }
});
