//! Replies from a (possibly hostile) Redis, and floor store URLs: never a panic, never an
//! allocation beyond the reply bounds.
#![no_main]
#![allow(dead_code, unreachable_pub)]

#[path = "../../crates/ruroco-server/src/redis.rs"]
mod redis;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&[u8], &str)| {
    let (reply, url) = input;
    let _ = redis::read_reply(&mut std::io::Cursor::new(reply), 0);
    if let Ok(endpoint) = redis::Endpoint::parse(url) {
        assert!(!endpoint.host.is_empty());
        assert!(!endpoint.to_string().contains('@'));
    }
});
