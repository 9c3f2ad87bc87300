//! The commander's pending-undo state file: decoding never panics, and what decodes
//! round-trips through the schedule and back.
#![no_main]
#![allow(dead_code, unreachable_pub)]

#[path = "../../crates/ruroco-commander/src/undo.rs"]
mod undo;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(undos) = undo::decode(text) {
        let schedule = undo::Schedule::from_pending(undos);
        if let Ok(encoded) = schedule.encode() {
            let again = undo::decode(&encoded).expect("an encoded schedule decodes");
            assert_eq!(again, schedule.list());
        }
    }
});
