//! The client's counter file and the next value it yields: never a panic, never a value
//! below the clock or at or below the stored one.
#![no_main]
#![allow(dead_code, unreachable_pub)]

#[path = "../../crates/ruroco-client/src/counter.rs"]
mod counter;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&[u8], u128)| {
    let (bytes, now) = input;
    let stored = counter::decode(bytes);
    assert_eq!(stored.is_some(), bytes.len() == 16);
    if let Some(next) = counter::first_value(stored, now) {
        assert!(next >= now);
        assert!(stored.is_none_or(|s| next > s));
    }
});
