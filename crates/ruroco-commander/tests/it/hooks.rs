//! Hooks fire for each event with the right environment, and a hung hook neither delays
//! the next command nor outlives its timeout.

use std::time::{Duration, Instant};

use crate::util::{Fixture, ALLOW};

/// Each hook appends its environment as one line to {dir}/hooks.
const HOOK: &str = r#"echo \"$RUROCO_EVENT|$RUROCO_COMMAND|$RUROCO_IP|${RUROCO_EXIT-none}|${RUROCO_REASON-none}|$RUROCO_DURATION_MS\" >> {dir}/hooks"#;

fn hooks_table() -> String {
    let mut t = String::from("\n[hooks]\n");
    for event in [
        "on_success",
        "on_failure",
        "on_timeout",
        "on_refused",
        "on_undo",
    ] {
        t.push_str(&format!("{event} = \"{HOOK}\"\n"));
    }
    t
}

/// (event, command, ip, exit, reason, duration ms) of each hook line, sorted by event.
fn fired(fx: &Fixture, n: usize) -> Vec<Vec<String>> {
    let mut lines: Vec<Vec<String>> = fx
        .wait_lines("hooks", n, Duration::from_secs(8))
        .iter()
        .map(|l| l.split('|').map(str::to_owned).collect())
        .collect();
    lines.sort();
    lines
}

#[test]
fn each_hook_fires_with_the_right_environment() {
    let commands = format!(
        r#"ok = {{ cmd = "sleep 0.2", undo = "exit 5", undo_after_sec = 1, cooldown_sec = 60 }}
bad = "exit 3"
slow = {{ cmd = "sleep 30", timeout_sec = 1 }}
{}"#,
        hooks_table()
    );
    let fx = Fixture::new(&commands, ALLOW);
    let cmd = fx.start();
    fx.send("ok", "203.0.113.1");
    fx.send("bad", "203.0.113.2");
    fx.send("slow", "203.0.113.3");
    fx.send("ok", "203.0.113.1"); // within the cooldown: refused
    let got = fired(&fx, 5);
    assert_eq!(got.len(), 5, "{got:?}\n{}", cmd.log_text());
    let short: Vec<Vec<&str>> = got
        .iter()
        .map(|l| l[..5].iter().map(String::as_str).collect())
        .collect();
    assert_eq!(
        short,
        [
            ["failure", "bad", "203.0.113.2", "3", "none"],
            ["refused", "ok", "203.0.113.1", "none", "cooldown"],
            ["success", "ok", "203.0.113.1", "0", "none"],
            ["timeout", "slow", "203.0.113.3", "none", "none"],
            ["undo", "ok", "203.0.113.1", "5", "none"],
        ],
        "{}",
        cmd.log_text()
    );
    let ms = |event: &str| -> u64 {
        got.iter().find(|l| l[0] == event).unwrap()[5]
            .parse()
            .unwrap()
    };
    assert!((150..2_000).contains(&ms("success")), "{}", ms("success"));
    assert!((900..3_000).contains(&ms("timeout")), "{}", ms("timeout"));
    assert_eq!(ms("refused"), 0);
    // A hook never triggers another hook: five events, five lines, no more.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(fx.lines("hooks").len(), 5);
}

#[test]
fn a_hung_hook_is_killed_at_its_timeout_without_delaying_the_next_command() {
    let commands = r#"default = "date +%s%N >> {dir}/ran"

[hooks]
on_success = "sleep 30"
timeout_sec = 1
"#;
    let fx = Fixture::new(commands, ALLOW);
    let cmd = fx.start();
    fx.send("default", "203.0.113.1");
    assert_eq!(fx.wait_lines("ran", 1, Duration::from_secs(5)).len(), 1);
    // The first hook hangs now; the next command must still run at once.
    let sent = Instant::now();
    fx.send("default", "203.0.113.1");
    assert_eq!(fx.wait_lines("ran", 2, Duration::from_secs(5)).len(), 2);
    let took = sent.elapsed();
    assert!(
        took < Duration::from_millis(500),
        "the command waited {took:?}"
    );
    assert!(
        cmd.wait_log(
            "hook on_success for default timed out",
            Duration::from_secs(5)
        ),
        "{}",
        cmd.log_text()
    );
    let line = cmd
        .find_log("hook on_success for default timed out")
        .unwrap();
    assert!(line.contains("process group killed"), "{line}");
}

#[test]
fn hooks_past_the_bound_are_dropped_with_a_log_line() {
    let commands = r#"default = "true"

[hooks]
on_success = "sleep 3"
timeout_sec = 5
"#;
    let fx = Fixture::new(commands, ALLOW);
    let cmd = fx.start();
    for _ in 0..10 {
        fx.send("default", "203.0.113.1");
    }
    assert!(
        cmd.wait_log_count("succeeded", 10, Duration::from_secs(5)),
        "{}",
        cmd.log_text()
    );
    assert!(
        cmd.wait_log("hooks are running", Duration::from_secs(2)),
        "{}",
        cmd.log_text()
    );
    assert_eq!(cmd.count_log("hook on_success for default dropped"), 2);
}
