//! Property tests: round trips and tamper detection over arbitrary inputs.

use std::net::{IpAddr, Ipv6Addr};

use proptest::prelude::*;
use ruroco_ipc::normalize_ip;
use ruroco_proto::{
    decide, open, seal_with_iv, FloorTable, Key, KeyId, Keyring, Plaintext, Policy, Reason, Wire,
    V0_VERSION,
};

fn any_ip() -> impl Strategy<Value = IpAddr> {
    any::<[u8; 16]>().prop_map(|b| normalize_ip(IpAddr::V6(Ipv6Addr::from(b))))
}

fn any_plaintext() -> impl Strategy<Value = Plaintext> {
    (
        any::<u8>(),
        any::<u64>(),
        any::<u128>(),
        any::<bool>(),
        proptest::option::of(any_ip().prop_filter("zero means none", |ip| !ip.is_unspecified())),
        any_ip(),
    )
        .prop_map(
            |(version, cmd_hash, counter, strict, src_ip, dst_ip)| Plaintext {
                version,
                cmd_hash,
                counter,
                strict,
                src_ip,
                dst_ip,
            },
        )
}

fn test_key() -> Key {
    Key::from_parts(KeyId(*b"proptest"), &[0x42; 32])
}

proptest! {
    #[test]
    fn plaintext_round_trips(pt in any_plaintext()) {
        prop_assert_eq!(Plaintext::decode(&pt.encode()), Some(pt));
    }

    #[test]
    fn v0_plaintext_round_trips(pt in any_plaintext()) {
        let want = Plaintext { version: V0_VERSION, ..pt };
        prop_assert_eq!(Plaintext::decode_v0(&pt.encode_v0()), Some(want));
    }

    #[test]
    fn sealed_plaintext_opens(pt in any_plaintext(), iv: [u8; 12]) {
        let key = test_key();
        let packet = seal_with_iv(&key, Wire::V1, iv, &pt);
        prop_assert_eq!(packet.len(), Wire::V1.datagram_len());
        prop_assert_eq!(open(&key, &packet), Some(pt));
        let packet = seal_with_iv(&key, Wire::V0, iv, &pt);
        prop_assert_eq!(packet.len(), Wire::V0.datagram_len());
        prop_assert_eq!(open(&key, &packet), Some(Plaintext { version: V0_VERSION, ..pt }));
    }

    #[test]
    fn any_flipped_bit_is_rejected(
        pt in any_plaintext(),
        iv: [u8; 12],
        wire in proptest::sample::select(Wire::ALL.to_vec()),
        bit in 0..Wire::V1.datagram_len() * 8,
    ) {
        let key = test_key();
        let id = key.id();
        let mut packet = seal_with_iv(&key, wire, iv, &pt).to_vec();
        let bit = bit % (packet.len() * 8);
        packet[bit / 8] ^= 1 << (bit % 8);
        prop_assert_eq!(open(&key, &packet), None);
        let mut keys = Keyring::new();
        keys.insert(key).unwrap();
        let mut floors = FloorTable::new();
        floors.set(id, 0);
        let policy = Policy { ips: vec![pt.dst_ip], max_clock_skew_secs: u64::MAX, accept_v0: true };
        let got = decide(&keys, &floors, &policy, u128::MAX, pt.dst_ip, &packet);
        // A flip in the key id makes it unknown; anywhere else it fails to authenticate.
        let want = if bit < 64 { Reason::UnknownKey } else { Reason::Auth };
        prop_assert_eq!(got, Err(want));
    }

    #[test]
    fn arbitrary_bytes_never_accepted(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let key = test_key();
        let id = key.id();
        let mut keys = Keyring::new();
        keys.insert(key).unwrap();
        let mut floors = FloorTable::new();
        floors.set(id, 0);
        let policy = Policy { ips: vec!["127.0.0.1".parse().unwrap()], max_clock_skew_secs: 3600, accept_v0: true };
        let got = decide(&keys, &floors, &policy, u128::MAX, "127.0.0.1".parse().unwrap(), &bytes);
        prop_assert!(got.is_err());
    }
}

proptest! {
    /// The hand-written BLAKE2b-64 (kept crypto-free for the commander) agrees with the
    /// RustCrypto implementation for any name, across block boundaries.
    #[test]
    fn command_hash_matches_rustcrypto_blake2b(name in ".{0,300}") {
        use blake2::digest::consts::U8;
        use blake2::{Blake2b, Digest};
        let want = u64::from_be_bytes(Blake2b::<U8>::digest(name.as_bytes()).into());
        prop_assert_eq!(ruroco_proto::command_hash(&name), want);
    }
}
