//! Batched receive with one floor commit per batch: datagrams queued while the server is
//! stopped (SIGSTOP) arrive as one batch.

use std::time::Duration;

use nix::sys::signal::Signal;
use ruroco_testkit::metric_value;

use crate::util::{now_nanos, Fixture};

const WAIT: Duration = Duration::from_secs(5);
const FAST: &str = "max_requests_per_second = 10000\nmax_requests_per_second_global = 10000";

/// SIGSTOP, and wait until the kernel has really stopped it (`kill` returns before).
fn stop(server: &crate::util::Running) {
    server.signal(Signal::SIGSTOP);
    let stat = format!("/proc/{}/stat", server.pid());
    for _ in 0..500 {
        let text = std::fs::read_to_string(&stat).unwrap();
        // The state follows the parenthesised command name.
        if text
            .rsplit(')')
            .next()
            .unwrap()
            .trim_start()
            .starts_with('T')
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    panic!("the server did not stop");
}

fn fixture() -> (Fixture, std::path::PathBuf) {
    let fx = Fixture::with_config(FAST);
    let metrics = fx.path().join("metrics");
    std::fs::create_dir(&metrics).unwrap();
    let text = std::fs::read_to_string(&fx.config).unwrap();
    std::fs::write(
        &fx.config,
        format!("{text}metrics_dir = \"{}\"\n", metrics.display()),
    )
    .unwrap();
    (fx, metrics.join("ruroco-server.prom"))
}

#[test]
fn a_queued_burst_is_committed_once_and_all_of_it_runs_once() {
    let (fx, prom) = fixture();
    let inbox = fx.inbox();
    let server = fx.start();
    let base = now_nanos();
    let packets: Vec<_> = (0..40).map(|i| fx.packet("a", base + i)).collect();
    stop(&server);
    for p in &packets {
        server.send(p);
    }
    // The same datagram twice in one batch: the second is a replay.
    server.send(&packets[39]);
    server.signal(Signal::SIGCONT);
    for _ in 0..40 {
        assert!(inbox.recv(WAIT).is_some(), "{}", server.log_text());
    }
    inbox.assert_empty(Duration::from_millis(300), "a datagram ran twice");
    assert!(server.wait_log("reason=replay", WAIT));
    let log = server.stop();
    let text = std::fs::read_to_string(prom).unwrap();
    assert_eq!(
        metric_value(&text, "ruroco_server_datagrams_total{result=\"accepted\"}"),
        40.0,
        "{log}"
    );
    assert_eq!(
        metric_value(&text, "ruroco_server_floor_write_duration_seconds_count"),
        1.0,
        "one commit for the whole batch"
    );
}

#[test]
fn a_failed_commit_forwards_none_of_the_batch_and_spends_it_all_the_same() {
    let (fx, _) = fixture();
    let inbox = fx.inbox();
    let server = fx.start();
    let base = now_nanos();
    let packets: Vec<_> = (0..3).map(|i| fx.packet("a", base + i)).collect();
    // A file size limit below the floor file makes the commit fail (EFBIG).
    stop(&server);
    crate::util::limit_file_size(&server, Some(100));
    for p in &packets {
        server.send(p);
    }
    server.signal(Signal::SIGCONT);
    assert!(
        server.wait_log_count("not forwarded", 3, WAIT),
        "{}",
        server.log_text()
    );
    inbox.assert_empty(
        Duration::from_millis(300),
        "forwarded without a durable floor",
    );
    // Spent all the same: once the disk works again, the same datagrams are replays,
    // and a new one runs.
    crate::util::limit_file_size(&server, None);
    for p in &packets {
        server.send(p);
    }
    assert!(
        server.wait_log_count("reason=replay", 3, WAIT),
        "{}",
        server.log_text()
    );
    server.send(&fx.packet("a", now_nanos()));
    assert!(inbox.recv(WAIT).is_some(), "{}", server.log_text());
    inbox.assert_empty(Duration::from_millis(300), "a refused datagram ran");
}
