//! Crash consistency: a stream of valid datagrams, `kill -9` of the server at a point a
//! seed picks, a restart on the same files, and every datagram whose command ran sent
//! again: none may run twice, and the floor file is always readable.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::time::Duration;

use nix::sys::signal::Signal;
use ruroco_proto::{command_hash, Plaintext};

use crate::util::{now_nanos, Fixture};

const FAST: &str = "max_requests_per_second = 100000\nmax_requests_per_second_global = 100000";
/// Datagrams per seed (sent 1 ms apart: the kill lands somewhere in the stream).
const STREAM: u32 = 300;

/// The `i`-th datagram claims source 10.(i>>8).(i&255).1, so the commander message (which
/// carries that address) says which datagram it was.
fn claimed(i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, (i >> 8) as u8, (i & 255) as u8, 1))
}

fn xorshift(mut x: u64) -> u64 {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
}

#[test]
fn kill_9_at_any_point_never_runs_a_datagram_twice() {
    let mut ran_per_seed = Vec::new();
    for seed in [1u64, 7, 42, 1234, 99_999] {
        let fx = Fixture::with_config(FAST);
        let inbox = fx.inbox();
        // A new key's floor is the server's start: counters come after it.
        let server = fx.start();
        let base = now_nanos();
        let packets: Vec<Vec<u8>> = (0..STREAM)
            .map(|i| {
                fx.packet_with(Plaintext {
                    version: 1,
                    cmd_hash: command_hash("a"),
                    counter: base + u128::from(i),
                    strict: false,
                    src_ip: Some(claimed(i)),
                    dst_ip: "127.0.0.1".parse().unwrap(),
                })
                .to_vec()
            })
            .collect();
        let addr = server.addr;
        let kill_after = Duration::from_millis(20 + xorshift(seed) % 250);
        let to_send = packets.clone();
        let sender = std::thread::spawn(move || {
            let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
            for p in &to_send {
                let _ = sock.send_to(p, addr);
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        std::thread::sleep(kill_after);
        server.signal(Signal::SIGKILL);
        sender.join().unwrap();
        let mut ran = HashSet::new();
        while let Some(m) = inbox.recv(Duration::from_millis(300)) {
            assert!(
                ran.insert(m.ip),
                "seed {seed}: {} ran twice before the kill",
                m.ip
            );
        }
        drop(server);
        // The floor file is whole: never empty, never a torn single copy.
        let floors = std::fs::read(fx.path().join("floors.bin")).unwrap();
        assert!(
            !floors.is_empty() && floors.len().is_multiple_of(4096),
            "seed {seed}: floor file of {} bytes",
            floors.len()
        );
        // Restart on the same files and send again everything that ran (and the rest).
        let server = fx.start();
        for p in &packets {
            server.send(p);
        }
        while let Some(m) = inbox.recv(Duration::from_millis(500)) {
            assert!(
                !ran.contains(&m.ip),
                "seed {seed} (kill after {kill_after:?}): {} ran again after the restart",
                m.ip
            );
        }
        ran_per_seed.push(ran.len());
        drop(server);
    }
    // The kills landed inside the streams: something had run, and not everything.
    assert!(
        ran_per_seed.iter().any(|n| *n > 0 && *n < STREAM as usize),
        "{ran_per_seed:?}"
    );
}
