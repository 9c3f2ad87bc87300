//! Undo: scheduled on success, moved by a new success, durable across SIGTERM and
//! `kill -9`, run once at its deadline with the right IP.

use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::util::{Fixture, ALLOW};

/// open_ssh logs "open IP NANOS", its undo "close IP NANOS", both to {dir}/events.
fn open_ssh(after_sec: u64) -> String {
    format!(
        r#"open_ssh = {{ cmd = "echo open $RUROCO_IP $(date +%s%N) >> {{dir}}/events", undo = "echo close $RUROCO_IP $(date +%s%N) >> {{dir}}/events", undo_after_sec = {after_sec} }}"#
    )
}

/// (kind, ip, time in ns) of each event line.
fn events(fx: &Fixture) -> Vec<(String, String, u128)> {
    fx.lines("events")
        .iter()
        .map(|l| {
            let parts: Vec<&str> = l.split(' ').collect();
            (
                parts[0].to_owned(),
                parts[1].to_owned(),
                parts[2].parse().unwrap(),
            )
        })
        .collect()
}

fn seconds_between(a: u128, b: u128) -> f64 {
    (b - a) as f64 / 1e9
}

#[test]
fn undo_runs_once_at_its_deadline_with_the_ip() {
    let fx = Fixture::new(&open_ssh(2), ALLOW);
    let cmd = fx.start();
    fx.send("open_ssh", "203.0.113.7");
    assert!(
        cmd.wait_log("undo due", Duration::from_secs(5)),
        "{}",
        cmd.log_text()
    );
    let listed = fx.pending();
    assert!(
        listed.starts_with("open_ssh\t203.0.113.7\t20") && listed.contains("in "),
        "{listed}"
    );
    let ev = fx.wait_lines("events", 2, Duration::from_secs(6));
    assert_eq!(ev.len(), 2, "{}", cmd.log_text());
    let ev = events(&fx);
    assert_eq!(
        (ev[0].0.as_str(), ev[0].1.as_str()),
        ("open", "203.0.113.7")
    );
    assert_eq!(
        (ev[1].0.as_str(), ev[1].1.as_str()),
        ("close", "203.0.113.7")
    );
    let after = seconds_between(ev[0].2, ev[1].2);
    assert!(
        (1.9..3.0).contains(&after),
        "undo ran {after} s after the open"
    );
    assert!(
        cmd.wait_log(
            "undo of open_ssh for 203.0.113.7 succeeded",
            Duration::from_secs(2)
        ),
        "{}",
        cmd.log_text()
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(fx.lines("events").len(), 2, "the undo ran once");
    assert!(fx.pending().starts_with("no pending undos"));
}

#[test]
fn a_second_open_moves_the_deadline() {
    let fx = Fixture::new(&open_ssh(3), ALLOW);
    let cmd = fx.start();
    fx.send("open_ssh", "203.0.113.7");
    fx.wait_lines("events", 1, Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(1500));
    fx.send("open_ssh", "203.0.113.7");
    let ev = fx.wait_lines("events", 3, Duration::from_secs(8));
    assert_eq!(ev.len(), 3, "{}", cmd.log_text());
    let ev = events(&fx);
    let kinds: Vec<&str> = ev.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(kinds, ["open", "open", "close"]);
    let after_second = seconds_between(ev[1].2, ev[2].2);
    assert!(
        (2.9..4.0).contains(&after_second),
        "undo ran {after_second} s after the second open"
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        fx.lines("events").len(),
        3,
        "one pending undo per (command, IP)"
    );
}

#[test]
fn kill_9_after_an_open_and_a_restart_after_the_deadline_runs_the_undo_once() {
    let fx = Fixture::new(&open_ssh(1), ALLOW);
    let mut cmd = fx.start();
    fx.send("open_ssh", "198.51.100.9");
    assert!(
        cmd.wait_log("undo due", Duration::from_secs(5)),
        "{}",
        cmd.log_text()
    );
    cmd.signal(Signal::SIGKILL);
    cmd.wait_exit(Duration::from_secs(5)).unwrap();
    assert!(fx.pending().contains("198.51.100.9"));
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(fx.lines("events").len(), 1, "nothing runs while it is down");
    let cmd = fx.start();
    let ev = fx.wait_lines("events", 2, Duration::from_secs(5));
    assert_eq!(ev.len(), 2, "{}", cmd.log_text());
    assert!(ev[1].starts_with("close 198.51.100.9 "), "{ev:?}");
    assert!(
        cmd.log_text().contains("1 pending undo(s)"),
        "{}",
        cmd.log_text()
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(fx.lines("events").len(), 2, "the undo ran exactly once");
    drop(cmd);
    // And not again at the next start.
    let _cmd = fx.start();
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(fx.lines("events").len(), 2);
}

#[test]
fn sigterm_leaves_undos_pending_and_a_restart_runs_them_at_their_deadline() {
    let fx = Fixture::new(&open_ssh(3), ALLOW);
    let cmd = fx.start();
    fx.send("open_ssh", "192.0.2.44");
    assert!(
        cmd.wait_log("undo due", Duration::from_secs(5)),
        "{}",
        cmd.log_text()
    );
    let log = cmd.stop();
    assert!(log.contains("1 undo(s) stay pending"), "{log}");
    assert_eq!(fx.lines("events").len(), 1);
    let started = Instant::now();
    let cmd = fx.start();
    let ev = fx.wait_lines("events", 2, Duration::from_secs(6));
    assert_eq!(ev.len(), 2, "{}", cmd.log_text());
    assert!(
        started.elapsed() > Duration::from_millis(1500),
        "ran too early"
    );
    let ev = events(&fx);
    let after = seconds_between(ev[0].2, ev[1].2);
    assert!(
        (2.9..4.0).contains(&after),
        "undo ran {after} s after the open"
    );
    assert_eq!(ev[1].1, "192.0.2.44");
}

#[test]
fn a_failed_command_schedules_no_undo() {
    let fx = Fixture::new(
        r#"open_ssh = { cmd = "exit 1", undo = "echo close >> {dir}/events", undo_after_sec = 1 }"#,
        ALLOW,
    );
    let cmd = fx.start();
    fx.send("open_ssh", "203.0.113.7");
    assert!(cmd.wait_log("failed", Duration::from_secs(5)));
    std::thread::sleep(Duration::from_millis(1800));
    assert!(fx.lines("events").is_empty());
    assert!(fx.pending().starts_with("no pending undos"));
}

#[test]
fn a_bad_state_file_is_kept_aside_named_and_the_commander_serves() {
    let fx = Fixture::new(&open_ssh(60), ALLOW);
    std::fs::create_dir(fx.path().join("state")).unwrap();
    std::fs::write(fx.path().join("state/pending-undos.toml"), "[[undo]\n").unwrap();
    let cmd = fx.start();
    let line = cmd.find_log("invalid state file").unwrap();
    assert!(line.contains("pending-undos.toml.bad-"), "{line}");
    assert!(line.contains("ERROR"), "{line}");
    let aside: Vec<_> = std::fs::read_dir(fx.path().join("state"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("pending-undos.toml.bad-"))
        .collect();
    assert_eq!(aside.len(), 1);
    fx.send("open_ssh", "203.0.113.7");
    assert_eq!(fx.wait_lines("events", 1, Duration::from_secs(5)).len(), 1);
    assert!(cmd.wait_log("undo due", Duration::from_secs(5)));
}

#[test]
fn an_unwritable_state_dir_stops_the_start_naming_it() {
    let fx = Fixture::new(
        &open_ssh(60),
        "allow_non_routable_ips = true\nstate_dir = \"/proc/ruroco-no-such-dir\"",
    );
    let mut child = fx
        .command()
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status = child.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(!status.success());
    assert!(err.contains("/proc/ruroco-no-such-dir"), "{err}");
}

/// A command and an undo that each take a while, recording when they start and end.
fn slow_pair(after_sec: u64) -> String {
    format!(
        r#"open_ssh = {{ cmd = "echo add-start >> {{dir}}/order; sleep 0.8; echo add-end >> {{dir}}/order", undo = "echo del-start >> {{dir}}/order; sleep 0.8; echo del-end >> {{dir}}/order", undo_after_sec = {after_sec} }}"#
    )
}

#[test]
fn a_knock_while_the_undo_runs_waits_for_it_and_keeps_its_access() {
    let fx = Fixture::new(&slow_pair(1), ALLOW);
    let cmd = fx.start();
    fx.send("open_ssh", "203.0.113.7");
    // The undo is due 1 s after the add ended; knock again while it runs.
    fx.wait_lines("order", 3, Duration::from_secs(6));
    assert_eq!(fx.lines("order").last().unwrap(), "del-start");
    fx.send("open_ssh", "203.0.113.7");
    let order = fx.wait_lines("order", 6, Duration::from_secs(6));
    assert_eq!(
        order,
        [
            "add-start",
            "add-end",
            "del-start",
            "del-end",
            "add-start",
            "add-end"
        ],
        "{}",
        cmd.log_text()
    );
    // The second add's access lasts its full second: its undo follows it once.
    let order = fx.wait_lines("order", 8, Duration::from_secs(6));
    assert_eq!(&order[6..], ["del-start", "del-end"], "{}", cmd.log_text());
}

#[test]
fn an_undo_due_while_a_new_run_is_going_waits_and_is_moved_by_it() {
    let fx = Fixture::new(&slow_pair(1), ALLOW);
    let cmd = fx.start();
    fx.send("open_ssh", "203.0.113.7");
    fx.wait_lines("order", 2, Duration::from_secs(5));
    // 0.5 s into the 1 s before the undo: the new run is still going when it comes due.
    std::thread::sleep(Duration::from_millis(500));
    fx.send("open_ssh", "203.0.113.7");
    let order = fx.wait_lines("order", 6, Duration::from_secs(8));
    assert_eq!(
        order,
        [
            "add-start",
            "add-end",
            "add-start",
            "add-end",
            "del-start",
            "del-end"
        ],
        "{}",
        cmd.log_text()
    );
    assert!(
        cmd.log_text().contains("not run now: a new run moved it"),
        "{}",
        cmd.log_text()
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(fx.lines("order").len(), 6, "one undo for the two runs");
}

/// What the package's remove step runs: every pending undo now, then none pending; refused
/// while a commander runs.
#[test]
fn run_pending_runs_every_pending_undo_now_and_only_without_a_commander() {
    let fx = Fixture::new(&open_ssh(3600), ALLOW);
    let cmd = fx.start();
    fx.send("open_ssh", "203.0.113.7");
    assert!(
        cmd.wait_log("undo due", Duration::from_secs(5)),
        "{}",
        cmd.log_text()
    );
    let run_pending = || {
        Command::new(crate::util::BIN)
            .arg("--config")
            .arg(&fx.config)
            .arg("run-pending")
            .output()
            .unwrap()
    };
    let out = run_pending();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("stop it first"));
    cmd.stop();
    let out = run_pending();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("undo of open_ssh for 203.0.113.7 run now"),
        "{err}"
    );
    let ev = events(&fx);
    assert_eq!(ev.len(), 2);
    assert_eq!(
        (ev[1].0.as_str(), ev[1].1.as_str()),
        ("close", "203.0.113.7")
    );
    assert!(
        fx.pending().starts_with("no pending undos"),
        "{}",
        fx.pending()
    );
    // A failing undo stays pending and is printed with the line to run by hand.
    let fx = Fixture::new(
        r#"open_ssh = { cmd = "true", undo = "exit 3", undo_after_sec = 3600 }"#,
        ALLOW,
    );
    let cmd = fx.start();
    fx.send("open_ssh", "203.0.113.8");
    assert!(
        cmd.wait_log("undo due", Duration::from_secs(5)),
        "{}",
        cmd.log_text()
    );
    cmd.stop();
    let out = Command::new(crate::util::BIN)
        .arg("--config")
        .arg(&fx.config)
        .arg("run-pending")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("FAILED") && err.contains("RUROCO_IP=203.0.113.8 /bin/sh -c 'exit 3'"),
        "{err}"
    );
    assert!(fx.pending().contains("203.0.113.8"), "{}", fx.pending());
}
