//! Every entry of `testdata/protocol-v1.json`, the known-answer vectors of protocol v1.

use std::net::IpAddr;

use ruroco_proto::{
    command_hash, decide, open, seal_with_iv, CommanderMessage, FloorTable, Key, KeyError, Keyring,
    Plaintext, Policy, Reason, DATAGRAM_LEN, IV_LEN,
};
use serde_json::Value;

fn vectors() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/protocol-v1.json"
    );
    let text = std::fs::read_to_string(path).expect("vector file is part of the repository");
    serde_json::from_str(&text).expect("vector file is JSON")
}

fn entries(name: &str) -> Vec<Value> {
    let v = vectors()[name].as_array().cloned().unwrap_or_default();
    assert!(!v.is_empty(), "no vectors under {name}");
    v
}

fn s<'a>(v: &'a Value, field: &str) -> &'a str {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} missing in {v}"))
}

fn bytes(v: &Value, field: &str) -> Vec<u8> {
    hex::decode(s(v, field)).unwrap()
}

fn opt_ip(v: &Value, field: &str) -> Option<IpAddr> {
    v[field].as_str().map(|s| s.parse().unwrap())
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
        assert_eq!(packet.len(), DATAGRAM_LEN);
        let pt = open(&key, &packet).unwrap_or_else(|| panic!("does not open: {e}"));
        assert_eq!(
            pt.encode().as_slice(),
            bytes(&e, "plaintext_hex").as_slice(),
            "{e}"
        );
        let iv: [u8; IV_LEN] = bytes(&e, "iv_hex").try_into().unwrap();
        assert_eq!(
            seal_with_iv(&key, iv, &pt).as_slice(),
            packet.as_slice(),
            "{e}"
        );
    }
}

#[test]
fn packets_are_accepted_by_the_decision() {
    for e in entries("packets") {
        let key = Key::parse(s(&e, "key")).unwrap();
        let packet = bytes(&e, "packet_hex");
        let pt = open(&key, &packet).unwrap();
        let id = key.id();
        let mut keys = Keyring::new();
        keys.insert(key).unwrap();
        let mut floors = FloorTable::new();
        floors.set(id, pt.counter.saturating_sub(1));
        let policy = Policy {
            ips: vec![pt.dst_ip],
            max_clock_skew_secs: 0,
        };
        let source = pt.src_ip.unwrap_or("127.0.0.1".parse().unwrap());
        let got = decide(&keys, &floors, &policy, pt.counter, source, &packet);
        if pt.counter == 0 {
            assert_eq!(got, Err(Reason::Replay), "{e}");
            continue;
        }
        let accepted = got.unwrap_or_else(|r| panic!("{r:?}: {e}"));
        assert_eq!(accepted.counter, pt.counter);
        assert_eq!(
            accepted.message,
            CommanderMessage {
                cmd_hash: pt.cmd_hash,
                ip: source
            }
        );
        // The same counter again is a replay once the floor has moved to it.
        floors.set(id, pt.counter);
        let again = decide(&keys, &floors, &policy, pt.counter, source, &packet);
        assert_eq!(again, Err(Reason::Replay), "{e}");
    }
}

#[test]
fn bad_packets_are_rejected_for_the_stated_reason() {
    for e in entries("bad_packets") {
        let key = Key::parse(s(&e, "key")).unwrap();
        let id = key.id();
        let mut keys = Keyring::new();
        keys.insert(key).unwrap();
        let mut floors = FloorTable::new();
        floors.set(id, 0);
        let policy = Policy {
            ips: vec!["127.0.0.1".parse().unwrap()],
            max_clock_skew_secs: 3600,
        };
        let want = match s(&e, "reject") {
            "size" => Reason::Size,
            "unknown_key" => Reason::UnknownKey,
            "authentication" | "auth" => Reason::Auth,
            "version" => Reason::Version,
            other => panic!("unknown reject reason {other}"),
        };
        let got = decide(
            &keys,
            &floors,
            &policy,
            u128::MAX,
            "127.0.0.1".parse().unwrap(),
            &bytes(&e, "packet_hex"),
        );
        assert_eq!(got, Err(want), "{e}");
    }
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
