//! Every entry of `testdata/protocol-v0.json`: the released ruroco 0.14.x format.

use ruroco_proto::{command_hash, open, seal_with_iv, Key, Plaintext, Wire, IV_LEN, V0_VERSION};
use serde_json::Value;

use crate::kat::{self, bytes, check_accepted, judge_bad_packet, opt_ip, reason, s};

fn entries(name: &str) -> Vec<Value> {
    kat::entries(&kat::load("protocol-v0.json"), name)
}

#[test]
fn plaintexts() {
    for e in entries("plaintexts") {
        let cmd_hash: u64 = s(&e, "cmd_hash").parse().unwrap();
        assert_eq!(command_hash(s(&e, "command")), cmd_hash, "{e}");
        let pt = Plaintext {
            version: V0_VERSION,
            cmd_hash,
            counter: s(&e, "counter").parse().unwrap(),
            strict: e["strict"].as_u64().unwrap() != 0,
            src_ip: opt_ip(&e, "src_ip"),
            dst_ip: opt_ip(&e, "dst_ip").unwrap(),
        };
        let wire = bytes(&e, "plaintext_hex");
        assert_eq!(wire.len(), 57);
        assert_eq!(pt.encode_v0().as_slice(), wire.as_slice(), "{e}");
        assert_eq!(Plaintext::decode_v0(&wire), Some(pt), "{e}");
    }
}

#[test]
fn packets_open_and_reseal_identically() {
    for e in entries("packets") {
        let key = Key::parse(s(&e, "key")).unwrap();
        let packet = bytes(&e, "packet_hex");
        assert_eq!(packet.len(), Wire::V0.datagram_len());
        let pt = open(&key, &packet).unwrap_or_else(|| panic!("does not open: {e}"));
        assert_eq!(pt.version, V0_VERSION);
        assert_eq!(
            pt.encode_v0().as_slice(),
            bytes(&e, "plaintext_hex").as_slice(),
            "{e}"
        );
        let iv: [u8; IV_LEN] = bytes(&e, "iv_hex").try_into().unwrap();
        let sealed = seal_with_iv(&key, Wire::V0, iv, &pt);
        assert_eq!(sealed.wire(), Wire::V0);
        assert_eq!(sealed.as_slice(), packet.as_slice(), "{e}");
    }
}

#[test]
fn packets_are_accepted_by_the_decision() {
    for e in entries("packets") {
        check_accepted(&e, Wire::V0);
    }
}

#[test]
fn bad_packets_are_rejected_for_the_stated_reason() {
    for e in entries("bad_packets") {
        assert_eq!(
            judge_bad_packet(&e, true),
            Err(reason(s(&e, "reject"))),
            "{e}"
        );
    }
}

/// With v0 turned off, every 93-byte datagram is a size rejection, valid or not.
#[test]
fn everything_is_a_size_rejection_with_v0_off() {
    for e in entries("bad_packets").iter().chain(&entries("packets")) {
        assert_eq!(
            judge_bad_packet(e, false),
            Err(ruroco_proto::Reason::Size),
            "{e}"
        );
    }
}
