//! What runs, for whom, and for how long.

use std::time::{Duration, Instant};

use crate::util::Fixture;

const WRITE_IP: &str = r#"default = "echo \"$RUROCO_IP\" >> {dir}/ran""#;

#[test]
fn command_runs_with_the_client_ip_v4_and_v6() {
    let fx = Fixture::new(WRITE_IP, "");
    let cmd = fx.start();
    fx.send("default", "8.8.8.8");
    assert_eq!(
        fx.wait_file("ran", Duration::from_secs(5)).as_deref(),
        Some("8.8.8.8\n"),
        "{}",
        cmd.log_text()
    );
    fx.send("default", "2606:4700::1111");
    assert!(
        cmd.wait_log_count("succeeded", 2, Duration::from_secs(5)),
        "{}",
        cmd.log_text()
    );
    let ran = std::fs::read_to_string(fx.path().join("ran")).unwrap();
    assert_eq!(ran, "8.8.8.8\n2606:4700::1111\n");
    assert!(
        cmd.log_text()
            .contains("command default for 8.8.8.8 succeeded"),
        "{}",
        cmd.log_text()
    );
}

#[test]
fn output_and_exit_status_are_logged() {
    let fx = Fixture::new(
        r#"default = "echo out-text; echo err-text >&2; exit 4""#,
        "",
    );
    let cmd = fx.start();
    fx.send("default", "9.9.9.9");
    assert!(
        cmd.wait_log("failed", Duration::from_secs(5)),
        "{}",
        cmd.log_text()
    );
    let line = cmd.find_log("failed").unwrap();
    for want in ["9.9.9.9", "exit status: 4", "out-text", "err-text"] {
        assert!(line.contains(want), "{want} missing: {line}");
    }
}

#[test]
fn timeout_kills_sleep_and_its_children() {
    let fx = Fixture::new(
        r#"default = { cmd = "sleep 100 & echo $! > {dir}/child.pid; sleep 100", timeout_sec = 1 }"#,
        "",
    );
    let cmd = fx.start();
    fx.send("default", "8.8.8.8");
    let pid: i32 = fx
        .wait_file("child.pid", Duration::from_secs(5))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        cmd.wait_log("timed out", Duration::from_secs(5)),
        "{}",
        cmd.log_text()
    );
    // The background child is gone (or a zombie awaiting its new parent's reaping).
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    loop {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => break,
            Ok(stat) if stat.split(") ").nth(1).is_some_and(|s| s.starts_with('Z')) => break,
            Ok(stat) => assert!(
                std::time::Instant::now() < deadline,
                "child {pid} survived: {stat}"
            ),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn two_slow_commands_run_side_by_side() {
    let fx = Fixture::new(
        r#"
        a = "echo start-a >> {dir}/events; sleep 1; echo end-a >> {dir}/events"
        b = "echo start-b >> {dir}/events; sleep 1; echo end-b >> {dir}/events"
        "#,
        "",
    );
    let cmd = fx.start();
    fx.send("a", "8.8.8.8");
    fx.send("b", "8.8.4.4");
    assert!(
        cmd.wait_log_count("succeeded", 2, Duration::from_secs(10)),
        "{}",
        cmd.log_text()
    );
    let events = std::fs::read_to_string(fx.path().join("events")).unwrap();
    let order: Vec<&str> = events.lines().collect();
    // Both started before either ended: the second did not wait for the first.
    assert_eq!(order.len(), 4, "{events}");
    assert!(
        order[..2].iter().all(|e| e.starts_with("start")),
        "{events}"
    );
}

/// Two knocks 100 ms apart for a command with an undo, from one address: the second run
/// waits for the first (a check-then-act line run twice at once would act twice, and the
/// one pending undo takes back only one); from another address it does not wait.
#[test]
fn runs_of_a_command_with_an_undo_for_one_address_take_turns() {
    let fx = Fixture::new(
        r#"opened = { cmd = "echo start $RUROCO_IP >> {dir}/events; sleep 0.5; echo end $RUROCO_IP >> {dir}/events", undo = "true", undo_after_sec = 3600 }"#,
        "",
    );
    let cmd = fx.start();
    fx.send("opened", "8.8.8.8");
    std::thread::sleep(Duration::from_millis(100));
    fx.send("opened", "8.8.8.8");
    assert!(
        cmd.wait_log_count("succeeded", 2, Duration::from_secs(10)),
        "{}",
        cmd.log_text()
    );
    let events = std::fs::read_to_string(fx.path().join("events")).unwrap();
    let order: Vec<&str> = events.lines().collect();
    assert_eq!(
        order,
        [
            "start 8.8.8.8",
            "end 8.8.8.8",
            "start 8.8.8.8",
            "end 8.8.8.8"
        ],
        "{events}"
    );
    std::fs::remove_file(fx.path().join("events")).unwrap();
    fx.send("opened", "8.8.8.8");
    std::thread::sleep(Duration::from_millis(100));
    fx.send("opened", "8.8.4.4");
    assert!(
        cmd.wait_log_count("succeeded", 4, Duration::from_secs(10)),
        "{}",
        cmd.log_text()
    );
    let events = std::fs::read_to_string(fx.path().join("events")).unwrap();
    let order: Vec<&str> = events.lines().collect();
    assert_eq!(order.len(), 4, "{events}");
    assert!(
        order[..2].iter().all(|e| e.starts_with("start")),
        "another address waited: {events}"
    );
}

#[test]
fn knocks_for_the_same_command_and_address_run_side_by_side() {
    // A command without an undo: a burst of knocks from one address is not queued
    // behind its first run (a command with one takes turns, above).
    let fx = Fixture::new(
        r#"a = "echo start >> {dir}/events; sleep 1; echo end >> {dir}/events""#,
        "",
    );
    let cmd = fx.start();
    for _ in 0..3 {
        fx.send("a", "8.8.8.8");
    }
    assert!(
        cmd.wait_log_count("succeeded", 3, Duration::from_secs(10)),
        "{}",
        cmd.log_text()
    );
    let events = std::fs::read_to_string(fx.path().join("events")).unwrap();
    let order: Vec<&str> = events.lines().collect();
    assert_eq!(
        order,
        ["start", "start", "start", "end", "end", "end"],
        "{events}"
    );
}

/// The commander's children waiting as warm shells (blocked reading an address).
fn warm_shells(commander: i32) -> Vec<i32> {
    let children = std::fs::read_to_string(format!("/proc/{commander}/task/{commander}/children"))
        .unwrap_or_default();
    children
        .split_whitespace()
        .filter_map(|pid| pid.parse().ok())
        .filter(|pid: &i32| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains("read -r RUROCO_IP"))
                .unwrap_or(false)
        })
        .collect()
}

/// Waits up to 5 s for the commander's warm shells to number `n`; them.
fn wait_warm(commander: i32, n: usize) -> Vec<i32> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let warm = warm_shells(commander);
        if warm.len() == n || Instant::now() > deadline {
            return warm;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn knocks_start_in_shells_made_ready_ahead() {
    let fx = Fixture::new(r#"a = "echo $$ >> {dir}/shells""#, "");
    let cmd = fx.start();
    let commander = cmd.pid().as_raw();
    // Ready from the start: even the first knock starts with one write.
    let warm = wait_warm(commander, 1);
    assert_eq!(warm.len(), 1, "one warm shell for `a`: {warm:?}");
    fx.send("a", "8.8.8.8");
    let shells = fx.wait_lines("shells", 1, Duration::from_secs(5));
    assert_eq!(shells, [warm[0].to_string()]);
    // And a new one for the next knock, once the commander is quiet.
    let warm = wait_warm(commander, 1);
    assert_eq!(warm.len(), 1, "{warm:?}");
    assert_ne!(shells[0], warm[0].to_string());
    fx.send("a", "8.8.4.4");
    let shells = fx.wait_lines("shells", 2, Duration::from_secs(5));
    assert_eq!(shells.get(1), Some(&warm[0].to_string()), "{shells:?}");
}

#[test]
fn unknown_hash_runs_nothing() {
    let fx = Fixture::new(WRITE_IP, "");
    let cmd = fx.start();
    fx.send("not-configured", "8.8.8.8");
    assert!(
        cmd.wait_log("unknown command hash", Duration::from_secs(5)),
        "{}",
        cmd.log_text()
    );
    assert_eq!(fx.wait_file("ran", Duration::from_millis(300)), None);
}

#[test]
fn non_routable_ip_is_refused_by_default() {
    let fx = Fixture::new(WRITE_IP, "");
    let cmd = fx.start();
    for ip in ["127.0.0.1", "10.1.2.3", "fe80::1", "::1", "192.0.2.4"] {
        fx.send("default", ip);
    }
    assert!(
        cmd.wait_log_count("non-routable", 5, Duration::from_secs(5)),
        "{}",
        cmd.log_text()
    );
    assert_eq!(fx.wait_file("ran", Duration::from_millis(300)), None);
}

#[test]
fn non_routable_ip_is_allowed_by_the_flag() {
    let fx = Fixture::new(WRITE_IP, "allow_non_routable_ips = true");
    let cmd = fx.start();
    fx.send("default", "127.0.0.1");
    assert_eq!(
        fx.wait_file("ran", Duration::from_secs(5)).as_deref(),
        Some("127.0.0.1\n"),
        "{}",
        cmd.log_text()
    );
}

#[test]
fn malformed_messages_run_nothing() {
    let fx = Fixture::new(WRITE_IP, "");
    let cmd = fx.start();
    let valid = ruroco_ipc::CommanderMessage {
        cmd_hash: ruroco_ipc::command_hash("default"),
        ip: "8.8.8.8".parse().unwrap(),
    }
    .encode();
    fx.send_raw(&valid[..10]);
    fx.send_raw(&[]);
    let mut long = valid.to_vec();
    long.extend_from_slice(&[0; 8]);
    fx.send_raw(&long);
    assert!(
        cmd.wait_log_count("rejected", 2, Duration::from_secs(5)),
        "{}",
        cmd.log_text()
    );
    assert!(
        cmd.wait_log("oversized", Duration::from_secs(5)),
        "{}",
        cmd.log_text()
    );
    assert_eq!(fx.wait_file("ran", Duration::from_millis(300)), None);
    // Still serving afterwards.
    fx.send_raw(&valid);
    assert!(
        fx.wait_file("ran", Duration::from_secs(5)).is_some(),
        "{}",
        cmd.log_text()
    );
}

#[test]
fn stalled_connections_never_delay_a_timeout_or_an_undo() {
    let fx = Fixture::new(
        r#"slow = { cmd = "echo started >> {dir}/events; sleep 30", timeout_sec = 1 }
open_ssh = { cmd = "echo open $(date +%s%N) >> {dir}/events", undo = "echo close $(date +%s%N) >> {dir}/events", undo_after_sec = 1 }"#,
        "",
    );
    let cmd = fx.start();
    fx.send("slow", "8.8.8.8");
    fx.send("open_ssh", "8.8.8.8");
    let started = std::time::Instant::now();
    fx.wait_lines("events", 2, Duration::from_secs(5));
    // A compromised sender keeps 64 connections open that each send one byte and hang,
    // renewing them for 3 s.
    let mut stalled = Vec::new();
    while started.elapsed() < Duration::from_secs(3) {
        for _ in 0..64 {
            if let Ok(mut s) = std::os::unix::net::UnixStream::connect(fx.socket()) {
                let _ = std::io::Write::write_all(&mut s, &[1]);
                stalled.push(s);
            }
        }
        std::thread::sleep(Duration::from_millis(300));
        if stalled.len() > 2000 {
            stalled.drain(..1000);
        }
    }
    // The timeout struck within its second (plus slack), and the undo came due on time.
    let log = cmd.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("command slow for 8.8.8.8 timed out"))
        .unwrap_or_else(|| panic!("{log}"));
    let ms: u64 = line
        .split("after ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    assert!(ms < 1600, "killed after {ms} ms: {line}");
    let events = fx.lines("events");
    let at = |kind: &str| -> u128 {
        events
            .iter()
            .find_map(|l| l.strip_prefix(kind).map(|t| t.trim().parse().unwrap()))
            .unwrap_or_else(|| panic!("no {kind} in {events:?}\n{log}"))
    };
    let late = (at("close") - at("open")) as f64 / 1e9;
    assert!(
        (0.9..1.8).contains(&late),
        "undo {late} s after the open\n{log}"
    );
    assert!(log.contains("sent no complete message"), "{log}");
    drop(stalled);
}

/// The state letter of a process (`None` once it is gone).
fn proc_state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(") ").next()?.chars().next()
}

#[test]
fn the_shell_stays_unreaped_while_a_setsid_child_holds_the_output() {
    // The shell exits at once; a `setsid` child keeps stdout open past the deadline.
    let fx = Fixture::new(
        r#"default = { cmd = "echo $$ > {dir}/shell.pid; setsid sleep 4 & exit 0", timeout_sec = 1 }"#,
        "",
    );
    let cmd = fx.start();
    fx.send("default", "8.8.8.8");
    let pid: i32 = fx
        .wait_file("shell.pid", Duration::from_secs(5))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    // Exited, but kept as a zombie: its pid, and so its process group ID, cannot be
    // reused by another program whose group the deadline would then kill.
    assert_eq!(proc_state(pid), Some('Z'), "{}", cmd.log_text());
    assert!(
        cmd.wait_log("no longer reading it", Duration::from_secs(5)),
        "{}",
        cmd.log_text()
    );
    // Reaped once the job is done.
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while proc_state(pid).is_some() {
        assert!(
            std::time::Instant::now() < deadline,
            "shell {pid} never reaped"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        cmd.wait_log(
            "command default for 8.8.8.8 succeeded",
            Duration::from_secs(3)
        ),
        "{}",
        cmd.log_text()
    );
}

/// A released-layout config.toml (`[commands]` in it) that says nothing about
/// non-routable addresses runs commands for them, as the released ruroco did, and says so
/// at start and in `--check`; `allow_non_routable_ips = false` refuses them there too.
#[test]
fn the_released_layout_runs_for_private_addresses_as_the_original_did() {
    for explicit in ["", "allow_non_routable_ips = false\n"] {
        let fx = Fixture::new("", "");
        std::fs::remove_file(&fx.commands).unwrap();
        let d = fx.path().display().to_string();
        std::fs::write(
            &fx.config,
            format!(
                "config_dir = \"{d}\"\nstate_dir = \"{d}/state\"\nsocket_user = \"\"\nsocket_group = \"\"\n{explicit}[commands]\ndefault = \"echo $RUROCO_IP >> {d}/ran\"\n"
            ),
        )
        .unwrap();
        let run = |args: &[&str]| {
            let mut cmd = std::process::Command::new(crate::util::BIN);
            cmd.arg("--config").arg(&fx.config).args(args);
            cmd
        };
        let check = run(&["--check"]).output().unwrap();
        let said = String::from_utf8_lossy(&check.stdout);
        assert!(check.status.success(), "{said}");
        assert_eq!(
            said.contains("commands run for loopback, private and link-local client addresses too"),
            explicit.is_empty(),
            "{said}"
        );
        let daemon = crate::util::Daemon::spawn(run(&[]), "listening on");
        fx.send("default", "10.1.2.3");
        if explicit.is_empty() {
            assert!(
                daemon.log_text().contains("as the released ruroco did"),
                "{}",
                daemon.log_text()
            );
            assert_eq!(
                fx.wait_file("ran", Duration::from_secs(5)).as_deref(),
                Some("10.1.2.3\n"),
                "{}",
                daemon.log_text()
            );
        } else {
            assert!(
                daemon.wait_log("non-routable", Duration::from_secs(5)),
                "{}",
                daemon.log_text()
            );
            assert_eq!(fx.wait_file("ran", Duration::from_millis(300)), None);
        }
    }
}

/// What commands.toml(5) says a command finds in its environment is what it finds:
/// RUROCO_IP (and the commander's own markers), not RUROCO_COMMAND, which hooks get.
#[test]
fn a_commands_environment_is_what_the_reference_says() {
    let fx = Fixture::new(
        r#"default = "env | grep ^RUROCO_ | cut -d= -f1 | sort > {dir}/env""#,
        "allow_non_routable_ips = true",
    );
    let cmd = fx.start();
    fx.send("default", "192.0.2.1");
    let env = fx
        .wait_file("env", Duration::from_secs(5))
        .unwrap_or_else(|| cmd.log_text());
    let names: Vec<&str> = env.lines().collect();
    assert_eq!(
        names,
        ["RUROCO_COMMANDER", "RUROCO_COMMANDER_RUN", "RUROCO_IP"],
        "{env}"
    );
    let doc = ruroco_config::fields::COMMAND_KEYS.doc;
    assert!(
        doc.contains("RUROCO_IP") && doc.contains("RUROCO_COMMAND is set for hooks only"),
        "{doc}"
    );
}
