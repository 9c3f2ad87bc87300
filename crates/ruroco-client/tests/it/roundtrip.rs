//! The three real programs together.

use std::net::UdpSocket;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::util::{stderr, Stack};

const WAIT: Duration = Duration::from_secs(5);
const QUIET: Duration = Duration::from_millis(500);

/// After a quiet period, the `default` command has still run exactly once.
fn assert_ran_once(stack: &Stack, context: &str) {
    std::thread::sleep(QUIET);
    assert_eq!(
        stack.wait_runs("default", 2, Duration::ZERO).len(),
        1,
        "{context}"
    );
}

#[test]
fn command_runs_once_with_the_right_ip() {
    let stack = Stack::start("");
    stack.send_ok(&["-c", "default"]);
    stack.expect_runs("default", &["127.0.0.1"]);
    assert_ran_once(&stack, "ran more than once");
    assert!(stack.wait_runs("other", 1, Duration::ZERO).is_empty());
}

#[test]
fn ipv6_round_trip() {
    let stack = Stack::start_on("", "[::1]:0");
    stack.send_ok(&["-6"]);
    stack.expect_runs("default", &["::1"]);
    // -4 against an IPv6-only address is refused before anything is sent.
    let out = stack.send(&["-4"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("has no IPv4 address"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn claimed_ip_needs_permissive_unless_it_is_the_real_source() {
    let stack = Stack::start("max_requests_per_second = 100");
    // Strict with a claim that differs from the real source: rejected.
    stack.send_ok(&["-i", "198.51.100.7"]);
    assert!(
        stack.server.wait_log("reason=src_ip", WAIT),
        "{}",
        stack.logs()
    );
    // Strict with the real source claimed: runs for it.
    stack.send_ok(&["-i", "127.0.0.1"]);
    stack.expect_runs("default", &["127.0.0.1"]);
    // Permissive: runs for the claimed address.
    stack.send_ok(&["-i", "198.51.100.7", "--permissive"]);
    stack.expect_runs("default", &["127.0.0.1", "198.51.100.7"]);
}

#[test]
fn replayed_datagram_runs_nothing() {
    let stack = Stack::start("");
    // A relay in front of the server keeps a copy of what passes through.
    let relay = UdpSocket::bind("127.0.0.1:0").unwrap();
    relay.set_read_timeout(Some(WAIT)).unwrap();
    let relay_addr = relay.local_addr().unwrap().to_string();
    let captured = Arc::new(Mutex::new(Vec::new()));
    let copy = Arc::clone(&captured);
    let server = stack.addr;
    let forwarder = std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        if let Ok((n, _)) = relay.recv_from(&mut buf) {
            copy.lock().unwrap().extend_from_slice(&buf[..n]);
            relay.send_to(&buf[..n], server).unwrap();
        }
    });
    let out = stack.send_to(&relay_addr, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    forwarder.join().unwrap();
    assert_eq!(
        stack.wait_runs("default", 1, WAIT).len(),
        1,
        "{}",
        stack.logs()
    );
    let datagram = captured.lock().unwrap().clone();
    assert_eq!(datagram.len(), 94);
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .send_to(&datagram, server)
        .unwrap();
    assert!(
        stack.server.wait_log("reason=replay", WAIT),
        "{}",
        stack.logs()
    );
    assert_ran_once(&stack, "the replay ran");
}

#[test]
fn wrong_key_runs_nothing() {
    let stack = Stack::start("kernel_filter = false");
    let other = crate::util::client(&["gen"], stack.dir.path());
    let other_key = stack.dir.path().join("other.key");
    std::fs::write(&other_key, &other.stdout).unwrap();
    let out = crate::util::client(
        &[
            "send",
            "-a",
            &stack.addr.to_string(),
            "-k",
            other_key.to_str().unwrap(),
        ],
        &stack.client_dir,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stack.server.wait_log("reason=unknown_key", WAIT),
        "{}",
        stack.logs()
    );
    std::thread::sleep(QUIET);
    assert!(stack.wait_runs("default", 1, Duration::ZERO).is_empty());
}

#[test]
fn fifty_clients_at_once_all_get_their_command_run() {
    const CLIENTS: usize = 50;
    let stack =
        Stack::start("max_requests_per_second = 1000\nmax_requests_per_second_global = 1000");
    let children: Vec<_> = (0..CLIENTS)
        .map(|_| {
            std::process::Command::new(crate::util::CLIENT)
                .args([
                    "send",
                    "-a",
                    &stack.addr.to_string(),
                    "-k",
                    stack.key_file.to_str().unwrap(),
                ])
                .env("RUROCO_CONF_DIR", &stack.client_dir)
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let runs = stack.wait_runs("default", CLIENTS, Duration::from_secs(20));
    assert_eq!(runs.len(), CLIENTS, "{}", stack.logs());
    assert_eq!(stack.server.count_log("reason="), 0, "{}", stack.logs());
}
