//! Cost of the server's per-datagram decision for each kind of traffic.
//!
//! `cargo bench -p ruroco-proto --bench decide` prints the time per datagram for junk of
//! the wrong size, an unknown key id, a bad tag, a replay and a valid datagram of each
//! format.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::hint::black_box;
use std::net::IpAddr;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use ruroco_proto::{
    command_hash, decide, seal_with_iv, FloorTable, Key, KeyId, Keyring, Plaintext, Policy, Wire,
    NANOS_PER_SEC,
};

const NOW: u128 = 1_800_000_000 * NANOS_PER_SEC;

fn bench_decide(c: &mut Criterion) {
    let mut keys = Keyring::new();
    // A few keys loaded, as on a server with several clients.
    for n in 0..8u8 {
        keys.insert(Key::from_parts(KeyId([n; 8]), &[n; 32]))
            .unwrap();
    }
    let key = Key::from_parts(KeyId([3; 8]), &[3; 32]);
    let mut floors = FloorTable::new();
    floors.seed(keys.ids(), NOW - NANOS_PER_SEC);
    let policy = Policy {
        ips: vec!["192.0.2.1".parse().unwrap()],
        max_clock_skew_secs: 3600,
        accept_v0: true,
    };
    let source: IpAddr = "203.0.113.9".parse().unwrap();
    let plain = |counter| Plaintext {
        version: 1,
        cmd_hash: command_hash("default"),
        counter,
        strict: true,
        src_ip: None,
        dst_ip: "192.0.2.1".parse().unwrap(),
    };
    let valid = seal_with_iv(&key, Wire::V1, [1; 12], &plain(NOW)).to_vec();
    let valid_v0 = seal_with_iv(&key, Wire::V0, [1; 12], &plain(NOW)).to_vec();
    let replay = seal_with_iv(&key, Wire::V1, [2; 12], &plain(NOW - 2 * NANOS_PER_SEC)).to_vec();
    let mut bad_tag = valid.clone();
    bad_tag[30] ^= 1;
    let mut unknown = valid.clone();
    unknown[0] = 0xee;
    let wrong_size = [0u8; 60];

    let mut group = c.benchmark_group("decide");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for (name, bytes) in [
        ("wrong_size", &wrong_size[..]),
        ("unknown_key", &unknown[..]),
        ("bad_tag", &bad_tag[..]),
        ("replay", &replay[..]),
        ("valid", &valid[..]),
        ("valid_v0", &valid_v0[..]),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| decide(&keys, &floors, &policy, NOW, source, black_box(bytes)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_decide);
criterion_main!(benches);
