//! Cooldown and single flight refuse, one log line each, and let the right requests by.

use std::time::Duration;

use crate::util::{Fixture, ALLOW};

#[test]
fn cooldown_refuses_the_same_command_and_ip_within_the_window() {
    let fx = Fixture::new(
        r#"open_ssh = { cmd = "echo $RUROCO_IP >> {dir}/ran", cooldown_sec = 30 }"#,
        ALLOW,
    );
    let cmd = fx.start();
    fx.send("open_ssh", "203.0.113.7");
    assert_eq!(fx.wait_lines("ran", 1, Duration::from_secs(5)).len(), 1);
    fx.send("open_ssh", "203.0.113.7");
    assert!(
        cmd.wait_log("reason=cooldown", Duration::from_secs(5)),
        "{}",
        cmd.log_text()
    );
    let line = cmd.find_log("reason=cooldown").unwrap();
    assert!(
        line.contains("refused command open_ssh for 203.0.113.7")
            && line.contains("cooldown_sec = 30"),
        "{line}"
    );
    // Another IP has its own window.
    fx.send("open_ssh", "203.0.113.8");
    let ran = fx.wait_lines("ran", 2, Duration::from_secs(5));
    assert_eq!(ran, ["203.0.113.7", "203.0.113.8"], "{}", cmd.log_text());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(cmd.count_log("reason=cooldown"), 1);
    assert_eq!(fx.lines("ran").len(), 2);
}

#[test]
fn single_flight_refuses_while_an_instance_runs_and_not_after() {
    let fx = Fixture::new(
        r#"deploy = { cmd = "echo start >> {dir}/ran; sleep 1; echo end >> {dir}/ran", single_flight = true }"#,
        ALLOW,
    );
    let cmd = fx.start();
    fx.send("deploy", "203.0.113.7");
    assert_eq!(fx.wait_lines("ran", 1, Duration::from_secs(5)).len(), 1);
    fx.send("deploy", "203.0.113.8");
    assert!(
        cmd.wait_log("reason=single_flight", Duration::from_secs(5)),
        "{}",
        cmd.log_text()
    );
    assert!(cmd.wait_log("succeeded", Duration::from_secs(5)));
    fx.send("deploy", "203.0.113.8");
    let ran = fx.wait_lines("ran", 4, Duration::from_secs(5));
    assert_eq!(ran, ["start", "end", "start", "end"], "{}", cmd.log_text());
    assert_eq!(cmd.count_log("refused command"), 1);
}

#[test]
fn commands_without_limits_run_side_by_side() {
    let fx = Fixture::new(
        r#"default = "sleep 0.5; echo $RUROCO_IP >> {dir}/ran""#,
        ALLOW,
    );
    let cmd = fx.start();
    for ip in ["203.0.113.1", "203.0.113.1", "203.0.113.1"] {
        fx.send("default", ip);
    }
    let ran = fx.wait_lines("ran", 3, Duration::from_secs(5));
    assert_eq!(ran.len(), 3, "{}", cmd.log_text());
    assert_eq!(cmd.count_log("refused"), 0);
}
