//! Replies from a (possibly hostile) Redis, and floor store URLs: never a panic, never an
//! allocation beyond the reply bounds.
#![no_main]
#![allow(dead_code, unreachable_pub)]

#[path = "../../crates/ruroco-server/src/redis.rs"]
mod redis;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&[u8], &str)| {
    let (reply, url) = input;
    for max in [0, 2, 64] {
        if let Ok(redis::Reply::Array(Some(items))) =
            redis::read_reply(&mut std::io::Cursor::new(reply), max)
        {
            assert!(items.len() <= max);
            for item in items {
                assert!(matches!(item, redis::Reply::Int(_) | redis::Reply::Bulk(_)));
                if let redis::Reply::Bulk(Some(b)) = item {
                    assert!(b.len() <= redis::MAX_BULK);
                }
            }
        }
    }
    if let Ok(endpoint) = redis::Endpoint::parse(url) {
        assert!(!endpoint.to_string().contains('@'));
    }
});
