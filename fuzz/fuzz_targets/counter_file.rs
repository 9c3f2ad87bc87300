//! The client's counter file and the next value it yields: never a panic, never a value
//! below the clock or at or below the stored one.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ruroco_client_core::counter;

fuzz_target!(|input: (&[u8], u128)| {
    let (bytes, now) = input;
    let stored = counter::decode(bytes);
    assert_eq!(stored.is_some(), bytes.len() == 16);
    if let Some(next) = counter::first_value(stored, now) {
        assert!(next >= now);
        assert!(stored.is_none_or(|s| next > s));
    }
});
