use super::*;
use crate::Spend;
use crate::{seal_with_iv, Plaintext, Wire};

const NOW: u128 = 1_800_000_000 * NANOS_PER_SEC;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

struct Setup {
    keys: Keyring,
    floors: FloorTable,
    policy: Policy,
    key: Key,
}

fn setup() -> Setup {
    let key = Key::from_parts(KeyId(*b"unittest"), &[9; 32]);
    let mut keys = Keyring::new();
    keys.insert(Key::from_parts(KeyId(*b"unittest"), &[9; 32]))
        .unwrap();
    let mut floors = FloorTable::new();
    floors.seed(keys.ids(), NOW - NANOS_PER_SEC);
    let policy = Policy {
        ips: vec![ip("192.0.2.10"), ip("2001:db8::10")],
        max_clock_skew_secs: 60,
        accept_v0: true,
    };
    Setup {
        keys,
        floors,
        policy,
        key,
    }
}

fn plain(counter: u128) -> Plaintext {
    Plaintext {
        version: 1,
        cmd_hash: 77,
        counter,
        strict: true,
        src_ip: None,
        dst_ip: ip("192.0.2.10"),
    }
}

fn run(s: &Setup, pt: &Plaintext, source: &str) -> Result<Accepted, Reason> {
    run_wire(s, Wire::V1, pt, source)
}

fn run_wire(s: &Setup, wire: Wire, pt: &Plaintext, source: &str) -> Result<Accepted, Reason> {
    let packet = seal_with_iv(&s.key, wire, [1; 12], pt);
    decide(&s.keys, &s.floors, &s.policy, NOW, ip(source), &packet)
}

#[test]
fn both_formats_are_accepted_and_named() {
    let s = setup();
    for wire in Wire::ALL {
        let got = run_wire(&s, wire, &plain(NOW), "203.0.113.5").unwrap();
        assert_eq!(got.wire, wire);
        assert_eq!(got.counter, NOW);
        assert_eq!(got.message.cmd_hash, 77);
    }
}

#[test]
fn v0_is_a_size_rejection_when_turned_off() {
    let mut s = setup();
    s.policy.accept_v0 = false;
    assert_eq!(
        run_wire(&s, Wire::V0, &plain(NOW), "203.0.113.5"),
        Err(Reason::Size)
    );
    assert!(run_wire(&s, Wire::V1, &plain(NOW), "203.0.113.5").is_ok());
}

#[test]
fn both_formats_share_one_floor() {
    let mut s = setup();
    let accepted = run_wire(&s, Wire::V1, &plain(NOW), "203.0.113.5").unwrap();
    s.floors.set(accepted.key_id, accepted.counter);
    assert_eq!(
        run_wire(&s, Wire::V0, &plain(NOW), "203.0.113.5"),
        Err(Reason::Replay)
    );
    let accepted = run_wire(&s, Wire::V0, &plain(NOW + 5), "203.0.113.5").unwrap();
    s.floors.set(accepted.key_id, accepted.counter);
    assert_eq!(
        run_wire(&s, Wire::V1, &plain(NOW + 4), "203.0.113.5"),
        Err(Reason::Replay)
    );
}

#[test]
fn a_format_sealed_with_the_other_cipher_does_not_authenticate() {
    let s = setup();
    // A v1 datagram cut to 93 bytes is the length of v0 but not sealed with AES-GCM.
    let packet = seal_with_iv(&s.key, Wire::V1, [1; 12], &plain(NOW));
    let cut = &packet[..Wire::V0.datagram_len()];
    assert_eq!(
        decide(&s.keys, &s.floors, &s.policy, NOW, ip("203.0.113.5"), cut),
        Err(Reason::Auth)
    );
}

#[test]
fn valid_datagram_forwards_the_real_source() {
    let s = setup();
    let got = run(&s, &plain(NOW), "203.0.113.5").unwrap();
    assert_eq!(
        got.message,
        CommanderMessage {
            cmd_hash: 77,
            ip: ip("203.0.113.5")
        }
    );
    assert_eq!(got.counter, NOW);
}

#[test]
fn equal_to_floor_is_a_replay_and_one_above_is_not() {
    let s = setup();
    let floor = NOW - NANOS_PER_SEC;
    assert_eq!(run(&s, &plain(floor), "203.0.113.5"), Err(Reason::Replay));
    assert!(run(&s, &plain(floor + 1), "203.0.113.5").is_ok());
}

#[test]
fn unseeded_key_is_refused() {
    let mut s = setup();
    s.floors = FloorTable::new();
    assert_eq!(run(&s, &plain(NOW), "203.0.113.5"), Err(Reason::Replay));
}

#[test]
fn skew_bounds_the_future() {
    let s = setup();
    let edge = NOW + 60 * NANOS_PER_SEC;
    assert!(run(&s, &plain(edge), "203.0.113.5").is_ok());
    assert_eq!(
        run(&s, &plain(edge + 1), "203.0.113.5"),
        Err(Reason::Future)
    );
}

#[test]
fn dst_ip_must_be_ours_mapped_or_not() {
    let s = setup();
    let mut pt = plain(NOW);
    pt.dst_ip = ip("192.0.2.11");
    assert_eq!(run(&s, &pt, "203.0.113.5"), Err(Reason::DstIp));
    pt.dst_ip = ip("::ffff:192.0.2.10");
    assert!(run(&s, &pt, "203.0.113.5").is_ok());
    pt.dst_ip = ip("2001:db8::10");
    assert!(run(&s, &pt, "203.0.113.5").is_ok());
}

#[test]
fn strict_claim_must_match_and_permissive_forwards_the_claim() {
    let s = setup();
    let mut pt = plain(NOW);
    pt.src_ip = Some(ip("198.51.100.7"));
    assert_eq!(run(&s, &pt, "203.0.113.5"), Err(Reason::SrcIp));
    assert_eq!(
        run(&s, &pt, "::ffff:198.51.100.7").unwrap().message.ip,
        ip("198.51.100.7")
    );
    pt.strict = false;
    assert_eq!(
        run(&s, &pt, "203.0.113.5").unwrap().message.ip,
        ip("198.51.100.7")
    );
}

#[test]
fn version_is_checked_after_authentication() {
    let s = setup();
    let mut pt = plain(NOW);
    pt.version = 2;
    assert_eq!(run(&s, &pt, "203.0.113.5"), Err(Reason::Version));
    // v0 carries no version byte, so there is nothing to refuse.
    assert!(run_wire(&s, Wire::V0, &pt, "203.0.113.5").is_ok());
}

#[test]
fn keyring_refuses_same_id_or_same_secret() {
    let mut keys = Keyring::new();
    keys.insert(Key::from_parts(KeyId([1; 8]), &[1; 32]))
        .unwrap();
    assert!(keys
        .insert(Key::from_parts(KeyId([1; 8]), &[2; 32]))
        .is_err());
    assert!(keys
        .insert(Key::from_parts(KeyId([3; 8]), &[1; 32]))
        .is_err());
    assert!(keys
        .insert(Key::from_parts(KeyId([3; 8]), &[3; 32]))
        .is_ok());
    assert_eq!(keys.len(), 2);
}

#[test]
fn seeding_keeps_higher_floors() {
    let mut floors = FloorTable::new();
    floors.set(KeyId([1; 8]), NOW + 5);
    floors.seed([KeyId([1; 8]), KeyId([2; 8])], NOW);
    assert_eq!(floors.get(&KeyId([1; 8])), Some(NOW + 5));
    assert_eq!(floors.get(&KeyId([2; 8])), Some(NOW));
}

#[test]
fn reason_names_are_the_spec_names() {
    let names: Vec<_> = Reason::ALL.iter().map(|r| r.as_str()).collect();
    assert_eq!(
        names,
        [
            "size",
            "unknown_key",
            "auth",
            "version",
            "replay",
            "future",
            "dst_ip",
            "src_ip",
            "rate",
            "not_allowed"
        ]
    );
}

#[test]
fn a_refused_authentic_datagram_spends_its_counter_and_never_passes_later() {
    let mut s = setup();
    let ahead = NOW + 120 * NANOS_PER_SEC;
    let packet = seal_with_iv(&s.key, Wire::V1, [3; 12], &plain(ahead));
    let at = |s: &Setup, now| {
        judge(
            &s.keys,
            &s.floors,
            &s.policy,
            now,
            ip("198.51.100.7"),
            &packet,
        )
    };
    let refusal = at(&s, NOW).unwrap_err();
    assert_eq!(refusal.reason, Reason::Future);
    assert_eq!(
        refusal.spend,
        Some(Spend::Remember(KeyId(*b"unittest"), ahead))
    );
    // Without spending, the clock catching up makes it acceptable: the defect.
    assert!(at(&s, ahead).is_ok());
    s.floors.spend(refusal.spend.unwrap());
    assert_eq!(at(&s, ahead).unwrap_err().reason, Reason::Replay);
    assert_eq!(
        s.floors.get(&KeyId(*b"unittest")),
        Some(NOW - NANOS_PER_SEC)
    );
    // A counter below it (a client reseeded after fixing its clock) still passes.
    assert!(run(&s, &plain(NOW), "203.0.113.5").is_ok());

    // Refusals within the skew make the counter the floor.
    let mut wrong_dst = plain(NOW + 5);
    wrong_dst.dst_ip = ip("192.0.2.99");
    let packet = seal_with_iv(&s.key, Wire::V1, [4; 12], &wrong_dst);
    let refusal = judge(
        &s.keys,
        &s.floors,
        &s.policy,
        NOW,
        ip("203.0.113.5"),
        &packet,
    )
    .unwrap_err();
    assert_eq!(refusal.reason, Reason::DstIp);
    assert_eq!(
        refusal.spend,
        Some(Spend::Floor(KeyId(*b"unittest"), NOW + 5))
    );
    let mut claim = plain(NOW + 6);
    claim.src_ip = Some(ip("203.0.113.9"));
    let packet = seal_with_iv(&s.key, Wire::V1, [5; 12], &claim);
    let refusal = judge(
        &s.keys,
        &s.floors,
        &s.policy,
        NOW,
        ip("203.0.113.5"),
        &packet,
    )
    .unwrap_err();
    assert_eq!(refusal.reason, Reason::SrcIp);
    assert_eq!(
        refusal.spend,
        Some(Spend::Floor(KeyId(*b"unittest"), NOW + 6))
    );
    // Unauthenticated refusals and replays spend nothing.
    let mut junk = packet.to_vec();
    junk[40] ^= 1;
    let refusal = judge(&s.keys, &s.floors, &s.policy, NOW, ip("203.0.113.5"), &junk).unwrap_err();
    assert_eq!((refusal.reason, refusal.spend), (Reason::Auth, None));
    let refusal = judge(
        &s.keys,
        &s.floors,
        &s.policy,
        NOW,
        ip("203.0.113.9"),
        &seal_with_iv(&s.key, Wire::V1, [6; 12], &plain(NOW - NANOS_PER_SEC)),
    )
    .unwrap_err();
    assert_eq!((refusal.reason, refusal.spend), (Reason::Replay, None));
}
