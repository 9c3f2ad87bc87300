//! `[key_commands]`: a key runs only the commands on its list, a refused datagram still
//! advances its floor, and an unknown key name stops the server.

use std::process::Command;
use std::time::Duration;

use crate::compat::{key_string, now_nanos, send_raw, v0_datagram};
use crate::util::{workspace_bin, Stack};

const WAIT: Duration = Duration::from_secs(5);

#[test]
fn a_key_runs_only_its_commands_and_a_refused_datagram_stays_spent() {
    // The stack's key file is client.key: its name is `client`.
    let stack = Stack::start("[key_commands]\nclient = [\"other\"]\n");
    assert!(stack.server.log_text().contains("(1 with an allow-list)"));
    let refused = v0_datagram(&key_string(&stack), "default", now_nanos());
    send_raw(&stack, &refused);
    assert!(
        stack.server.wait_log("reason=not_allowed", WAIT),
        "{}",
        stack.logs()
    );
    // Its replay is a replay: the floor advanced although nothing was forwarded.
    send_raw(&stack, &refused);
    assert!(
        stack.server.wait_log("reason=replay", WAIT),
        "{}",
        stack.logs()
    );
    // A command on the list runs.
    stack.send_ok(&["-c", "other"]);
    stack.expect_runs("other", &["127.0.0.1"]);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        stack.wait_runs("default", 1, Duration::ZERO).is_empty(),
        "{}",
        stack.logs()
    );
    let Stack { server, .. } = stack;
    let log = server.stop();
    let counters = log.lines().rev().find(|l| l.contains("counters:")).unwrap();
    for want in ["accepted=1 ", "replay=1 ", "not_allowed=1"] {
        assert!(counters.contains(want), "{want} missing: {counters}");
    }
}

#[test]
fn an_unknown_key_name_is_a_warning_naming_it_and_the_server_starts() {
    let dir = tempfile::tempdir().unwrap();
    let key = Command::new(crate::util::CLIENT)
        .arg("gen")
        .output()
        .unwrap();
    std::fs::write(dir.path().join("laptop.key"), key.stdout).unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "ips = [\"127.0.0.1\"]\nconfig_dir = \"{}\"\n[key_commands]\nlaptopp = [\"open_ssh\"]\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let out = Command::new(workspace_bin("ruroco-server"))
        .arg("--config")
        .arg(&config)
        .arg("--check")
        .env_remove("LISTEN_FDS")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("warning: ") && text.contains("`laptopp`") && text.contains("config.toml"),
        "{text}"
    );
    assert!(text.contains("keys: laptop)"), "{text}");
}
