//! Reading the known-answer vector files of `testdata/`.

use std::net::IpAddr;

use ruroco_proto::{FloorTable, Key, Keyring, Policy, Reason};
use serde_json::Value;

/// The parsed vector file `testdata/<name>`.
pub(crate) fn load(name: &str) -> Value {
    let path = format!("{}/../../testdata/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("vector file is part of the repository");
    serde_json::from_str(&text).expect("vector file is JSON")
}

/// The non-empty array `section` of a vector file.
pub(crate) fn entries(file: &Value, section: &str) -> Vec<Value> {
    let v = file[section].as_array().cloned().unwrap_or_default();
    assert!(!v.is_empty(), "no vectors under {section}");
    v
}

pub(crate) fn s<'a>(v: &'a Value, field: &str) -> &'a str {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} missing in {v}"))
}

pub(crate) fn bytes(v: &Value, field: &str) -> Vec<u8> {
    hex::decode(s(v, field)).unwrap()
}

pub(crate) fn opt_ip(v: &Value, field: &str) -> Option<IpAddr> {
    v[field].as_str().map(|s| s.parse().unwrap())
}

/// A vector's `reject` name as a [`Reason`].
pub(crate) fn reason(name: &str) -> Reason {
    match name {
        "size" => Reason::Size,
        "unknown_key" => Reason::UnknownKey,
        "authentication" | "auth" => Reason::Auth,
        "version" => Reason::Version,
        other => panic!("unknown reject reason {other}"),
    }
}

/// What `decide` says about a packet vector: its key loaded with floor 0, every
/// counter in the past, 127.0.0.1 as the only address, and v0 accepted or not.
pub(crate) fn judge_bad_packet(
    e: &Value,
    accept_v0: bool,
) -> Result<ruroco_proto::Accepted, Reason> {
    let key = Key::parse(s(e, "key")).unwrap();
    let id = key.id();
    let mut keys = Keyring::new();
    keys.insert(key).unwrap();
    let mut floors = FloorTable::new();
    floors.set(id, 0);
    let policy = Policy {
        ips: vec!["127.0.0.1".parse().unwrap()],
        max_clock_skew_secs: 3600,
        accept_v0,
    };
    ruroco_proto::decide(
        &keys,
        &floors,
        &policy,
        u128::MAX,
        "127.0.0.1".parse().unwrap(),
        &bytes(e, "packet_hex"),
    )
}

/// Checks that a packet vector is accepted by `decide` and that the same counter is a
/// replay once the floor has moved to it.
pub(crate) fn check_accepted(e: &Value, wire: ruroco_proto::Wire) {
    let key = Key::parse(s(e, "key")).unwrap();
    let packet = bytes(e, "packet_hex");
    let pt = ruroco_proto::open(&key, &packet).unwrap();
    let id = key.id();
    let mut keys = Keyring::new();
    keys.insert(key).unwrap();
    let mut floors = FloorTable::new();
    floors.set(id, pt.counter.saturating_sub(1));
    let policy = Policy {
        ips: vec![pt.dst_ip],
        max_clock_skew_secs: 0,
        accept_v0: true,
    };
    let source = pt.src_ip.unwrap_or("127.0.0.1".parse().unwrap());
    let decide = |floors: &FloorTable| {
        ruroco_proto::decide(&keys, floors, &policy, pt.counter, source, &packet)
    };
    if pt.counter == 0 {
        assert_eq!(decide(&floors), Err(Reason::Replay), "{e}");
        return;
    }
    let accepted = decide(&floors).unwrap_or_else(|r| panic!("{r:?}: {e}"));
    assert_eq!(accepted.wire, wire, "{e}");
    assert_eq!(accepted.counter, pt.counter);
    assert_eq!(
        accepted.message,
        ruroco_proto::CommanderMessage {
            cmd_hash: pt.cmd_hash,
            ip: source
        }
    );
    floors.set(id, pt.counter);
    assert_eq!(decide(&floors), Err(Reason::Replay), "{e}");
}
