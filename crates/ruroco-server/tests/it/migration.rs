//! Taking over from the original ruroco: its replay floors (`blocklist.msgpck`, written
//! here with `rmp-serde` in the original's layout) become ours, a file we cannot read
//! stops the start, and its leftover systemd units are named by `--check`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde::Serialize;

use crate::util::{Fixture, BIN};

const WAIT: Duration = Duration::from_secs(3);

/// The original's struct, as its server writes it.
#[derive(Serialize)]
struct Blocklist {
    map: HashMap<[u8; 8], u128>,
    path: PathBuf,
}

fn write_original(fx: &Fixture, floor: u128) {
    let list = Blocklist {
        map: HashMap::from([(fx.key.id().0, floor)]),
        path: fx.path().join("blocklist.msgpck"),
    };
    std::fs::write(
        fx.path().join("blocklist.msgpck"),
        rmp_serde::to_vec(&list).unwrap(),
    )
    .unwrap();
}

#[test]
fn a_released_clients_counter_keeps_working_and_what_the_original_saw_stays_a_replay() {
    let fx = Fixture::new();
    // A released client seeded its counter long ago and counts up by one.
    let floor: u128 = 1_650_000_000_000_000_000;
    write_original(&fx, floor);
    let out = fx.command().arg("--check").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("carries over the floors of 1 key(s)") && text.contains("(1 above ours)"),
        "{text}"
    );
    let inbox = fx.inbox();
    let server = fx.start();
    assert!(
        server
            .log_text()
            .contains("carried over the replay floors of 1 key(s)"),
        "{}",
        server.log_text()
    );
    // At the floor: the original accepted it already.
    server.send(&fx.packet("default", floor));
    assert!(
        server.wait_log("reason=replay", WAIT),
        "{}",
        server.log_text()
    );
    inbox.assert_empty(Duration::from_millis(300), "a replay ran");
    server.send(&fx.packet("default", floor + 1));
    assert!(inbox.recv(WAIT).is_some(), "{}", server.log_text());
    // Our floor now wins over the file at the next start.
    server.stop();
    let server = fx.start();
    server.send(&fx.packet("default", floor + 1));
    assert!(
        server.wait_log("reason=replay", WAIT),
        "{}",
        server.log_text()
    );
    server.send(&fx.packet("default", floor + 2));
    assert!(inbox.recv(WAIT).is_some(), "{}", server.log_text());
}

#[test]
fn an_unreadable_original_floor_file_stops_the_start_and_says_the_way_out() {
    let fx = Fixture::new();
    std::fs::write(fx.path().join("blocklist.msgpck"), b"\x93garbage").unwrap();
    let out = fx
        .command()
        .args(["--address", "127.0.0.1:0"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("blocklist.msgpck") && err.contains("move it aside"),
        "{err}"
    );
    let out = fx.command().arg("--check").output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("move it aside"));
}

#[test]
fn check_names_the_originals_units_under_a_root() {
    let fx = Fixture::new();
    let root = tempfile::tempdir().unwrap();
    let units = root.path().join("etc/systemd/system");
    std::fs::create_dir_all(&units).unwrap();
    std::fs::write(
        units.join("ruroco.service"),
        "[Service]\nExecStart=/usr/local/bin/ruroco-server --config /etc/ruroco/config.toml\n",
    )
    .unwrap();
    let out = fx
        .command()
        .arg("--check")
        .arg("--root")
        .arg(root.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(&format!(
            "warning: {}/ruroco.service runs /usr/local/bin/ruroco-server",
            units.display()
        )) && text.contains("rm ")
            && text.contains("systemctl daemon-reload"),
        "{text}"
    );
    let out = Command::new(BIN)
        .arg("--check-units")
        .arg("--root")
        .arg(root.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    // Nothing to say about a clean root.
    let clean = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .arg("--check-units")
        .arg("--root")
        .arg(clean.path())
        .output()
        .unwrap();
    assert!(out.status.success() && out.stdout.is_empty());
}
