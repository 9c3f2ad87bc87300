//! Socket set-up, start-up refusals and shutdown.

use std::process::Command;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::util::{tool, Daemon, Fixture, ALLOW};

fn stat(path: &std::path::Path) -> String {
    let out = Command::new("stat")
        .args(["-c", "%a %U %G %F"])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn refuses(cmd: Command) -> String {
    let (log, status) = Daemon::try_spawn(cmd, "listening on")
        .err()
        .expect("must refuse to start");
    assert!(!status.expect("exits").success());
    log
}

#[test]
fn socket_mode_and_owner_unchanged_when_empty() {
    let fx = Fixture::new("x = \"true\"", "");
    let _cmd = fx.start();
    let me = String::from_utf8(Command::new("id").args(["-un"]).output().unwrap().stdout).unwrap();
    let group =
        String::from_utf8(Command::new("id").args(["-gn"]).output().unwrap().stdout).unwrap();
    assert_eq!(
        stat(&fx.socket()),
        format!("204 {} {} socket", me.trim(), group.trim())
    );
}

#[test]
fn socket_owner_from_config() {
    // Needs root to chown; as any other user the commander must refuse instead.
    let group = String::from_utf8(
        Command::new("id")
            .args(["-gn", "nobody"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let group = group.trim();
    let fx = Fixture::new(
        "x = \"true\"",
        &format!("socket_user = \"nobody\"\nsocket_group = \"{group}\""),
    );
    if nix::unistd::geteuid().is_root() {
        let _cmd = fx.start();
        assert_eq!(stat(&fx.socket()), format!("204 nobody {group} socket"));
    } else {
        let log = refuses(fx.command());
        assert!(log.contains("cannot change owner"), "{log}");
    }
}

#[test]
fn unknown_socket_user_is_a_startup_error() {
    let fx = Fixture::new(
        "x = \"true\"",
        "socket_user = \"no-such-user-ruroco\"\nsocket_group = \"\"",
    );
    let log = refuses(fx.command());
    assert!(
        log.contains("socket_user") && log.contains("no-such-user-ruroco"),
        "{log}"
    );
    assert!(!fx.socket().exists());
}

#[test]
fn socket_directory_is_created_and_stale_socket_replaced() {
    let fx = Fixture::new("x = \"true\"", "");
    let dir = fx.path().join("run/sub");
    std::fs::write(
        &fx.config,
        format!(
            "config_dir = \"{}\"\nsocket_dir = \"{}\"\nsocket_user = \"\"\nsocket_group = \"\"\n",
            fx.path().display(),
            dir.display()
        ),
    )
    .unwrap();
    std::fs::create_dir_all(&dir).unwrap();
    // A stale socket left by a crashed commander: bound, then its listener dropped.
    drop(std::os::unix::net::UnixListener::bind(dir.join("ruroco.socket")).unwrap());
    let cmd = fx.start();
    assert!(
        cmd.log_text().contains("removed stale socket"),
        "{}",
        cmd.log_text()
    );
    assert!(stat(&dir.join("ruroco.socket")).starts_with("204 "));
}

#[test]
fn second_instance_is_refused_and_the_first_keeps_working() {
    let fx = Fixture::new(r#"default = "echo \"$RUROCO_IP\" >> {dir}/ran""#, "");
    let first = fx.start();
    let log = refuses(fx.command());
    assert!(log.contains("already running"), "{log}");
    fx.send("default", "8.8.8.8");
    assert!(
        fx.wait_file("ran", Duration::from_secs(5)).is_some(),
        "{}",
        first.log_text()
    );
}

#[test]
fn malformed_commands_file_names_file_and_entry() {
    let fx = Fixture::new("broken = { cmd = 5 }", "");
    let log = refuses(fx.command());
    assert!(
        log.contains("commands.toml") && log.contains("`broken`"),
        "{log}"
    );
}

#[test]
fn unreadable_commands_file_is_named() {
    let fx = Fixture::new("x = \"true\"", "");
    std::fs::remove_file(&fx.commands).unwrap();
    let log = refuses(fx.command());
    assert!(
        log.contains("cannot read commands file") && log.contains("commands.toml"),
        "{log}"
    );
}

#[test]
fn world_readable_commands_file_is_warned_about() {
    let fx = Fixture::new("x = \"true\"", "");
    std::fs::set_permissions(
        &fx.commands,
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let cmd = fx.start();
    assert!(cmd.log_text().contains("mode 644"), "{}", cmd.log_text());
}

#[test]
fn sigterm_waits_for_running_commands_and_removes_the_socket() {
    let fx = Fixture::new(r#"default = "sleep 1; echo done > {dir}/finished""#, "");
    let mut cmd = fx.start();
    fx.send("default", "8.8.8.8");
    assert!(cmd.wait_log("running command default", Duration::from_secs(5)));
    cmd.signal(Signal::SIGTERM);
    let status = cmd.wait_exit(Duration::from_secs(10)).expect("stopped");
    assert!(status.success(), "{status:?}\n{}", cmd.log_text());
    assert_eq!(
        std::fs::read_to_string(fx.path().join("finished")).unwrap(),
        "done\n"
    );
    assert!(!fx.socket().exists(), "socket file left behind");
}

#[test]
fn sigint_stops_an_idle_commander() {
    let fx = Fixture::new("x = \"true\"", "");
    let mut cmd = fx.start();
    cmd.signal(Signal::SIGINT);
    let status = cmd
        .wait_exit(Duration::from_secs(3))
        .expect("stopped within 3 s");
    assert!(status.success());
    assert!(!fx.socket().exists());
}

#[test]
fn help_and_version() {
    let out = Command::new(crate::util::BIN)
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    let version = String::from_utf8_lossy(&out.stdout);
    assert!(
        version.starts_with(&format!(
            "ruroco-commander {} (commit ",
            env!("CARGO_PKG_VERSION")
        )) && version.contains("-linux-"),
        "{version}"
    );
    let out = Command::new(crate::util::BIN)
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for flag in [
        "--config",
        "--commands",
        "commands.toml next to config.toml",
    ] {
        assert!(help.contains(flag), "{flag} missing:\n{help}");
    }
}

/// The socket is created with its final mode (umask around `bind`), never chmod'ed wider
/// or narrower afterwards: seen in the real system calls with strace.
#[test]
fn the_socket_is_created_with_its_final_mode() {
    let Some(strace) = crate::util::tool("strace") else {
        return;
    };
    let fx = Fixture::new(r#"default = "true""#, "");
    let log = fx.path().join("strace.log");
    let mut cmd = std::process::Command::new(strace);
    cmd.args(["-f", "-e", "trace=umask,bind,chmod,fchmod,fchmodat", "-o"])
        .arg(&log)
        .arg(crate::util::BIN)
        .arg("--config")
        .arg(&fx.config)
        .arg("--commands")
        .arg(&fx.commands);
    let daemon = crate::util::Daemon::spawn(cmd, "listening on");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(fx.socket()).unwrap().permissions(),
    ) & 0o777;
    assert_eq!(mode, 0o204);
    // Stop the commander itself (strace's child); strace then exits too.
    let children = std::fs::read_to_string(format!(
        "/proc/{}/task/{}/children",
        daemon.pid(),
        daemon.pid()
    ))
    .unwrap();
    let commander: i32 = children.split_whitespace().next().unwrap().parse().unwrap();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(commander), Signal::SIGTERM).unwrap();
    daemon.stop_after_signal();
    let calls = std::fs::read_to_string(&log).unwrap();
    let socket = fx.socket().display().to_string();
    let bind = calls
        .lines()
        .position(|l| l.contains("bind(") && l.contains(&socket))
        .unwrap_or_else(|| panic!("no bind of the socket in:\n{calls}"));
    let lines: Vec<&str> = calls.lines().collect();
    assert!(
        lines[..bind].iter().any(|l| l.contains("umask(0573)")),
        "umask not set before bind:\n{calls}"
    );
    assert!(
        lines[bind..].iter().any(|l| l.contains("umask(")),
        "umask not restored after bind:\n{calls}"
    );
    assert!(
        !calls
            .lines()
            .any(|l| l.contains("chmod") && l.contains(&socket)),
        "the socket was chmod'ed:\n{calls}"
    );
}

/// Whether `pid` is a live process (a zombie, killed and not yet reaped, is not).
fn running(pid: i32) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z "))
}

/// `kill -9` of the commander while a command runs: its processes survive that, but not
/// the next start, which kills and logs them; the socket works again at once.
#[test]
fn a_restart_after_kill_9_kills_what_the_previous_commander_left() {
    let fx = Fixture::new(
        r#"slow = { cmd = "sleep 60 & echo $! > {dir}/bg.pid; sleep 60", timeout_sec = 120 }
fast = "echo $RUROCO_IP >> {dir}/ran""#,
        "allow_non_routable_ips = true",
    );
    let mut first = fx.start();
    fx.send("slow", "192.0.2.1");
    let pid: i32 = fx
        .wait_file("bg.pid", Duration::from_secs(5))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let alive = running;
    first.signal(Signal::SIGKILL);
    first.wait_exit(Duration::from_secs(5)).unwrap();
    assert!(alive(pid), "the background sleep should outlive a kill -9");
    let second = fx.start();
    let log = second.log_text();
    assert!(
        log.contains("left running by a previous commander"),
        "{log}"
    );
    // Reaped by init once killed: gone within a moment.
    let mut gone = false;
    for _ in 0..100 {
        if !running(pid) {
            gone = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(gone, "pid {pid} survived the restart");
    fx.send("fast", "192.0.2.9");
    assert_eq!(
        fx.wait_file("ran", Duration::from_secs(5)).as_deref(),
        Some("192.0.2.9\n")
    );
}

/// A clean stop leaves nothing to kill: what a command started to outlive it (a daemon a
/// command restarted, here a background sleep) survives the next start, and the token
/// file is gone.
#[test]
fn a_restart_after_a_clean_stop_kills_nothing() {
    let fx = Fixture::new(
        r#"spawn = "setsid sleep 60 </dev/null >/dev/null 2>&1 & echo $! > {dir}/bg.pid""#,
        "allow_non_routable_ips = true",
    );
    let mut first = fx.start();
    fx.send("spawn", "192.0.2.1");
    let pid: i32 = fx
        .wait_file("bg.pid", Duration::from_secs(5))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // The command itself has finished (its report line carries its output).
    assert!(
        first.wait_log("stdout=", Duration::from_secs(5)),
        "{}",
        first.log_text()
    );
    let alive = running;
    first.signal(Signal::SIGTERM);
    assert!(first.wait_exit(Duration::from_secs(10)).unwrap().success());
    assert!(
        !fx.path().join("state/commander.run").exists(),
        "a clean stop left its token"
    );
    let second = fx.start();
    std::thread::sleep(Duration::from_millis(300));
    let log = second.log_text();
    assert!(
        !log.contains("left running by a previous commander"),
        "{log}"
    );
    assert!(
        alive(pid),
        "pid {pid} was killed by a start after a clean stop"
    );
    drop(second);
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL);
}

/// A local user who puts the marker (even with the current token) on a program of their
/// own, or anyone who copies the old socket-path marker, gets nothing killed by a start.
#[test]
fn forged_markers_never_get_a_process_killed() {
    let fx = Fixture::new(r#"fast = "true""#, "allow_non_routable_ips = true");
    let first = fx.start();
    let token = std::fs::read_to_string(fx.path().join("state/commander.run")).unwrap();
    let token = token.trim().to_owned();
    assert_eq!(token.len(), 32);
    let socket = fx.socket();
    let mut spawned = Vec::new();
    // Our own user, with only the socket marker (the old scheme's whole marker).
    spawned.push(
        std::process::Command::new("sleep")
            .arg("30")
            .env("RUROCO_COMMANDER", &socket)
            .spawn()
            .unwrap(),
    );
    // Another user with the full marker, token included.
    let other_user = nix::unistd::geteuid().is_root() && tool("setpriv").is_some();
    if other_user {
        spawned.push(
            std::process::Command::new("setpriv")
                .args([
                    "--reuid=65534",
                    "--regid=65534",
                    "--clear-groups",
                    "sleep",
                    "30",
                ])
                .env("RUROCO_COMMANDER", &socket)
                .env("RUROCO_COMMANDER_RUN", &token)
                .spawn()
                .unwrap(),
        );
    } else {
        eprintln!("not root or no setpriv: the other-user case is skipped");
    }
    std::thread::sleep(Duration::from_millis(200));
    let mut first = first;
    first.signal(Signal::SIGKILL);
    first.wait_exit(Duration::from_secs(5)).unwrap();
    let second = fx.start();
    std::thread::sleep(Duration::from_millis(300));
    for child in &mut spawned {
        assert!(
            child.try_wait().unwrap().is_none(),
            "pid {} was killed\n{}",
            child.id(),
            second.log_text()
        );
    }
    assert!(
        !second.log_text().contains("left running"),
        "{}",
        second.log_text()
    );
    assert_ne!(
        std::fs::read_to_string(fx.path().join("state/commander.run"))
            .unwrap()
            .trim(),
        token,
        "a new token at every start"
    );
    for mut child in spawned {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Starts a commander whose socket_dir is `dir`; its exit output if it refuses.
fn start_with_socket_dir(dir: &std::path::Path) -> Result<Daemon, String> {
    let fx = Fixture::new(
        r#"fast = "true""#,
        &format!("socket_dir = \"{}\"", dir.display()),
    );
    let cmd = fx.command();
    let started = Daemon::try_spawn(cmd, "listening on").map_err(|(log, _)| log);
    drop(fx);
    started
}

#[test]
fn a_socket_directory_others_could_tamper_with_is_refused_naming_it() {
    let base = tempfile::tempdir().unwrap();
    // A link to a directory.
    let real = base.path().join("real");
    std::fs::create_dir(&real).unwrap();
    let link = base.path().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let log = start_with_socket_dir(&link)
        .err()
        .expect("started on a link");
    assert!(
        log.contains(&format!(
            "socket directory {} is not a directory",
            link.display()
        )),
        "{log}"
    );
    // Writable by others.
    let open = base.path().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::os::unix::fs::PermissionsExt::from_mode(0o1777)).unwrap();
    let log = start_with_socket_dir(&open)
        .err()
        .expect("started in a world-writable dir");
    assert!(
        log.contains(&format!(
            "socket directory {} has mode 1777",
            open.display()
        )),
        "{log}"
    );
    // Owned by another user (needs root to arrange).
    if nix::unistd::geteuid().is_root() {
        let theirs = base.path().join("theirs");
        std::fs::create_dir(&theirs).unwrap();
        std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
        let log = start_with_socket_dir(&theirs)
            .err()
            .expect("started in someone else's dir");
        assert!(log.contains("owned by uid 65534, not by root"), "{log}");
    }
    // A good one works.
    let good = base.path().join("good");
    std::fs::create_dir(&good).unwrap();
    assert!(start_with_socket_dir(&good).is_ok());
}

#[test]
fn a_link_in_place_of_the_lock_file_is_never_followed() {
    let base = tempfile::tempdir().unwrap();
    let dir = base.path().join("sock");
    std::fs::create_dir(&dir).unwrap();
    let victim = base.path().join("victim");
    std::fs::write(&victim, "untouched").unwrap();
    std::os::unix::fs::symlink(&victim, dir.join("ruroco.socket.lock")).unwrap();
    let log = start_with_socket_dir(&dir)
        .err()
        .expect("started through a link");
    assert!(log.contains("ruroco.socket.lock"), "{log}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
}

/// systemd's notify protocol: READY=1 once the socket is bound and the handlers are in
/// place, WATCHDOG=1 from the loop, RELOADING=1 and READY=1 around a SIGHUP, STOPPING=1.
#[test]
fn speaks_the_notify_protocol() {
    use std::os::unix::net::UnixDatagram;
    let fx = Fixture::new(r#"fast = "true""#, "");
    let sock_path = fx.path().join("notify.sock");
    let notify = UnixDatagram::bind(&sock_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let inner = fx.command();
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg("WATCHDOG_PID=$$ exec \"$0\" \"$@\"")
        .arg(inner.get_program())
        .args(inner.get_args())
        .env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "400000");
    let cmdr = Daemon::spawn(cmd, "listening on");
    let mut got: Vec<String> = Vec::new();
    let mut wait_for =
        |from: usize, want: &str| ruroco_testkit::notified(&notify, &mut got, from, want);
    wait_for(0, "READY=1\nSTATUS=1 command(s)");
    wait_for(0, "WATCHDOG=1");
    cmdr.signal(Signal::SIGHUP);
    let reloading = wait_for(0, "RELOADING=1\nMONOTONIC_USEC=");
    wait_for(reloading + 1, "READY=1");
    cmdr.signal(Signal::SIGTERM);
    wait_for(0, "STOPPING=1");
}

/// The released layout keeps `[commands]` in config.toml: whoever may change that file or
/// its directory decides what root runs. A directory handed to the server's user (as older
/// advice said, for its floors) or made group-writable fails `--check` — naming the
/// server's user — and stops the start; root's own layout passes.
#[test]
fn commands_the_servers_user_could_change_are_refused() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("not root: skipped (needs a second user)");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let fx = Fixture::new("", "");
    // Released layout: [commands] in config.toml, no commands.toml.
    std::fs::remove_file(&fx.commands).unwrap();
    let d = fx.path().display().to_string();
    std::fs::write(
        &fx.config,
        format!(
            "config_dir = \"{d}\"\nstate_dir = \"{d}/state\"\nsocket_user = \"nobody\"\nsocket_group = \"\"\n[commands]\ndefault = \"true\"\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&fx.config, std::fs::Permissions::from_mode(0o640)).unwrap();
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    let check = || {
        let out = Command::new(crate::util::BIN)
            .arg("--config")
            .arg(&fx.config)
            .arg("--check")
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let start_fails = || {
        let out = Command::new(crate::util::BIN)
            .arg("--config")
            .arg(&fx.config)
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    std::fs::set_permissions(fx.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let (ok, out) = check();
    assert!(ok, "{out}");
    // The directory given to the server's user.
    std::os::unix::fs::chown(fx.path(), Some(nobody.uid.as_raw()), None).unwrap();
    let (ok, out) = check();
    assert!(!ok, "{out}");
    assert!(
        out.contains("can be changed by the server's user `nobody`")
            && out.contains(&format!("chown root {d}")),
        "{out}"
    );
    let err = start_fails();
    assert!(err.contains("the server's user `nobody`"), "{err}");
    // Group-writable, group root: still others than root.
    std::os::unix::fs::chown(fx.path(), Some(0), Some(0)).unwrap();
    std::fs::set_permissions(fx.path(), std::fs::Permissions::from_mode(0o770)).unwrap();
    let (ok, out) = check();
    assert!(!ok, "{out}");
    assert!(out.contains("mode 0770"), "{out}");
    // The file itself, owned by the server's user.
    std::fs::set_permissions(fx.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::chown(&fx.config, Some(nobody.uid.as_raw()), None).unwrap();
    let (ok, out) = check();
    assert!(!ok, "{out}");
    // config.toml is read by the server too: the fix keeps its group reading it.
    let group = nix::unistd::Group::from_gid(nobody.gid)
        .unwrap()
        .unwrap()
        .name;
    assert!(
        out.contains("config file")
            && out.contains("the file")
            && out.contains(&format!("chown root:{group} "))
            && out.contains("chmod 0640"),
        "{out}"
    );
}

/// A second commander on the state directory of a running one (another socket, the way
/// a second config would be started) is refused, naming the first one's pid, and the
/// first one's running command is left alone.
#[test]
fn a_second_commander_on_a_state_dir_in_use_is_refused_and_kills_nothing() {
    let fx = Fixture::new(r#"slow = "sleep 3; echo done >> {dir}/slow""#, ALLOW);
    let first = fx.start();
    fx.send("slow", "192.0.2.1");
    assert!(first.wait_log("running command slow", Duration::from_secs(5)));
    // Same state_dir, its own socket directory.
    let other = fx.path().join("other");
    std::fs::create_dir(&other).unwrap();
    let config = other.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "config_dir = \"{}\"\nsocket_user = \"\"\nsocket_group = \"\"\nstate_dir = \"{}/state\"\n",
            other.display(),
            fx.path().display()
        ),
    )
    .unwrap();
    let mut cmd = std::process::Command::new(crate::util::BIN);
    cmd.arg("--config")
        .arg(&config)
        .arg("--commands")
        .arg(&fx.commands);
    let log = refuses(cmd);
    assert!(
        log.contains(&format!("another ruroco-commander (pid {})", first.pid()))
            && log.contains("state_dir"),
        "{log}"
    );
    assert!(!log.contains("left running"), "{log}");
    assert_eq!(
        fx.wait_lines("slow", 1, Duration::from_secs(6)),
        ["done"],
        "the first commander's command was killed\n{}",
        first.log_text()
    );
}
