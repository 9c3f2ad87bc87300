//! SIGHUP reloads config.toml and the keys while the socket, floors and rate windows stay;
//! a broken reload changes nothing; `--check` finds each kind of problem without binding.

use std::net::UdpSocket;
use std::process::Command;
use std::time::Duration;

use nix::sys::signal::Signal;
use ruroco_proto::{command_hash, seal, Key, Plaintext, Wire};

use crate::util::{now_nanos, Fixture, BIN};

const WAIT: Duration = Duration::from_secs(5);
/// Fast limits; the server judges every datagram itself (the kernel filter's reloads are
/// tested in `kernel_filter.rs`).
const FAST: &str =
    "max_requests_per_second = 10000\nmax_requests_per_second_global = 10000\nkernel_filter = false";

fn packet(key: &Key, command: &str) -> Vec<u8> {
    let pt = Plaintext {
        version: 1,
        cmd_hash: command_hash(command),
        counter: now_nanos(),
        strict: true,
        src_ip: None,
        dst_ip: "127.0.0.1".parse().unwrap(),
    };
    seal(key, Wire::V1, &pt).unwrap().to_vec()
}

#[test]
fn reload_adds_and_removes_keys_while_datagrams_flow() {
    let fx = Fixture::with_config(FAST);
    let inbox = fx.inbox();
    let server = fx.start();
    let addr = server.addr;
    let a = Key::parse(&fx.key.to_key_string()).unwrap();
    let sender = std::thread::spawn(move || {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        for _ in 0..60 {
            sock.send_to(&packet(&a, "a"), addr).unwrap();
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    let b = Key::generate().unwrap();
    std::thread::sleep(Duration::from_millis(150));
    std::fs::write(fx.path().join("second.key"), b.to_key_string().as_bytes()).unwrap();
    server.signal(Signal::SIGHUP);
    assert!(server.wait_log("reloaded", WAIT), "{}", server.log_text());
    assert!(server
        .find_log("reloaded")
        .unwrap()
        .contains("2 key(s) (+1 -0)"));
    server.send(&packet(&b, "b"));
    sender.join().unwrap();
    let mut got = Vec::new();
    while let Some(m) = inbox.recv(Duration::from_millis(1500)) {
        got.push(m.cmd_hash);
    }
    let count = |name| got.iter().filter(|h| **h == command_hash(name)).count();
    assert_eq!((count("a"), count("b")), (60, 1), "{}", server.log_text());

    // Remove the first key: from the reload on, its datagrams run nothing.
    std::fs::remove_file(fx.path().join("client.key")).unwrap();
    server.signal(Signal::SIGHUP);
    assert!(
        server.wait_log_count("reloaded", 2, WAIT),
        "{}",
        server.log_text()
    );
    assert!(server.log_text().contains("1 key(s) (+0 -1)"));
    server.send(&packet(&fx.key, "a"));
    assert!(
        server.wait_log("reason=unknown_key", WAIT),
        "{}",
        server.log_text()
    );
    server.send(&packet(&b, "b"));
    let m = inbox.recv(WAIT).unwrap();
    assert_eq!(m.cmd_hash, command_hash("b"));
    inbox.assert_empty(Duration::from_millis(300), "the removed key ran something");
}

#[test]
fn a_broken_reload_changes_nothing_and_says_where() {
    let fx = Fixture::with_config(FAST);
    let inbox = fx.inbox();
    let server = fx.start();
    let good = std::fs::read_to_string(&fx.config).unwrap();
    let broken = [
        (
            "ips = 5\n".to_owned() + &good.replace("ips = ", "# ips = "),
            "line 1, column 7",
        ),
        (
            good.clone() + "max_request_per_second = 3\n",
            "max_request_per_second",
        ),
    ];
    for (n, (text, field)) in broken.iter().enumerate() {
        std::fs::write(&fx.config, text).unwrap();
        server.signal(Signal::SIGHUP);
        assert!(
            server.wait_log_count("reload failed", n + 1, WAIT),
            "{}",
            server.log_text()
        );
        let line = server
            .log_text()
            .lines()
            .rev()
            .find(|l| l.contains("reload failed"))
            .unwrap()
            .to_owned();
        assert!(
            line.contains("config.toml") && line.contains(field),
            "{line}"
        );
        server.send(&fx.packet("a", now_nanos()));
        assert!(inbox.recv(WAIT).is_some(), "stopped serving after: {line}");
    }
    // A bad key file: the reload fails naming it, the old key keeps working.
    std::fs::write(&fx.config, &good).unwrap();
    std::fs::write(fx.path().join("broken.key"), "not a key").unwrap();
    server.signal(Signal::SIGHUP);
    assert!(server.wait_log_count("reload failed", 3, WAIT));
    assert!(server.log_text().contains("broken.key"));
    server.send(&fx.packet("a", now_nanos()));
    assert!(inbox.recv(WAIT).is_some());
    assert!(!server.log_text().contains("reloaded"));
}

fn check(fx: &Fixture, extra: &[&str]) -> (bool, String) {
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&fx.config)
        .arg("--check")
        .args(extra)
        .env_remove("LISTEN_FDS")
        .env_remove("LISTEN_PID")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn check_reports_each_kind_of_problem_and_binds_nothing() {
    let fx = Fixture::new();
    // A port in use: --check must not try to bind it.
    let busy = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let (ok, out) = check(&fx, &["--address", &addr]);
    assert!(ok, "{out}");
    assert!(out.contains("config.toml: OK (1 key(s)"), "{out}");
    assert_eq!(out.lines().count(), 1);

    let good = std::fs::read_to_string(&fx.config).unwrap();
    let line = format!("line {}", good.lines().count() + 1);
    let cases = [
        (
            good.clone() + "colour = 1\n",
            vec!["config.toml", &line, "colour"],
        ),
        (
            good.replace("ips = ", "# ips = "),
            vec!["config.toml", "missing required key `ips`"],
        ),
        (
            good.clone() + "metrics_dir = \"/nonexistent-dir\"\n",
            vec!["metrics_dir"],
        ),
    ];
    for (text, wants) in cases {
        std::fs::write(&fx.config, &text).unwrap();
        let (ok, out) = check(&fx, &[]);
        assert!(!ok, "{text}: {out}");
        for want in wants {
            assert!(out.contains(want), "{want} missing in: {out}");
        }
    }
    // A [key_commands] entry without a key file: a start works, with a warning naming it.
    std::fs::write(
        &fx.config,
        good.clone() + "[key_commands]\nlaptop = [\"x\"]\n",
    )
    .unwrap();
    let (ok, out) = check(&fx, &[]);
    assert!(ok, "{out}");
    assert!(
        out.contains("warning: ") && out.contains("`laptop`") && out.contains("ignored"),
        "{out}"
    );
    std::fs::write(&fx.config, &good).unwrap();
    // Two bad key files and a bad floor file: one line each.
    std::fs::write(fx.path().join("bad.key"), "nope").unwrap();
    std::fs::write(fx.path().join("copy.key"), fx.key.to_key_string()).unwrap();
    std::fs::write(fx.path().join("blocklist.toml"), "floors = 3").unwrap();
    let (ok, out) = check(&fx, &["--address", "not an address"]);
    assert!(!ok);
    assert!(out.contains("bad.key"), "{out}");
    assert!(
        out.contains("copy.key") && out.contains("same key"),
        "{out}"
    );
    assert!(out.contains("blocklist.toml"), "{out}");
    assert!(out.contains("not an address"), "{out}");
    assert_eq!(out.lines().count(), 4, "{out}");
}

#[test]
fn deleting_a_key_that_key_commands_names_stops_it_at_the_reload() {
    let fx = Fixture::with_config(&format!("{FAST}\n[key_commands]\nclient = [\"a\"]"));
    let inbox = fx.inbox();
    let server = fx.start();
    let b = Key::generate().unwrap();
    std::fs::write(fx.path().join("second.key"), b.to_key_string()).unwrap();
    server.signal(Signal::SIGHUP);
    assert!(
        server.wait_log_count("reloaded", 1, WAIT),
        "{}",
        server.log_text()
    );
    server.send(&packet(&fx.key, "a"));
    assert!(inbox.recv(WAIT).is_some(), "{}", server.log_text());
    // The key file goes; its [key_commands] entry stays behind.
    std::fs::remove_file(fx.path().join("client.key")).unwrap();
    server.signal(Signal::SIGHUP);
    assert!(
        server.wait_log_count("reloaded", 2, WAIT),
        "{}",
        server.log_text()
    );
    assert!(
        server
            .log_text()
            .contains("names key `client`, but there is no client.key"),
        "{}",
        server.log_text()
    );
    server.send(&packet(&fx.key, "a"));
    assert!(
        server.wait_log("reason=unknown_key", WAIT),
        "{}",
        server.log_text()
    );
    inbox.assert_empty(Duration::from_millis(300), "the deleted key still ran");
    server.send(&packet(&b, "b"));
    assert!(inbox.recv(WAIT).is_some(), "{}", server.log_text());
}
