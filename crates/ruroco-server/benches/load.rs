//! End-to-end figures for the real server binary over loopback.
//!
//! `cargo bench -p ruroco-server --bench load` prints:
//! - junk: how many of a burst of junk datagrams (wrong size, unknown key, bad tag) from
//!   many sources the server judged, and at what rate;
//! - valid: latency from sending a valid datagram to the commander message arriving
//!   (including the durable floor write), median and 99th percentile.
//!
//! Everything stays on 127.0.0.0/8, and every loop is bounded in count and time.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::Read;
use std::net::UdpSocket;
use std::os::unix::net::UnixListener;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ruroco_proto::{command_hash, seal, Key, Plaintext, Wire};
use ruroco_testkit::Daemon;

const JUNK: usize = 300_000;
const VALID: usize = 300;

fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn plain(counter: u128) -> Plaintext {
    Plaintext {
        version: 1,
        cmd_hash: command_hash("default"),
        counter,
        strict: true,
        src_ip: None,
        dst_ip: "127.0.0.1".parse().unwrap(),
    }
}

fn counter(log: &str, name: &str) -> u64 {
    let line = log.lines().rev().find(|l| l.contains("counters:")).unwrap();
    let field = line
        .split_whitespace()
        .find(|w| w.starts_with(&format!("{name}=")))
        .unwrap();
    field.split('=').nth(1).unwrap().parse().unwrap()
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let key = Key::generate().unwrap();
    std::fs::write(dir.path().join("bench.key"), key.to_key_string().as_bytes()).unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "ips = [\"127.0.0.1\"]\nconfig_dir = \"{}\"\nmax_requests_per_second = 100000\nmax_requests_per_second_global = 100000\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let listener = UnixListener::bind(dir.path().join("ruroco.socket")).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ruroco-server"));
    cmd.arg("--config")
        .arg(&config)
        .args(["--address", "127.0.0.1:0"])
        .env("RUROCO_LOG", "warn,ruroco_server=info");
    let server = Daemon::spawn(cmd, "listening on");
    let addr = server.listening_addr().unwrap();

    // Valid datagrams, one at a time, each from its own source: send → commander message.
    listener.set_nonblocking(false).unwrap();
    let mut latencies = Vec::with_capacity(VALID);
    for n in 0..VALID {
        let sock = UdpSocket::bind(format!("127.0.{}.{}:0", 10 + n / 250, 1 + n % 250)).unwrap();
        let datagram = seal(&key, Wire::V1, &plain(now_nanos())).unwrap();
        let sent = Instant::now();
        sock.send_to(&datagram, addr).unwrap();
        let (mut stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut msg = Vec::new();
        stream.read_to_end(&mut msg).unwrap();
        latencies.push(sent.elapsed());
        assert_eq!(msg.len(), 24);
    }
    latencies.sort();
    let median = latencies[VALID / 2];
    let p99 = latencies[VALID * 99 / 100];

    // A junk burst from 1,000 sources, as fast as one sender thread can go.
    let stranger = Key::generate().unwrap();
    let unknown = seal(&stranger, Wire::V1, &plain(1)).unwrap();
    let mut bad_tag = seal(&key, Wire::V1, &plain(1)).unwrap().to_vec();
    bad_tag[40] ^= 1;
    let kinds: [&[u8]; 3] = [&[0u8; 60], &unknown, &bad_tag];
    let socks: Vec<UdpSocket> = (0..1000)
        .map(|n| UdpSocket::bind(format!("127.1.{}.{}:0", n / 250, 1 + n % 250)).unwrap())
        .collect();
    let started = Instant::now();
    let mut sent = 0usize;
    for n in 0..JUNK {
        if socks[n % socks.len()].send_to(kinds[n % 3], addr).is_ok() {
            sent += 1;
        }
    }
    let elapsed = started.elapsed();
    // Let the server drain its receive buffer, then read its counters.
    std::thread::sleep(Duration::from_secs(2));
    let log = server.stop();
    let judged = counter(&log, "size") + counter(&log, "unknown_key") + counter(&log, "auth");

    println!("valid datagram to commander message (incl. durable floor write), {VALID} samples:");
    println!(
        "  median {:>8.1} us   p99 {:>8.1} us",
        median.as_secs_f64() * 1e6,
        p99.as_secs_f64() * 1e6
    );
    println!(
        "junk burst: {sent} datagrams sent in {:.2} s ({:.0}/s offered) from 1,000 sources",
        elapsed.as_secs_f64(),
        sent as f64 / elapsed.as_secs_f64()
    );
    println!(
        "  server judged {judged} ({:.1}%), at least {:.0} datagrams/s; the rest were dropped by the kernel's receive buffer",
        judged as f64 * 100.0 / sent as f64,
        judged as f64 / elapsed.as_secs_f64()
    );
    println!(
        "  log lines written for the whole run: {}",
        log.lines().count()
    );
}
