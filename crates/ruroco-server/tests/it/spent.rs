//! An authentic datagram that was refused must never be accepted later: not when the
//! clock catches up with a `future` one, not when the rate window passes, not after a
//! restart. (The failed-commit variant is in `pipeline.rs` and `group_commit.rs`.)

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use ruroco_proto::NANOS_PER_SEC;

use crate::util::{now_nanos, Fixture, Inbox, Running};

const WAIT: Duration = Duration::from_secs(3);
const QUIET: Duration = Duration::from_millis(300);

/// Sends `bytes` from a socket of its own (a listener replaying what it recorded) and
/// waits for the `reason` line; nothing may reach the commander.
fn refused_from_elsewhere(server: &Running, inbox: &Inbox, bytes: &[u8], reason: &str) {
    let needle = format!("reason={reason}");
    let before = server.count_log(&needle);
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.send_to(bytes, server.addr).unwrap();
    let deadline = Instant::now() + WAIT;
    while server.count_log(&needle) == before {
        assert!(
            Instant::now() < deadline,
            "no {needle} line\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    inbox.assert_empty(QUIET, "a refused datagram ran later");
}

fn sleep_until_nanos(at: u128) {
    let now = now_nanos();
    if at > now {
        std::thread::sleep(Duration::from_nanos(u64::try_from(at - now).unwrap()));
    }
}

#[test]
fn a_future_datagram_stays_refused_after_the_clock_catches_up_and_a_restart() {
    // A client whose clock runs 3 s fast, against a skew of 1 s.
    let fx = Fixture::with_config("max_clock_skew_seconds = 1");
    let inbox = fx.inbox();
    let server = fx.start();
    let ahead = now_nanos() + 3 * NANOS_PER_SEC;
    let recorded = fx.packet("default", ahead);
    refused_from_elsewhere(&server, &inbox, &recorded, "future");
    // The user fixes the clock and reseeds: their next datagram is below the refused one
    // and runs.
    server.send(&fx.packet("default", now_nanos()));
    assert!(inbox.recv(WAIT).is_some(), "{}", server.log_text());
    // The refused counters survive a restart (they are in the floor file).
    server.stop();
    let server = fx.start();
    // Once the clock has caught up, the recorded datagram is inside the skew and above
    // the floor: it must still be refused, from any address.
    sleep_until_nanos(ahead);
    refused_from_elsewhere(&server, &inbox, &recorded, "replay");
    // And the key keeps working: a counter above it runs.
    server.send(&fx.packet("default", now_nanos()));
    assert!(inbox.recv(WAIT).is_some(), "{}", server.log_text());
}

#[test]
fn a_datagram_refused_for_its_rate_stays_refused_when_the_window_passes() {
    let fx = Fixture::with_config("max_requests_per_second = 1");
    let inbox = fx.inbox();
    let server = fx.start();
    let base = now_nanos();
    let first = fx.packet("default", base + 1);
    let second = fx.packet("default", base + 2);
    server.send(&first);
    server.send(&second);
    assert!(inbox.recv(WAIT).is_some(), "{}", server.log_text());
    assert!(
        server.wait_log("reason=rate", WAIT),
        "{}",
        server.log_text()
    );
    inbox.assert_empty(QUIET, "over the rate");
    // A new window: the recorded second datagram is a replay, not a late run.
    std::thread::sleep(Duration::from_millis(1100));
    refused_from_elsewhere(&server, &inbox, &second, "replay");
    server.send(&fx.packet("default", now_nanos()));
    assert!(inbox.recv(WAIT).is_some(), "{}", server.log_text());
}

#[test]
fn a_datagram_for_another_address_stays_refused_after_a_reload_adds_it() {
    let fx = Fixture::new();
    let inbox = fx.inbox();
    let server = fx.start();
    let mut plain = ruroco_proto::Plaintext {
        version: 1,
        cmd_hash: ruroco_proto::command_hash("default"),
        counter: now_nanos(),
        strict: false,
        src_ip: None,
        dst_ip: "127.0.0.2".parse().unwrap(),
    };
    let recorded = fx.packet_with(plain);
    refused_from_elsewhere(&server, &inbox, &recorded, "dst_ip");
    let text = std::fs::read_to_string(&fx.config).unwrap();
    std::fs::write(
        &fx.config,
        text.replace("\"::1\"]", "\"::1\", \"127.0.0.2\"]"),
    )
    .unwrap();
    server.signal(nix::sys::signal::Signal::SIGHUP);
    assert!(server.wait_log("reloaded", WAIT), "{}", server.log_text());
    refused_from_elsewhere(&server, &inbox, &recorded, "replay");
    plain.counter = now_nanos();
    server.send(&fx.packet_with(plain));
    assert!(inbox.recv(WAIT).is_some(), "{}", server.log_text());
}
