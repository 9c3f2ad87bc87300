//! The operator-facing files of `packaging/`, checked with the real tools.

use std::net::UdpSocket;
use std::process::Command;
use std::time::Duration;

use ruroco_proto::{seal, Key, Plaintext, Wire};

use crate::util::{now_nanos, packaging_dir, tool, Daemon, Fixture, Running, BIN};

const UNITS: [&str; 4] = [
    "ruroco.socket",
    "ruroco.service",
    "ruroco-commander.socket",
    "ruroco-commander.service",
];

/// Copies of the units whose ExecStart points at the binaries just built.
fn units_for_this_build() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let bin_dir = std::path::Path::new(BIN).parent().unwrap();
    assert!(
        bin_dir.join("ruroco-commander").exists(),
        "build with `cargo test --workspace`"
    );
    for unit in UNITS {
        let text = std::fs::read_to_string(packaging_dir().join("systemd").join(unit)).unwrap();
        let text = text.replace("/usr/bin/", &format!("{}/", bin_dir.display()));
        std::fs::write(dir.path().join(unit), text).unwrap();
    }
    dir
}

#[test]
fn systemd_units_verify_cleanly() {
    let Some(analyze) = tool("systemd-analyze") else {
        return;
    };
    let dir = units_for_this_build();
    let out = Command::new(analyze)
        .args(["verify", "--man=no"])
        .args(UNITS.map(|u| dir.path().join(u)))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // verify reports unknown keys and bad values as warnings with exit status 0.
    assert!(
        stderr.trim().is_empty(),
        "systemd-analyze verify complained:\n{stderr}"
    );
}

#[test]
fn server_unit_is_strictly_sandboxed() {
    let Some(analyze) = tool("systemd-analyze") else {
        return;
    };
    let dir = units_for_this_build();
    let out = Command::new(analyze)
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(dir.path().join("ruroco.service"))
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let exposure: f64 = text
        .split("Overall exposure level for ruroco.service: ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{text}"));
    assert!(
        exposure <= 2.0,
        "exposure {exposure} is more than 2.0:\n{text}"
    );
    let unit = std::fs::read_to_string(dir.path().join("ruroco.service")).unwrap();
    for line in [
        "User=ruroco",
        "CapabilityBoundingSet=\n",
        "RestrictAddressFamilies=AF_UNIX\n",
        "StateDirectory=ruroco",
        "ReadOnlyPaths=/etc/ruroco",
    ] {
        assert!(unit.contains(line), "{line:?} missing in ruroco.service");
    }
}

#[test]
fn example_config_matches_the_units() {
    let config = ruroco_config::Config::load(&packaging_dir().join("config/config.toml")).unwrap();
    assert!(config.ips.is_some());
    assert_eq!(
        config.blocklist_dir(),
        std::path::Path::new("/var/lib/ruroco"),
        "StateDirectory=ruroco"
    );
    assert_eq!(
        config.socket_path(),
        std::path::Path::new("/run/ruroco/ruroco.socket"),
        "ListenStream= of ruroco-commander.socket"
    );
    // The socket systemd makes is the one the commander would bind: same path, owner and
    // mode (the commander refuses another path and sets the mode again).
    let socket_unit =
        std::fs::read_to_string(packaging_dir().join("systemd/ruroco-commander.socket")).unwrap();
    for line in [
        format!("ListenStream={}", config.socket_path().display()),
        format!("SocketUser={}", config.socket_user),
        format!("SocketGroup={}", config.socket_group),
        "SocketMode=0204".to_owned(),
    ] {
        assert!(
            socket_unit.lines().any(|l| l == line),
            "{line} missing in ruroco-commander.socket"
        );
    }
    assert_eq!(config.socket_user, "ruroco", "User=ruroco");
    assert_eq!(
        config.state_dir(),
        std::path::Path::new("/var/lib/ruroco-commander"),
        "the commander's StateDirectory=ruroco-commander"
    );
    let unit =
        std::fs::read_to_string(packaging_dir().join("systemd/ruroco-commander.service")).unwrap();
    assert!(
        unit.contains("\nStateDirectory=ruroco-commander\n"),
        "{unit}"
    );
    // systemd removes a RuntimeDirectory= when the service stops: it would take the
    // socket that must outlive the commander with it.
    assert!(
        !unit.lines().any(|l| l.starts_with("RuntimeDirectory")),
        "{unit}"
    );
    assert!(
        unit.contains("\nRequires=ruroco-commander.socket\n"),
        "{unit}"
    );
}

#[test]
fn serves_under_systemd_socket_activate() {
    let Some(activate) = tool("systemd-socket-activate") else {
        return;
    };
    let fx = Fixture::new();
    let inbox = fx.inbox();
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = fx.command();
    let mut cmd = Command::new(activate);
    cmd.args(["--datagram", "-l", &format!("127.0.0.1:{port}")])
        .arg(server.get_program())
        .args(server.get_args())
        .env_remove("RUROCO_LISTEN_ADDRESS")
        .env_remove("LISTEN_PID")
        .env_remove("LISTEN_FDS");
    let daemon = Daemon::spawn(cmd, "Listening on");
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    // The first datagram starts the server, which reads it from the inherited socket. It
    // was made a moment before the server started, and a fresh key's floor is seeded a
    // little before the start: the knock that woke the server runs.
    client
        .send_to(&fx.packet("default", now_nanos()), ("127.0.0.1", port))
        .unwrap();
    let msg = inbox.recv(Duration::from_secs(10));
    assert!(msg.is_some(), "nothing forwarded:\n{}", daemon.log_text());
    assert!(
        daemon.log_text().contains("(socket activation)"),
        "{}",
        daemon.log_text()
    );
    daemon.stop();
}

#[test]
fn fail2ban_filter_matches_bad_traffic_from_v4_and_v6_and_nothing_else() {
    let Some(regex) = tool("fail2ban-regex") else {
        return;
    };
    let fx = Fixture::with_config("kernel_filter = false");
    let _inbox = fx.inbox();
    let mut cmd = fx.command();
    cmd.args(["--address", "[::]:0"]);
    let server = Running::spawn(cmd);
    let port = server.addr.port();
    let v4 = UdpSocket::bind("127.0.0.1:0").unwrap();
    let v6 = UdpSocket::bind("[::1]:0").unwrap();
    let stranger = Key::generate().unwrap();
    let plain = |counter| Plaintext {
        version: 1,
        cmd_hash: 1,
        counter,
        strict: true,
        src_ip: None,
        dst_ip: "127.0.0.1".parse().unwrap(),
    };
    // Bad before authentication: 2 from IPv4, 2 from IPv6.
    v4.send_to(&[0u8; 10], ("127.0.0.1", port)).unwrap();
    v4.send_to(
        &seal(&stranger, Wire::V1, &plain(now_nanos())).unwrap(),
        ("127.0.0.1", port),
    )
    .unwrap();
    let mut tampered = fx.packet("default", now_nanos());
    tampered[50] ^= 4;
    v6.send_to(&tampered, ("::1", port)).unwrap();
    v6.send_to(&[1u8; 200], ("::1", port)).unwrap();
    // Valid, then the same again (an authenticated replay): neither may be banned on.
    let valid = fx.packet("default", now_nanos());
    v4.send_to(&valid, ("127.0.0.1", port)).unwrap();
    assert!(
        server.wait_log("accepted datagram", Duration::from_secs(5)),
        "{}",
        server.log_text()
    );
    v4.send_to(&valid, ("127.0.0.1", port)).unwrap();
    assert!(
        server.wait_log("reason=replay", Duration::from_secs(5)),
        "{}",
        server.log_text()
    );
    assert!(server.wait_log_count("rejected datagram", 5, Duration::from_secs(5)));
    let log = server.stop();
    let log_file = fx.path().join("server.log");
    std::fs::write(&log_file, format!("{log}\n")).unwrap();

    let out = Command::new(regex)
        .args(["--print-all-matched", "--print-all-missed"])
        .arg(&log_file)
        .arg(packaging_dir().join("fail2ban/filter.d/ruroco.conf"))
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let total = log.lines().count();
    assert!(
        report.contains(&format!(
            "Lines: {total} lines, 0 ignored, 4 matched, {} missed",
            total - 4
        )),
        "{report}"
    );
    let matched = report.split("Matched line(s):").nth(1).unwrap_or_default();
    let matched = matched.split("Missed line(s):").next().unwrap_or_default();
    assert_eq!(
        matched.matches("from 127.0.0.1 reason=").count(),
        2,
        "{report}"
    );
    assert_eq!(matched.matches("from ::1 reason=").count(), 2, "{report}");
    assert!(
        !matched.contains("accepted") && !matched.contains("reason=replay"),
        "{report}"
    );
}

#[test]
fn units_check_before_start_and_reload_with_sighup() {
    for (unit, program) in [
        ("ruroco.service", "ruroco-server"),
        ("ruroco-commander.service", "ruroco-commander"),
    ] {
        let text = std::fs::read_to_string(packaging_dir().join("systemd").join(unit)).unwrap();
        let check = format!("/usr/bin/{program} --check --config /etc/ruroco/config.toml");
        assert!(
            text.contains(&format!("\nExecStartPre={check}\n")),
            "{unit}"
        );
        let reload = format!("\nExecReload={check}\nExecReload=/bin/kill -HUP $MAINPID\n");
        assert!(text.contains(&reload), "{unit}: check, then SIGHUP");
    }
}

/// The sysusers.d and tmpfiles.d files make the user and directories on any systemd
/// distribution: run by the real tools against a root of the test's own.
#[test]
fn sysusers_and_tmpfiles_make_the_user_and_directories() {
    let (Some(sysusers), Some(tmpfiles)) = (tool("systemd-sysusers"), tool("systemd-tmpfiles"))
    else {
        assert!(std::env::var_os("CI").is_none(), "CI installs systemd");
        return;
    };
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("etc")).unwrap();
    let conf = |dir: &str| {
        packaging_dir()
            .join(dir)
            .join("ruroco.conf")
            .canonicalize()
            .unwrap()
    };
    let run = |tool: &std::path::Path, args: &[&str], file: std::path::PathBuf| {
        let out = Command::new(tool)
            .arg(format!("--root={}", root.path().display()))
            .args(args)
            .arg(file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&sysusers, &[], conf("sysusers.d"));
    let passwd = std::fs::read_to_string(root.path().join("etc/passwd")).unwrap();
    let line = passwd.lines().find(|l| l.starts_with("ruroco:")).unwrap();
    let uid: u32 = line.split(':').nth(2).unwrap().parse().unwrap();
    assert!(line.ends_with(":/nonexistent:/usr/sbin/nologin"), "{line}");
    run(&tmpfiles, &["--create"], conf("tmpfiles.d"));
    use std::os::unix::fs::MetadataExt;
    for (dir, mode, owner) in [
        ("etc/ruroco", 0o750, 0),
        ("var/lib/ruroco", 0o700, uid),
        ("var/lib/ruroco-metrics", 0o755, uid),
        ("var/lib/ruroco-commander", 0o700, 0),
        ("run/ruroco", 0o755, 0),
    ] {
        let meta = std::fs::metadata(root.path().join(dir)).unwrap();
        assert_eq!((meta.mode() & 0o7777, meta.uid()), (mode, owner), "{dir}");
    }
}
