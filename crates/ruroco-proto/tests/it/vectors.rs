//! Every entry of `testdata/protocol-v1.json`, the known-answer vectors of protocol v1.

use ruroco_proto::{
    command_hash, open, seal_with_iv, CommanderMessage, Key, KeyError, Plaintext, Reason, Wire,
    IV_LEN,
};
use serde_json::Value;

use crate::kat::{self, bytes, check_accepted, judge_bad_packet, opt_ip, reason, s};

fn vectors() -> Value {
    kat::load("protocol-v1.json")
}

fn entries(name: &str) -> Vec<Value> {
    kat::entries(&vectors(), name)
}

#[test]
fn protocol_version_is_one() {
    assert_eq!(vectors()["protocol_version"], 1);
}

#[test]
fn command_hashes() {
    for e in entries("blake2b_u64") {
        let hash = command_hash(s(&e, "name"));
        assert_eq!(hash.to_string(), s(&e, "hash"), "{e}");
        assert_eq!(format!("{hash:016x}"), s(&e, "hash_hex"), "{e}");
    }
}

#[test]
fn key_strings() {
    for e in entries("keys") {
        let parsed = Key::parse(s(&e, "key"));
        if e["valid"].as_bool().unwrap() {
            let key = parsed.unwrap_or_else(|err| panic!("{e}: {err}"));
            assert_eq!(key.id().to_string(), s(&e, "key_id_hex"));
            let id: [u8; 8] = bytes(&e, "key_id_hex").try_into().unwrap();
            let secret: [u8; 32] = bytes(&e, "aes_key_hex").try_into().unwrap();
            assert!(key.same_secret(&Key::from_parts(ruroco_proto::KeyId(id), &secret)));
            // The canonical string is the trimmed input.
            assert_eq!(key.to_key_string().as_str(), s(&e, "key").trim());
        } else {
            let err = parsed.expect_err(s(&e, "note"));
            assert!(
                matches!(
                    err,
                    KeyError::NotBase64 | KeyError::TooShort(_) | KeyError::WrongLength(_)
                ),
                "{e}"
            );
        }
    }
}

#[test]
fn key_errors_are_specific() {
    let by_note = |note: &str| {
        let e = entries("keys")
            .into_iter()
            .find(|e| e["note"] == note)
            .unwrap();
        Key::parse(s(&e, "key")).unwrap_err()
    };
    assert_eq!(by_note("not base64"), KeyError::NotBase64);
    assert_eq!(by_note("8 bytes only: no AES key"), KeyError::TooShort(8));
    assert_eq!(by_note("shorter than a key id"), KeyError::TooShort(5));
    assert_eq!(by_note("41 bytes"), KeyError::WrongLength(41));
    assert_eq!(by_note("empty"), KeyError::TooShort(0));
}

#[test]
fn plaintexts() {
    for e in entries("plaintexts") {
        let cmd_hash: u64 = s(&e, "cmd_hash").parse().unwrap();
        assert_eq!(command_hash(s(&e, "command")), cmd_hash, "{e}");
        let pt = Plaintext {
            version: 1,
            cmd_hash,
            counter: s(&e, "counter").parse().unwrap(),
            strict: e["strict"].as_u64().unwrap() != 0,
            src_ip: opt_ip(&e, "src_ip"),
            dst_ip: opt_ip(&e, "dst_ip").unwrap(),
        };
        let wire = bytes(&e, "plaintext_hex");
        assert_eq!(pt.encode().as_slice(), wire.as_slice(), "{e}");
        assert_eq!(Plaintext::decode(&wire), Some(pt), "{e}");
    }
}

#[test]
fn packets_open_and_reseal_identically() {
    for e in entries("packets") {
        let key = Key::parse(s(&e, "key")).unwrap();
        let packet = bytes(&e, "packet_hex");
        assert_eq!(packet.len(), Wire::V1.datagram_len());
        let pt = open(&key, &packet).unwrap_or_else(|| panic!("does not open: {e}"));
        assert_eq!(
            pt.encode().as_slice(),
            bytes(&e, "plaintext_hex").as_slice(),
            "{e}"
        );
        let iv: [u8; IV_LEN] = bytes(&e, "iv_hex").try_into().unwrap();
        assert_eq!(
            seal_with_iv(&key, Wire::V1, iv, &pt).as_slice(),
            packet.as_slice(),
            "{e}"
        );
    }
}

#[test]
fn packets_are_accepted_by_the_decision() {
    for e in entries("packets") {
        check_accepted(&e, Wire::V1);
    }
}

/// The vectors' reasons hold for a server that speaks protocol v1 only (`accept_v0 =
/// false`), as the vector file assumes.
#[test]
fn bad_packets_are_rejected_for_the_stated_reason_with_v0_off() {
    for e in entries("bad_packets") {
        let want = reason(s(&e, "reject"));
        assert_eq!(judge_bad_packet(&e, false), Err(want), "{e}");
    }
}

/// With v0 accepted (the default), the same reasons hold except for the 93-byte packet:
/// that is the length of a v0 datagram, so it gets as far as opening and fails there.
#[test]
fn bad_packets_with_v0_accepted() {
    let mut seen_93 = false;
    for e in entries("bad_packets") {
        let packet = bytes(&e, "packet_hex");
        let want = if packet.len() == Wire::V0.datagram_len() {
            seen_93 = true;
            Reason::Auth
        } else {
            reason(s(&e, "reject"))
        };
        assert_eq!(judge_bad_packet(&e, true), Err(want), "{e}");
    }
    assert!(seen_93, "the v1 vectors have a 93-byte bad packet");
}

#[test]
fn commander_messages() {
    for e in entries("commander_data") {
        let msg = CommanderMessage {
            cmd_hash: s(&e, "cmd_hash").parse().unwrap(),
            ip: opt_ip(&e, "ip").unwrap(),
        };
        let wire = bytes(&e, "bytes_hex");
        assert_eq!(msg.encode().as_slice(), wire.as_slice(), "{e}");
        assert_eq!(CommanderMessage::decode(&wire), Ok(msg), "{e}");
    }
}
