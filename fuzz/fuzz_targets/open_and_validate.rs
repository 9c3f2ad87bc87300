//! Arbitrary bytes from an arbitrary source into the server's whole decision, with v0
//! accepted or not. Inputs of 93 and 94 bytes reach the AES-GCM and AES-GCM-SIV open paths.
#![no_main]

use std::net::{IpAddr, Ipv6Addr};

use libfuzzer_sys::fuzz_target;
use ruroco_proto::{decide, FloorTable, Key, KeyId, Keyring, Policy, Wire};

fuzz_target!(|input: (&[u8], [u8; 16], u128, bool)| {
    let (bytes, source, now, accept_v0) = input;
    let mut keys = Keyring::new();
    // The id most fuzz inputs will not hit, and one they find quickly, so both the
    // unknown-key path and the AES-GCM-SIV open path get exercised.
    let _ = keys.insert(Key::from_parts(KeyId(*b"ruroco!!"), &[7; 32]));
    let _ = keys.insert(Key::from_parts(KeyId([0; 8]), &[8; 32]));
    let mut floors = FloorTable::new();
    floors.seed(keys.ids(), now / 2);
    let policy = Policy {
        ips: vec!["127.0.0.1".parse().unwrap_or(IpAddr::V6(Ipv6Addr::LOCALHOST))],
        max_clock_skew_secs: 3600,
        accept_v0,
    };
    let source = IpAddr::V6(Ipv6Addr::from(source));
    if let Ok(accepted) = decide(&keys, &floors, &policy, now, source, bytes) {
        // Only a correctly sealed datagram may pass; random bytes never authenticate.
        assert!(accepted.counter > now / 2);
        assert_eq!(accepted.wire.datagram_len(), bytes.len());
        assert!(accepted.wire == Wire::V1 || accept_v0);
    }
});
