//! The socket filter with the real kernel: datagrams that cannot be valid never reach the
//! server (no log line, no counter; the socket's drop counter says the kernel took them),
//! reloads replace the filter, and `kernel_filter = false` brings every datagram back.

use std::net::UdpSocket;
use std::path::PathBuf;
use std::time::Duration;

use nix::sys::signal::Signal;
use ruroco_proto::{seal, Key, Plaintext, Wire};
use ruroco_testkit::metric_value;

use crate::util::{now_nanos, Fixture, Running};

const WAIT: Duration = Duration::from_secs(5);
const QUIET: Duration = Duration::from_millis(300);

/// A fixture writing metrics; returns the metrics file.
fn fixture(extra: &str) -> (Fixture, PathBuf) {
    let fx = Fixture::with_config(&format!(
        "max_requests_per_second = 1000\nmax_requests_per_second_global = 1000\n{extra}"
    ));
    let metrics = fx.path().join("metrics");
    std::fs::create_dir(&metrics).unwrap();
    let text = std::fs::read_to_string(&fx.config).unwrap();
    std::fs::write(
        &fx.config,
        format!("metrics_dir = \"{}\"\n{text}", metrics.display()),
    )
    .unwrap();
    (fx, metrics.join("ruroco-server.prom"))
}

fn plain(counter: u128) -> Plaintext {
    Plaintext {
        version: 1,
        cmd_hash: ruroco_proto::command_hash("default"),
        counter,
        strict: true,
        src_ip: None,
        dst_ip: "127.0.0.1".parse().unwrap(),
    }
}

/// Junk the filter must drop: every wrong length (with the key's id in front), and a
/// well-formed datagram of a key the server does not have.
fn junk(fx: &Fixture) -> Vec<Vec<u8>> {
    let id = fx.key.id().0;
    let mut all: Vec<Vec<u8>> = (0..200usize)
        .filter(|len| *len != 93 && *len != 94)
        .map(|len| {
            let mut d = id.to_vec();
            d.resize(len, 0x5a);
            d.truncate(len);
            d
        })
        .collect();
    let stranger = Key::generate().unwrap();
    all.push(
        seal(&stranger, Wire::V1, &plain(now_nanos()))
            .unwrap()
            .to_vec(),
    );
    all.push(
        seal(&stranger, Wire::V0, &plain(now_nanos()))
            .unwrap()
            .to_vec(),
    );
    all
}

fn send_all(server: &Running, datagrams: &[Vec<u8>]) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    for d in datagrams {
        socket.send_to(d, server.addr).unwrap();
    }
}

fn metric(prom: &PathBuf, name: &str) -> f64 {
    metric_value(&std::fs::read_to_string(prom).unwrap(), name)
}

#[test]
fn junk_never_reaches_the_server_and_a_valid_datagram_runs() {
    let (fx, prom) = fixture("");
    let inbox = fx.inbox();
    let server = fx.start();
    assert!(
        server
            .log_text()
            .contains("kernel filter: only 94 or 93-byte datagrams for one of 1 key id(s)"),
        "{}",
        server.log_text()
    );
    let junk = junk(&fx);
    send_all(&server, &junk);
    server.send(&fx.packet("default", now_nanos()));
    assert!(inbox.recv(WAIT).is_some(), "{}", server.log_text());
    inbox.assert_empty(QUIET, "junk ran");
    let log = server.stop();
    assert!(!log.contains("rejected datagram"), "{log}");
    for reason in ["size", "unknown_key", "auth"] {
        let name = format!("ruroco_server_datagrams_total{{result=\"{reason}\"}}");
        assert_eq!(metric(&prom, &name), 0.0, "{reason}");
    }
    assert_eq!(
        metric(&prom, "ruroco_server_datagrams_total{result=\"accepted\"}"),
        1.0
    );
    assert_eq!(
        metric(&prom, "ruroco_server_socket_drops_total"),
        junk.len() as f64
    );
}

#[test]
fn with_v0_off_the_kernel_drops_93_byte_datagrams() {
    let (fx, prom) = fixture("accept_v0 = false");
    let inbox = fx.inbox();
    let server = fx.start();
    let v0 = seal(&fx.key, Wire::V0, &plain(now_nanos())).unwrap();
    server.send(&v0);
    server.send(&fx.packet("default", now_nanos()));
    assert!(inbox.recv(WAIT).is_some(), "{}", server.log_text());
    inbox.assert_empty(QUIET, "the v0 datagram ran");
    let log = server.stop();
    assert!(!log.contains("reason=size"), "{log}");
    assert_eq!(metric(&prom, "ruroco_server_socket_drops_total"), 1.0);
}

#[test]
fn a_reload_replaces_the_filter_for_added_and_removed_keys() {
    let (fx, prom) = fixture("");
    let inbox = fx.inbox();
    let server = fx.start();
    let second = Key::generate().unwrap();
    let second_packet = |counter| seal(&second, Wire::V1, &plain(counter)).unwrap();
    // Not loaded yet: dropped in the kernel.
    server.send(&second_packet(now_nanos()));
    inbox.assert_empty(QUIET, "an unknown key ran");
    std::fs::write(fx.path().join("second.key"), second.to_key_string()).unwrap();
    server.signal(Signal::SIGHUP);
    assert!(server.wait_log("reloaded", WAIT), "{}", server.log_text());
    server.send(&second_packet(now_nanos()));
    assert!(inbox.recv(WAIT).is_some(), "{}", server.log_text());
    // The first key goes: its datagrams are dropped in the kernel from now on.
    std::fs::remove_file(fx.path().join("client.key")).unwrap();
    server.signal(Signal::SIGHUP);
    assert!(
        server.wait_log_count("reloaded", 2, WAIT),
        "{}",
        server.log_text()
    );
    server.send(&fx.packet("default", now_nanos()));
    inbox.assert_empty(QUIET, "a removed key ran");
    let log = server.stop();
    assert!(!log.contains("rejected datagram"), "{log}");
    assert_eq!(metric(&prom, "ruroco_server_socket_drops_total"), 2.0);
}

#[test]
fn kernel_filter_false_brings_back_every_rejection_line() {
    let (fx, prom) = fixture("kernel_filter = false");
    let inbox = fx.inbox();
    let server = fx.start();
    assert!(
        server.log_text().contains("kernel filter off"),
        "{}",
        server.log_text()
    );
    send_all(&server, &[vec![0u8; 10], vec![0u8; 94]]);
    assert!(
        server.wait_log("reason=size", WAIT),
        "{}",
        server.log_text()
    );
    assert!(
        server.wait_log("reason=unknown_key", WAIT),
        "{}",
        server.log_text()
    );
    inbox.assert_empty(QUIET, "junk ran");
    server.stop();
    assert_eq!(metric(&prom, "ruroco_server_socket_drops_total"), 0.0);
    assert_eq!(
        metric(&prom, "ruroco_server_datagrams_total{result=\"size\"}"),
        1.0
    );
}

#[test]
fn more_keys_than_a_filter_holds_fall_back_to_lengths_and_say_so() {
    let (fx, _) = fixture("");
    for i in 0..820 {
        std::fs::write(
            fx.path().join(format!("k{i}.key")),
            Key::generate().unwrap().to_key_string(),
        )
        .unwrap();
    }
    let inbox = fx.inbox();
    let server = fx.start();
    assert!(
        server
            .log_text()
            .contains("821 keys are more than one filter can check (818)"),
        "{}",
        server.log_text()
    );
    // Lengths are still checked in the kernel; key ids by the server.
    send_all(&server, &[vec![0u8; 10], vec![0u8; 94]]);
    assert!(
        server.wait_log("reason=unknown_key", WAIT),
        "{}",
        server.log_text()
    );
    server.send(&fx.packet("default", now_nanos()));
    assert!(inbox.recv(WAIT).is_some(), "{}", server.log_text());
    let log = server.stop();
    assert!(!log.contains("reason=size"), "{log}");
}
