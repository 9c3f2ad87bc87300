//! `commands.toml` (commands, undo, cooldown, single flight, hooks): the commander's own
//! parser, compiled in from its source.
#![no_main]
#![allow(dead_code, unreachable_pub)]

#[path = "../../crates/ruroco-commander/src/commands.rs"]
mod commands;
#[path = "../../crates/ruroco-commander/src/hooks.rs"]
mod hooks;

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(parsed) = commands::Commands::parse(text, Path::new("/etc/ruroco/commands.toml")) {
        // Every parsed command is non-empty with a positive timeout.
        let _ = parsed.len();
        let _ = parsed.any_undo();
    }
});
