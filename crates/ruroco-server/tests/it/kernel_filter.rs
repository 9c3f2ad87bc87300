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
    for i in 0..1352 {
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
            .contains("1353 keys are more than one filter can check (1350)"),
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

/// Sends `datagrams` to `addr` from inside the network namespace of process `pid`.
fn send_in_netns(pid: u32, addr: std::net::SocketAddr, datagrams: Vec<Vec<u8>>) {
    std::thread::spawn(move || {
        let ns = std::fs::File::open(format!("/proc/{pid}/ns/net")).unwrap();
        nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        for d in &datagrams {
            socket.send_to(d, addr).unwrap();
        }
    })
    .join()
    .unwrap();
}

/// The filter is never lost: with 1, 300, 600 and 2,000 keys, in a network namespace of
/// the test's own with the default, Debian 12's default (20,480 bytes) and a small
/// `net.core.optmem_max` (8,192; the sysctl is per namespace),
/// the server keeps a filter at start and after a reload — the key-id program where it
/// fits, else the length-only one, said in the log (with the sysctl) and in the metrics —
/// and datagrams of a wrong length never reach it.
#[test]
fn the_filter_survives_small_option_memory_and_reloads() {
    let tools = ["unshare", "ip", "sysctl"]
        .iter()
        .all(|t| crate::util::tool(t).is_some());
    if !(nix::unistd::geteuid().is_root() && tools) {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs this as root with the tools"
        );
        eprintln!("needs root, unshare, ip and sysctl: skipped");
        return;
    }
    for optmem in [None, Some(20_480), Some(8_192)] {
        for keys in [1usize, 300, 600, 2000] {
            let (fx, prom) = fixture("");
            for i in 1..keys {
                std::fs::write(
                    fx.path().join(format!("k{i:04}.key")),
                    Key::generate().unwrap().to_key_string(),
                )
                .unwrap();
            }
            let server_cmd = fx.command();
            let setup = match optmem {
                Some(bytes) => format!("sysctl -q -w net.core.optmem_max={bytes} && "),
                None => String::new(),
            };
            let mut cmd = std::process::Command::new("unshare");
            cmd.args(["-n", "sh", "-c"])
                .arg(format!("ip link set lo up && {setup}exec \"$0\" \"$@\""))
                .arg(server_cmd.get_program())
                .args(server_cmd.get_args())
                .args(["--address", "127.0.0.1:0"]);
            let server = Running::spawn(cmd);
            let case = format!("{keys} key(s), optmem_max {optmem:?}");
            let wrong_lengths: Vec<Vec<u8>> = [0usize, 10, 92, 95, 200]
                .iter()
                .map(|n| {
                    let mut d = fx.key.id().0.to_vec();
                    d.resize(*n, 7);
                    d.truncate(*n);
                    d
                })
                .collect();
            let pid = u32::try_from(server.pid().as_raw()).unwrap();
            send_in_netns(pid, server.addr, wrong_lengths.clone());
            server.signal(Signal::SIGHUP);
            assert!(
                server.wait_log("reloaded", WAIT),
                "{case}: {}",
                server.log_text()
            );
            send_in_netns(pid, server.addr, wrong_lengths);
            let log = server.stop();
            assert!(
                !log.contains("reason=size"),
                "{case}: a wrong length reached the server:\n{log}"
            );
            assert!(
                !log.contains("every datagram reaches the server"),
                "{case}:\n{log}"
            );
            let on = |mode: &str| {
                metric(
                    &prom,
                    &format!("ruroco_server_kernel_filter{{mode=\"{mode}\"}}"),
                )
            };
            assert_eq!(on("off"), 0.0, "{case}");
            assert!(
                metric(&prom, "ruroco_server_socket_drops_total") >= 10.0,
                "{case}: the kernel did not drop the wrong lengths"
            );
            if keys == 1 {
                assert_eq!(on("keys"), 1.0, "{case}:\n{log}");
            }
            if keys == 2000 {
                assert_eq!(on("length"), 1.0, "{case}:\n{log}");
            }
            // Three instructions per key: 300 keys fit Debian's default (with five, about
            // 80 did).
            if optmem == Some(20_480) && keys <= 300 {
                assert_eq!(on("keys"), 1.0, "{case}:\n{log}");
            }
            if optmem == Some(8_192) && (300..=600).contains(&keys) {
                assert_eq!(on("length"), 1.0, "{case}:\n{log}");
                assert_eq!(
                    log.matches("does not fit this socket").count(),
                    2,
                    "{case}: said at start and at the reload:\n{log}"
                );
                assert!(
                    log.contains("sysctl -w net.core.optmem_max="),
                    "{case}:\n{log}"
                );
            }
        }
    }
}
