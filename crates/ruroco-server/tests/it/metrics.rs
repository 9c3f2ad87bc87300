//! The server's metrics file: valid for `promtool check metrics`, and counting what the
//! test sent.

use std::time::Duration;

use nix::sys::signal::Signal;

use ruroco_testkit::{metric_value as value, promtool};

use crate::util::{now_nanos, Fixture};

const WAIT: Duration = Duration::from_secs(5);

#[test]
fn metrics_pass_promtool_and_count_what_was_sent() {
    let fx = Fixture::with_config("metrics_dir = \"METRICS\"\nkernel_filter = false");
    let metrics_dir = fx.path().join("metrics");
    std::fs::create_dir(&metrics_dir).unwrap();
    let text = std::fs::read_to_string(&fx.config).unwrap();
    std::fs::write(
        &fx.config,
        text.replace("METRICS", metrics_dir.to_str().unwrap()),
    )
    .unwrap();
    let inbox = fx.inbox();
    let server = fx.start();
    let file = metrics_dir.join("ruroco-server.prom");
    // Written at once at start.
    for _ in 0..50 {
        if file.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(file.exists());
    let first = fx.packet("a", now_nanos());
    server.send(&first);
    assert!(inbox.recv(WAIT).is_some());
    // Per-source limit is 2 a second: wait out the window between valid datagrams.
    std::thread::sleep(Duration::from_millis(1100));
    server.send(&fx.packet("a", now_nanos()));
    assert!(inbox.recv(WAIT).is_some());
    server.send(&first); // replay
    server.send(b"short");
    server.send(&[0u8; 200]);
    assert!(
        server.wait_log_count("rejected datagram", 3, WAIT),
        "{}",
        server.log_text()
    );
    server.signal(Signal::SIGHUP);
    assert!(server.wait_log("reloaded", WAIT));
    std::fs::write(&fx.config, "ips = 5\n").unwrap();
    server.signal(Signal::SIGHUP);
    assert!(server.wait_log("reload failed", WAIT));
    let log = server.stop();
    let text = std::fs::read_to_string(&file).unwrap();
    if let Some(complaints) = promtool(&text) {
        assert_eq!(complaints, "", "promtool on:\n{text}");
    }
    let r = |result: &str| {
        value(
            &text,
            &format!("ruroco_server_datagrams_total{{result=\"{result}\"}}"),
        )
    };
    assert_eq!(
        (r("accepted"), r("replay"), r("size"), r("auth")),
        (2.0, 1.0, 2.0, 0.0),
        "{log}"
    );
    assert_eq!(
        value(&text, "ruroco_server_accepted_total{wire=\"v1\"}"),
        2.0
    );
    assert_eq!(value(&text, "ruroco_server_forwards_total"), 2.0);
    assert_eq!(value(&text, "ruroco_server_forward_errors_total"), 0.0);
    assert_eq!(
        value(&text, "ruroco_server_floor_write_duration_seconds_count"),
        2.0
    );
    assert_eq!(value(&text, "ruroco_server_keys"), 1.0);
    assert_eq!(
        value(&text, "ruroco_server_reloads_total{result=\"ok\"}"),
        1.0
    );
    assert_eq!(
        value(&text, "ruroco_server_reloads_total{result=\"failed\"}"),
        1.0
    );
    assert!(value(&text, "ruroco_server_start_time_seconds") > 1.7e9);
    assert!(text.contains("ruroco_server_build_info{version=\""));
    // No address and no key appears as a label value.
    assert!(!text.contains("127.0.0.1"));
}

/// Under the shipped unit's `UMask=0077` the file is still 0644: node_exporter, another
/// user, must read it.
#[test]
fn the_metrics_file_is_world_readable_under_umask_077() {
    let fx = Fixture::with_config("metrics_dir = \"METRICS\"");
    let metrics_dir = fx.path().join("metrics");
    std::fs::create_dir(&metrics_dir).unwrap();
    let text = std::fs::read_to_string(&fx.config).unwrap();
    std::fs::write(
        &fx.config,
        text.replace("METRICS", metrics_dir.to_str().unwrap()),
    )
    .unwrap();
    let server = fx.command();
    let mut cmd = std::process::Command::new("/bin/sh");
    cmd.arg("-c")
        .arg("umask 077; exec \"$0\" \"$@\"")
        .arg(server.get_program())
        .args(server.get_args())
        .args(["--address", "127.0.0.1:0"])
        .env_remove("LISTEN_PID")
        .env_remove("LISTEN_FDS")
        .env_remove("RUROCO_LISTEN_ADDRESS");
    let running = crate::util::Running::spawn(cmd);
    let file = metrics_dir.join("ruroco-server.prom");
    for _ in 0..100 {
        if file.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&file).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o644, "{}", running.log_text());
    running.stop();
}
