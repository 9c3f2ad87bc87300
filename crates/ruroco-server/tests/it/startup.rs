//! Start-up refusals: each names the file and the field or key at fault.

use std::process::Command;

use crate::util::{Fixture, BIN};

/// Runs the server expecting it to refuse to start; returns stderr.
fn refuses(mut cmd: Command) -> String {
    let out = cmd.args(["--address", "127.0.0.1:0"]).output().unwrap();
    assert!(!out.status.success(), "server started but should not have");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn with_config(fx: &Fixture, text: &str) -> String {
    std::fs::write(&fx.config, text).unwrap();
    refuses(fx.command())
}

#[test]
fn unknown_key_is_named() {
    let fx = Fixture::new();
    let err = with_config(
        &fx,
        &format!(
            "ips = [\"127.0.0.1\"]\nconfig_dir = \"{}\"\nmax_request_per_second = 3\n",
            fx.path().display()
        ),
    );
    assert!(
        err.contains("max_request_per_second") && err.contains("config.toml"),
        "{err}"
    );
}

#[test]
fn wrong_type_is_named() {
    let fx = Fixture::new();
    let err = with_config(
        &fx,
        "ips = [\"127.0.0.1\"]\nmax_clock_skew_seconds = \"soon\"\n",
    );
    assert!(
        err.contains("max_clock_skew_seconds") && err.contains("config.toml"),
        "{err}"
    );
}

#[test]
fn missing_ips_is_named() {
    let fx = Fixture::new();
    let err = with_config(&fx, &format!("config_dir = \"{}\"\n", fx.path().display()));
    assert!(
        err.contains("`ips`") && err.contains("config.toml"),
        "{err}"
    );
}

#[test]
fn unreadable_config_is_named() {
    let mut cmd = Command::new(BIN);
    cmd.args(["--config", "/nonexistent/ruroco/config.toml"]);
    let err = refuses(cmd);
    assert!(err.contains("/nonexistent/ruroco/config.toml"), "{err}");
}

#[test]
fn no_keys_is_refused() {
    let fx = Fixture::new();
    std::fs::remove_file(fx.path().join("client.key")).unwrap();
    let err = refuses(fx.command());
    assert!(
        err.contains("no key files") && err.contains(&fx.path().display().to_string()),
        "{err}"
    );
}

#[test]
fn invalid_key_file_is_named() {
    let fx = Fixture::new();
    std::fs::write(fx.path().join("broken.key"), "not base64 !!!").unwrap();
    let err = refuses(fx.command());
    assert!(
        err.contains("broken.key") && err.contains("base64"),
        "{err}"
    );
}

#[test]
fn duplicate_key_files_are_named() {
    let fx = Fixture::new();
    std::fs::copy(fx.path().join("client.key"), fx.path().join("copy.key")).unwrap();
    let err = refuses(fx.command());
    assert!(
        err.contains("copy.key") && err.contains("client.key"),
        "{err}"
    );
}

#[test]
fn key_material_never_reaches_the_log() {
    let fx = Fixture::new();
    let server = fx.start();
    let log = server.stop();
    let key = fx.key.to_key_string();
    assert!(!log.contains(key.as_str()));
    assert!(
        log.contains(&fx.key.id().to_string()),
        "the public id is logged: {log}"
    );
}

#[test]
fn help_and_version() {
    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert!(out.status.success());
    let version = String::from_utf8_lossy(&out.stdout);
    // The commit is this checkout's (tests run from one).
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    assert!(
        version.starts_with(&format!(
            "ruroco-server {} (commit ",
            env!("CARGO_PKG_VERSION")
        )) && version.contains("-linux-"),
        "{version}"
    );
    if let Some(head) = head {
        assert!(
            version.contains(&head),
            "{version} is not built from {head}"
        );
    }
    let out = Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for flag in ["--config", "--address", "/etc/ruroco/config.toml"] {
        assert!(help.contains(flag), "{flag} missing:\n{help}");
    }
}

/// The packaged key layout (0640, group root or the server's) starts quietly; a key every
/// local user can read is warned about once, naming the file and the fix.
#[test]
fn key_file_modes_warn_only_about_real_exposure() {
    use std::os::unix::fs::PermissionsExt;
    let fx = crate::util::Fixture::new();
    let key = fx.path().join("client.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
    let server = fx.start();
    let log = server.stop();
    assert!(!log.contains("chmod"), "{log}");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let server = fx.start();
    let log = server.stop();
    assert!(
        log.contains("client.key: mode 0644 lets every local user at it; chmod 0640"),
        "{log}"
    );
}

/// `--check` run as root speaks for the server's user: a key it cannot read, a floor
/// directory it cannot write or that does not exist, placeholder `ips`.
#[test]
fn check_as_root_speaks_for_the_servers_user() {
    let fx = crate::util::Fixture::new();
    let text = std::fs::read_to_string(&fx.config).unwrap();
    let floors = fx.path().join("floors");
    std::fs::write(
        &fx.config,
        format!(
            "{}\nsocket_user = \"nobody\"\nblocklist_dir = \"{}\"\n",
            text.replace("\"127.0.0.1\", \"::1\"", "\"127.0.0.1\", \"203.0.113.10\""),
            floors.display()
        ),
    )
    .unwrap();
    let check = || fx.check();
    let (ok, out) = check();
    assert!(!ok);
    assert!(
        out.contains(&format!(
            "replay floor directory {} does not exist",
            floors.display()
        )) && out.contains("install -d -o nobody"),
        "{out}"
    );
    // A start outside systemd says the same, not "No such file or directory".
    let start = fx
        .command()
        .args(["--address", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&start.stderr).contains("install -d -o nobody"));
    std::fs::create_dir(&floors).unwrap();
    if !nix::unistd::geteuid().is_root() {
        eprintln!("not root: the server-user part is skipped");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(fx.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(
        fx.path().join("client.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let (ok, out) = check();
    assert!(!ok);
    assert!(
        out.contains("client.key: the server's user `nobody` cannot read it"),
        "{out}"
    );
    assert!(
        out.contains("the server's user `nobody` cannot write it"),
        "{out}"
    );
    // The layout that works: key readable through its group, floors owned by the user.
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    std::os::unix::fs::chown(
        fx.path().join("client.key"),
        None,
        Some(nobody.gid.as_raw()),
    )
    .unwrap();
    std::fs::set_permissions(
        fx.path().join("client.key"),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    std::os::unix::fs::chown(&floors, Some(nobody.uid.as_raw()), None).unwrap();
    let (ok, out) = check();
    assert!(ok, "{out}");
    assert!(
        out.contains("warning: `ips` lists documentation addresses (203.0.113.10)"),
        "{out}"
    );
}

#[test]
fn a_dst_ip_refusal_says_which_address_was_claimed() {
    let fx = crate::util::Fixture::new();
    let inbox = fx.inbox();
    let server = fx.start();
    let plain = ruroco_proto::Plaintext {
        version: 1,
        cmd_hash: ruroco_proto::command_hash("default"),
        counter: crate::util::now_nanos(),
        strict: false,
        src_ip: None,
        dst_ip: "198.51.100.77".parse().unwrap(),
    };
    server.send(&fx.packet_with(plain));
    assert!(
        server.wait_log("reason=dst_ip", std::time::Duration::from_secs(3)),
        "{}",
        server.log_text()
    );
    assert!(
        server
            .log_text()
            .contains("dst=198.51.100.77 (not in `ips` of"),
        "{}",
        server.log_text()
    );
    inbox.assert_empty(std::time::Duration::from_millis(200), "dst_ip ran");
}

/// systemd's notify protocol: READY=1 with a status once it serves, WATCHDOG=1 from the
/// loop, RELOADING=1 (with MONOTONIC_USEC) and READY=1 around a SIGHUP, STOPPING=1.
#[test]
fn speaks_the_notify_protocol() {
    use std::os::unix::net::UnixDatagram;
    let fx = crate::util::Fixture::new();
    let sock_path = fx.path().join("notify.sock");
    let notify = UnixDatagram::bind(&sock_path).unwrap();
    notify
        .set_read_timeout(Some(std::time::Duration::from_secs(3)))
        .unwrap();
    // systemd names the pid that must ping: the shell's, which exec makes the server's.
    let server_cmd = fx.command();
    let mut cmd = std::process::Command::new("/bin/sh");
    cmd.arg("-c")
        .arg("WATCHDOG_PID=$$ exec \"$0\" \"$@\"")
        .arg(server_cmd.get_program())
        .args(server_cmd.get_args())
        .args(["--address", "127.0.0.1:0"])
        .env_remove("LISTEN_PID")
        .env_remove("LISTEN_FDS")
        .env_remove("RUROCO_LISTEN_ADDRESS")
        .env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "400000");
    let server = crate::util::Running::spawn(cmd);
    let mut got = Vec::new();
    let ready = ruroco_testkit::notified(&notify, &mut got, 0, "READY=1");
    assert!(
        got[ready].contains("STATUS=1 key(s); since start 0 accepted"),
        "{got:?}"
    );
    ruroco_testkit::notified(&notify, &mut got, 0, "WATCHDOG=1");
    server.signal(nix::sys::signal::Signal::SIGHUP);
    let reloading = ruroco_testkit::notified(&notify, &mut got, 0, "RELOADING=1");
    assert!(got[reloading].contains("MONOTONIC_USEC="), "{got:?}");
    ruroco_testkit::notified(&notify, &mut got, reloading + 1, "READY=1");
    server.signal(nix::sys::signal::Signal::SIGTERM);
    ruroco_testkit::notified(&notify, &mut got, 0, "STOPPING=1");
}

/// Under the journal (`JOURNAL_STREAM` set) every line carries its priority, and the text
/// after it is the text the fail2ban filter matches.
#[test]
fn journal_lines_carry_their_priority() {
    let fx = crate::util::Fixture::with_config("kernel_filter = false");
    let mut cmd = fx.command();
    cmd.args(["--address", "127.0.0.1:0"])
        .env("JOURNAL_STREAM", "8:1234");
    let server = crate::util::Running::spawn(cmd);
    server.send(&[0u8; 5]);
    assert!(
        server.wait_log("reason=size", std::time::Duration::from_secs(3)),
        "{}",
        server.log_text()
    );
    let log = server.stop();
    assert!(
        log.lines().any(|l| l.starts_with("<6> INFO ruroco-server")),
        "{log}"
    );
    assert!(
        log.lines()
            .any(|l| l == "<4> WARN rejected datagram from 127.0.0.1 reason=size"),
        "{log}"
    );
    assert!(log.lines().all(|l| l.starts_with('<')), "{log}");
}

/// `--log-format json` (or `log_format = "json"`): one JSON object per line, with the
/// message exactly as the text line has it and the event's fields beside it.
#[test]
fn json_lines_carry_the_fields() {
    for (extra, flag) in [("", true), ("log_format = \"json\"", false)] {
        let fx = crate::util::Fixture::with_config(&format!("kernel_filter = false\n{extra}"));
        let inbox = fx.inbox();
        let mut cmd = fx.command();
        cmd.args(["--address", "127.0.0.1:0"]);
        if flag {
            cmd.args(["--log-format", "json"]);
        }
        let server = crate::util::Running::spawn(cmd);
        server.send(&[0u8; 5]);
        server.send(&fx.packet("default", crate::util::now_nanos()));
        assert!(inbox.recv(std::time::Duration::from_secs(5)).is_some());
        assert!(
            server.wait_log("accepted datagram", std::time::Duration::from_secs(3)),
            "{}",
            server.log_text()
        );
        let log = server.stop();
        let lines: Vec<serde_json::Value> = log
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect();
        let rejected = lines
            .iter()
            .find(|l| l["reason"] == "size")
            .unwrap_or_else(|| panic!("no reason=size line: {log}"));
        assert_eq!(rejected["level"], "WARN");
        assert_eq!(
            rejected["message"],
            "rejected datagram from 127.0.0.1 reason=size"
        );
        assert_eq!(rejected["src_ip"], "127.0.0.1");
        assert_eq!(rejected["outcome"], "rejected");
        assert!(rejected["timestamp"].is_string());
        let accepted = lines
            .iter()
            .find(|l| l["outcome"] == "accepted")
            .unwrap_or_else(|| panic!("no accepted line: {log}"));
        assert_eq!(accepted["level"], "INFO");
        assert_eq!(accepted["client_ip"], "127.0.0.1");
        assert_eq!(accepted["wire"], "v1");
        assert_eq!(accepted["key"].as_str().unwrap().len(), 16, "{accepted}");
        assert!(accepted["message"]
            .as_str()
            .unwrap()
            .starts_with("accepted datagram from 127.0.0.1 wire=v1 key="));
    }
}

/// node_exporter's directory as Debian makes it (root's, 0755): `--check` as root fails for
/// the server's user with the link that fixes it; a link elsewhere than the package's
/// `/var/lib/ruroco-metrics`, or one root did not make, is refused and never written
/// through. (Root's link into `/var/lib/ruroco-metrics`, written through, is exercised by
/// the package under systemd, `packaging/systemd-check.sh`.)
#[test]
fn check_fails_where_the_server_cannot_write_its_metrics_and_the_link_fixes_it() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("not root: skipped (needs a second user)");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let fx = crate::util::Fixture::new();
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    let collector = fx.path().join("node-exporter");
    let own = fx.path().join("own-metrics");
    let floors = fx.path().join("floors");
    for dir in [&collector, &own, &floors] {
        std::fs::create_dir(dir).unwrap();
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::set_permissions(fx.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let key = fx.path().join("client.key");
    std::os::unix::fs::chown(&key, None, Some(nobody.gid.as_raw())).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
    std::os::unix::fs::chown(&floors, Some(nobody.uid.as_raw()), None).unwrap();
    let text = std::fs::read_to_string(&fx.config).unwrap();
    std::fs::write(
        &fx.config,
        format!(
            "{text}\nsocket_user = \"nobody\"\nblocklist_dir = \"{}\"\nmetrics_dir = \"{}\"\n",
            floors.display(),
            collector.display()
        ),
    )
    .unwrap();
    let check = || fx.check();
    let (ok, out) = check();
    assert!(!ok, "{out}");
    assert!(
        out.contains(&format!(
            "metrics_dir {}: the server's user `nobody` cannot write there",
            collector.display()
        )) && out.contains(&format!(
            "ln -s /var/lib/ruroco-metrics/ruroco-server.prom {}/ruroco-server.prom",
            collector.display()
        )),
        "{out}"
    );
    // Root's link into a directory of the test's: not the package's own metrics
    // directory, so not followed, with the link that is.
    let link = collector.join("ruroco-server.prom");
    std::os::unix::fs::symlink(own.join("ruroco-server.prom"), &link).unwrap();
    let (ok, out) = check();
    assert!(!ok, "{out}");
    assert!(
        out.contains("which is not directly in /var/lib/ruroco-metrics")
            && out.contains(&format!(
                "ln -sfn /var/lib/ruroco-metrics/ruroco-server.prom {}",
                link.display()
            )),
        "{out}"
    );
    // A link another user made (whoever can write node_exporter's directory), aimed at
    // the server's replay floors: refused by `--check`, and the running server writes
    // nothing through it — its floors stay floors and the next start reads them.
    std::fs::remove_file(&link).unwrap();
    std::os::unix::fs::chown(&collector, Some(nobody.uid.as_raw()), None).unwrap();
    let target = floors.join("floors.bin");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    std::os::unix::fs::lchown(&link, Some(nobody.uid.as_raw()), None).unwrap();
    let (ok, out) = check();
    assert!(!ok, "{out}");
    assert!(
        out.contains(&format!(
            "is a link made by uid {}, not by root",
            nobody.uid
        )),
        "{out}"
    );
    let as_nobody = || {
        let mut cmd = std::process::Command::new("setpriv");
        cmd.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
            .arg(fx.command().get_program())
            .args(fx.command().get_args())
            .args(["--address", "127.0.0.1:0"]);
        cmd
    };
    for _ in 0..2 {
        let mut server = crate::util::Daemon::spawn(as_nobody(), "listening on");
        server.signal(nix::sys::signal::Signal::SIGTERM);
        assert!(
            server
                .wait_exit(std::time::Duration::from_secs(10))
                .unwrap()
                .success(),
            "{}",
            server.log_text()
        );
        let log = server.log_text();
        assert!(log.contains("not by root; not followed"), "{log}");
        let floors_bin = std::fs::read(&target).unwrap();
        assert!(
            !String::from_utf8_lossy(&floors_bin).contains("ruroco_server_"),
            "metrics were written into floors.bin"
        );
    }
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
}

/// In the released layout the floors default to the config directory, which holds
/// config.toml (and with it the commands root runs): `--check` never advises handing that
/// directory to the server's user, but a directory of its own.
#[test]
fn check_never_advises_giving_the_config_directory_to_the_server() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("not root: skipped (needs a second user)");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let fx = crate::util::Fixture::new();
    let text = std::fs::read_to_string(&fx.config).unwrap();
    std::fs::write(
        &fx.config,
        format!("{text}\nsocket_user = \"nobody\"\n[commands]\ndefault = \"true\"\n"),
    )
    .unwrap();
    std::fs::set_permissions(fx.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = fx.command().arg("--check").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("never let the server write there")
            && text.contains("blocklist_dir = \"/var/lib/ruroco\""),
        "{text}"
    );
    assert!(
        !text.contains(&format!("chown nobody {}", fx.path().display())),
        "{text}"
    );
}

/// A 1 GB file named like a key is refused by name without being read whole; the error
/// says it is not a key.
#[test]
fn a_huge_key_file_is_named_and_not_read() {
    let fx = Fixture::new();
    let big = std::fs::File::create(fx.path().join("huge.key")).unwrap();
    big.set_len(1 << 30).unwrap();
    let started = std::time::Instant::now();
    let err = refuses(fx.command());
    assert!(
        err.contains("huge.key") && err.contains("larger than 4096 bytes"),
        "{err}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

/// A reload that adds no key leaves the floor file alone (no rewrite, no fsync); one that
/// adds a key writes it. Per-key lines name only what changed.
#[test]
fn a_reload_without_new_keys_writes_no_floors() {
    use nix::sys::signal::Signal;
    let fx = Fixture::new();
    let server = fx.start();
    let floors = fx.path().join("floors.bin");
    let before = std::fs::read(&floors).unwrap();
    let modified = std::fs::metadata(&floors).unwrap().modified().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    server.signal(Signal::SIGHUP);
    assert!(server.wait_log("reloaded", std::time::Duration::from_secs(3)));
    assert_eq!(std::fs::read(&floors).unwrap(), before);
    assert_eq!(
        std::fs::metadata(&floors).unwrap().modified().unwrap(),
        modified
    );
    let added = ruroco_proto::Key::generate().unwrap();
    std::fs::write(fx.path().join("new.key"), added.to_key_string().as_bytes()).unwrap();
    server.signal(Signal::SIGHUP);
    assert!(server.wait_log_count("reloaded", 2, std::time::Duration::from_secs(3)));
    assert_ne!(std::fs::read(&floors).unwrap(), before);
    let log = server.stop();
    assert!(log.contains(&format!("added key {}", added.id())), "{log}");
}

/// A reload reads keys off the receive loop: a knock sent while 30,000 key files are read
/// is handed over before the reload is done, and the reload then swaps in every key.
#[test]
fn a_knock_during_a_long_reload_is_not_held_up() {
    use nix::sys::signal::Signal;
    let fx = Fixture::new();
    let inbox = fx.inbox();
    let server = fx.start();
    write_keys(fx.path(), 30_000);
    server.signal(Signal::SIGHUP);
    assert!(server.wait_log("reload requested", std::time::Duration::from_secs(3)));
    server.send(&fx.packet("default", crate::util::now_nanos()));
    assert!(
        inbox.recv(std::time::Duration::from_secs(5)).is_some(),
        "{}",
        server.log_text()
    );
    let when_handed_over = server.log_text();
    assert!(
        !when_handed_over.contains("reloaded"),
        "the knock waited for the reload: {when_handed_over}"
    );
    assert!(
        server.wait_log("key(s) (+30000 -0)", std::time::Duration::from_secs(60)),
        "{}",
        server.log_text()
    );
}

/// The server's resident memory in KiB.
fn rss_kib(pid: nix::unistd::Pid) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Reloads of many keys do not pile up memory: after the first reload, more reloads of
/// the same 30,000 keys leave the server no larger (what the previous set and the reading
/// freed goes back to the kernel; it used to stay, and each reload added some).
#[test]
fn reloads_of_many_keys_do_not_pile_up_memory() {
    use nix::sys::signal::Signal;
    let fx = Fixture::new();
    write_keys(fx.path(), 30_000);
    let server = fx.start();
    let wait = std::time::Duration::from_secs(60);
    let mut sizes = Vec::new();
    for n in 1..=8 {
        server.signal(Signal::SIGHUP);
        assert!(
            server.wait_log_count("reloaded", n, wait),
            "{}",
            server.log_text()
        );
        sizes.push(rss_kib(server.pid()));
    }
    eprintln!("resident KiB after each reload: {sizes:?}");
    let first = sizes[0];
    let most = sizes.iter().copied().max().unwrap();
    assert!(
        most <= first + first / 8,
        "resident KiB after each reload: {sizes:?}"
    );
}

/// `n` new key files `k00000.key`, … in `dir`.
fn write_keys(dir: &std::path::Path, n: usize) {
    for i in 0..n {
        let key = ruroco_proto::Key::generate().unwrap();
        std::fs::write(
            dir.join(format!("k{i:05}.key")),
            key.to_key_string().as_bytes(),
        )
        .unwrap();
    }
}
