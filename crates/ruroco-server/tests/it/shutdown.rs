//! SIGTERM and SIGINT stop the server promptly with exit status 0.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::util::Fixture;

fn stops_on(signal: Signal) {
    let fx = Fixture::new();
    let mut server = fx.start();
    // Let it sit in a blocking receive first.
    std::thread::sleep(Duration::from_millis(300));
    let sent = Instant::now();
    server.signal(signal);
    let status = server
        .wait_exit(Duration::from_secs(2))
        .expect("server still running 2 s after the signal");
    assert!(status.success(), "{status:?}\n{}", server.log_text());
    assert!(sent.elapsed() < Duration::from_secs(2));
    assert!(server
        .log_text()
        .contains("Shutdown requested, stopping server loop"));
}

#[test]
fn sigterm_stops_with_exit_0() {
    stops_on(Signal::SIGTERM);
}

#[test]
fn sigint_stops_with_exit_0() {
    stops_on(Signal::SIGINT);
}

#[test]
fn datagram_in_hand_is_finished_before_exit() {
    let fx = Fixture::new();
    let inbox = fx.inbox();
    let server = fx.start();
    server.send(&fx.packet("default", crate::util::now_nanos()));
    server.signal(Signal::SIGTERM);
    let log = server.stop_after_signal();
    assert!(inbox.recv(Duration::from_secs(2)).is_some(), "{log}");
}
