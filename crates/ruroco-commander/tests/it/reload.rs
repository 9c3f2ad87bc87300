//! SIGHUP reloads the commands without touching running ones or pending undos; a broken
//! file changes nothing; `--check` finds each kind of problem; metrics pass promtool.

use std::process::Command;
use std::time::Duration;

use nix::sys::signal::Signal;
use ruroco_testkit::{metric_value as value, promtool};

use crate::util::{Fixture, ALLOW, BIN};

const WAIT: Duration = Duration::from_secs(5);

#[test]
fn reload_adds_commands_and_leaves_running_ones_and_undos_alone() {
    let fx = Fixture::new(
        r#"slow = "sleep 1; echo slow $RUROCO_IP >> {dir}/ran"
open = { cmd = "true", undo = "echo undo >> {dir}/ran", undo_after_sec = 60 }"#,
        ALLOW,
    );
    let cmd = fx.start();
    fx.send("open", "192.0.2.1");
    assert!(cmd.wait_log("undo due", WAIT));
    fx.send("slow", "192.0.2.2");
    assert!(cmd.wait_log("running command slow", WAIT));
    let d = fx.path().display().to_string();
    std::fs::write(
        &fx.commands,
        format!("[commands]\nfresh = \"echo fresh $RUROCO_IP >> {d}/ran\"\n"),
    )
    .unwrap();
    cmd.signal(Signal::SIGHUP);
    assert!(
        cmd.wait_log("reloaded 1 command(s)", WAIT),
        "{}",
        cmd.log_text()
    );
    fx.send("fresh", "192.0.2.3");
    let ran = fx.wait_lines("ran", 2, WAIT);
    assert_eq!(
        ran,
        ["fresh 192.0.2.3", "slow 192.0.2.2"],
        "{}",
        cmd.log_text()
    );
    // The removed command is unknown now; its pending undo is still there.
    fx.send("slow", "192.0.2.2");
    assert!(cmd.wait_log("unknown command hash", WAIT));
    assert!(fx.pending().starts_with("open\t192.0.2.1\t"));
}

#[test]
fn a_broken_reload_keeps_the_old_commands_and_names_file_line_and_entry() {
    let fx = Fixture::new(r#"default = "echo $RUROCO_IP >> {dir}/ran""#, ALLOW);
    let cmd = fx.start();
    let good = std::fs::read_to_string(&fx.commands).unwrap();
    for (n, (text, wants)) in [
        (
            good.clone() + "bad = 5\n",
            vec!["commands.toml", "entry `bad`"],
        ),
        ("[commands\n".to_owned(), vec!["commands.toml", "line 1"]),
        (
            good.clone() + "[hooks]\non_sucess = \"x\"\n",
            vec!["commands.toml", "on_sucess"],
        ),
    ]
    .into_iter()
    .enumerate()
    {
        std::fs::write(&fx.commands, &text).unwrap();
        cmd.signal(Signal::SIGHUP);
        assert!(
            cmd.wait_log_count("reload failed", n + 1, WAIT),
            "{}",
            cmd.log_text()
        );
        let log = cmd.log_text();
        let line = log
            .lines()
            .rev()
            .find(|l| l.contains("reload failed"))
            .unwrap();
        for want in wants {
            assert!(line.contains(want), "{want} missing: {line}");
        }
        fx.send("default", "192.0.2.9");
        assert_eq!(fx.wait_lines("ran", n + 1, WAIT).len(), n + 1, "{log}");
    }
}

fn check(fx: &Fixture) -> (bool, String) {
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&fx.config)
        .arg("--commands")
        .arg(&fx.commands)
        .arg("--check")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn check_reports_each_kind_of_problem_and_binds_nothing() {
    let fx = Fixture::new(r#"default = "true""#, ALLOW);
    let (ok, out) = check(&fx);
    assert!(ok, "{out}");
    assert_eq!(
        out.trim(),
        format!(
            "{}: OK (1 command(s) from {})",
            fx.config.display(),
            fx.commands.display()
        )
    );
    assert!(!fx.socket().exists(), "--check bound the socket");

    let good_commands = std::fs::read_to_string(&fx.commands).unwrap();
    std::fs::write(
        &fx.commands,
        good_commands.clone() + "x = { cmd = \"y\", undo = \"z\" }\n",
    )
    .unwrap();
    let (ok, out) = check(&fx);
    assert!(
        !ok && out.contains("entry `x`") && out.contains("undo_after_sec"),
        "{out}"
    );
    std::fs::write(&fx.commands, &good_commands).unwrap();

    let good_config = std::fs::read_to_string(&fx.config).unwrap();
    for (extra, want) in [
        ("socket_userr = \"x\"\n", "socket_userr"),
        ("[commands]\nother = \"true\"\n", "defined twice"),
    ] {
        std::fs::write(&fx.config, good_config.clone() + extra).unwrap();
        let (ok, out) = check(&fx);
        assert!(!ok && out.contains(want), "{want}: {out}");
    }
    let owner = good_config.replace("socket_user = \"\"", "socket_user = \"no-such-user-here\"");
    std::fs::write(&fx.config, owner).unwrap();
    let (ok, out) = check(&fx);
    assert!(!ok && out.contains("no-such-user-here"), "{out}");
    std::fs::write(&fx.config, &good_config).unwrap();

    std::fs::create_dir_all(fx.path().join("state")).unwrap();
    std::fs::write(
        fx.path().join("state/pending-undos.toml"),
        "[[undo]]\nx = 1\n",
    )
    .unwrap();
    let (ok, out) = check(&fx);
    assert!(!ok && out.contains("pending-undos.toml"), "{out}");
    // --check only reads: the bad state file is still where it was.
    assert!(fx.path().join("state/pending-undos.toml").exists());
}

#[test]
fn metrics_pass_promtool_and_count_what_ran() {
    let fx = Fixture::new(
        r#"ok = { cmd = "true", cooldown_sec = 60, undo = "true", undo_after_sec = 1 }
bad = "exit 2"

[hooks]
on_failure = "true"
"#,
        &format!("{ALLOW}\nmetrics_dir = \"METRICS\""),
    );
    let metrics = fx.path().join("metrics");
    std::fs::create_dir(&metrics).unwrap();
    let config = std::fs::read_to_string(&fx.config).unwrap();
    std::fs::write(
        &fx.config,
        config.replace("METRICS", metrics.to_str().unwrap()),
    )
    .unwrap();
    let cmd = fx.start();
    fx.send("ok", "192.0.2.1");
    fx.send("ok", "192.0.2.1"); // cooldown
    fx.send("bad", "192.0.2.2");
    fx.send("nope", "192.0.2.2");
    assert!(
        cmd.wait_log("undo of ok for 192.0.2.1 succeeded", WAIT),
        "{}",
        cmd.log_text()
    );
    assert!(
        cmd.wait_log("hook on_failure for bad succeeded", WAIT),
        "{}",
        cmd.log_text()
    );
    cmd.signal(Signal::SIGHUP);
    assert!(cmd.wait_log("reloaded", WAIT));
    let log = cmd.stop();
    let text = std::fs::read_to_string(metrics.join("ruroco-commander.prom")).unwrap();
    if let Some(complaints) = promtool(&text) {
        assert_eq!(complaints, "", "promtool on:\n{text}");
    }
    let c = |command: &str, outcome: &str| {
        value(
            &text,
            &format!(
                "ruroco_commander_commands_total{{command=\"{command}\",outcome=\"{outcome}\"}}"
            ),
        )
    };
    assert_eq!(
        (c("ok", "success"), c("ok", "refused"), c("bad", "failure")),
        (1.0, 1.0, 1.0),
        "{log}"
    );
    assert_eq!(
        value(
            &text,
            "ruroco_commander_refusals_total{command=\"ok\",reason=\"cooldown\"}"
        ),
        1.0
    );
    assert_eq!(value(&text, "ruroco_commander_unknown_commands_total"), 1.0);
    assert_eq!(
        value(&text, "ruroco_commander_undos_total{outcome=\"success\"}"),
        1.0
    );
    assert_eq!(
        value(
            &text,
            "ruroco_commander_hooks_total{event=\"failure\",outcome=\"success\"}"
        ),
        1.0
    );
    assert_eq!(
        value(
            &text,
            "ruroco_commander_command_duration_seconds_count{command=\"bad\"}"
        ),
        1.0
    );
    assert_eq!(value(&text, "ruroco_commander_pending_undos"), 0.0);
    assert_eq!(value(&text, "ruroco_commander_running"), 0.0);
    assert_eq!(
        value(&text, "ruroco_commander_reloads_total{result=\"ok\"}"),
        1.0
    );
    assert!(!text.contains("192.0.2."), "an address became a label");
}

#[test]
fn repeated_runs_see_their_own_ip_and_a_reload_runs_the_new_line() {
    // From the second run on, the command starts in a shell made ahead of time.
    let fx = Fixture::new(
        r#"default = "echo \"a $RUROCO_IP [$(cat)] $$\" >> {dir}/ran""#,
        ALLOW,
    );
    let cmd = fx.start();
    for (i, ip) in ["192.0.2.1", "2001:db8::2", "192.0.2.3"].iter().enumerate() {
        fx.send("default", ip);
        assert_eq!(
            fx.wait_lines("ran", i + 1, WAIT).len(),
            i + 1,
            "{}",
            cmd.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let ran = fx.lines("ran");
    let fields: Vec<Vec<&str>> = ran.iter().map(|l| l.split(' ').collect()).collect();
    for (f, ip) in fields.iter().zip(["192.0.2.1", "2001:db8::2", "192.0.2.3"]) {
        assert_eq!(&f[..3], ["a", ip, "[]"], "{ran:?}");
    }
    assert_ne!(fields[1][3], fields[2][3], "each run is its own shell");
    let d = fx.path().display().to_string();
    std::fs::write(
        &fx.commands,
        format!("[commands]\ndefault = \"echo b $RUROCO_IP >> {d}/ran\"\n"),
    )
    .unwrap();
    cmd.signal(Signal::SIGHUP);
    assert!(cmd.wait_log("reloaded", WAIT));
    fx.send("default", "192.0.2.4");
    let ran = fx.wait_lines("ran", 4, WAIT);
    assert_eq!(ran[3], "b 192.0.2.4", "the old line ran after a reload");
}
