//! The commander's socket passed by the service manager (`ruroco-commander.socket`): the
//! commander adopts it, and messages wait in it while the commander restarts.

use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::util::{tool, Daemon, Fixture};

const ECHO: &str = "default = \"echo \\\"$RUROCO_IP\\\" >> {dir}/ran\"";

/// `systemd-socket-activate -l SOCKET ruroco-commander …`: started by the first
/// connection, like systemd's socket activation.
fn activated(fx: &Fixture, listen: &std::path::Path) -> Option<Daemon> {
    let activate = tool("systemd-socket-activate")?;
    let commander = fx.command();
    let mut cmd = Command::new(activate);
    cmd.arg("-l")
        .arg(listen)
        .arg(commander.get_program())
        .args(commander.get_args())
        .env_remove("LISTEN_PID")
        .env_remove("LISTEN_FDS");
    Some(Daemon::spawn(cmd, "Listening on"))
}

#[test]
fn started_by_the_first_message_it_adopts_the_socket_and_runs_it() {
    let fx = Fixture::new(ECHO, "allow_non_routable_ips = true");
    let Some(mut daemon) = activated(&fx, &fx.socket()) else {
        return;
    };
    // systemd-socket-activate made the socket with its own mode; the commander is not
    // running yet. This message starts it, and waits in the socket meanwhile.
    fx.send("default", "198.51.100.7");
    assert_eq!(
        fx.wait_lines("ran", 1, Duration::from_secs(10)),
        ["198.51.100.7"],
        "{}",
        daemon.log_text()
    );
    assert!(
        daemon.wait_log("(socket passed by systemd)", Duration::from_secs(5)),
        "{}",
        daemon.log_text()
    );
    let mode = std::fs::metadata(fx.socket()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o204, "the adopted socket gets the commander's mode");
    fx.send("default", "198.51.100.8");
    assert_eq!(fx.wait_lines("ran", 2, Duration::from_secs(5)).len(), 2);
    daemon.signal(Signal::SIGTERM);
    assert!(daemon.wait_exit(Duration::from_secs(10)).unwrap().success());
    // The socket file is systemd's: the commander leaves it.
    assert!(
        fx.socket().exists(),
        "the commander removed systemd's socket"
    );
    // The commands it ran do not see the activation variables.
    assert!(
        !daemon.log_text().contains("LISTEN_FDS"),
        "{}",
        daemon.log_text()
    );
}

#[test]
fn a_socket_passed_for_another_path_is_refused_naming_both() {
    let fx = Fixture::new(ECHO, "allow_non_routable_ips = true");
    let other = fx.path().join("elsewhere.socket");
    let Some(mut daemon) = activated(&fx, &other) else {
        return;
    };
    let mut stream = std::os::unix::net::UnixStream::connect(&other).unwrap();
    std::io::Write::write_all(&mut stream, b"x").unwrap();
    let status = daemon.wait_exit(Duration::from_secs(10)).unwrap();
    assert!(!status.success());
    let log = daemon.log_text();
    assert!(
        log.contains(&format!(
            "the socket passed is {}, but config.toml puts it at {} (config key socket_dir)",
            other.display(),
            fx.socket().display()
        )),
        "{log}"
    );
    assert!(fx.lines("ran").is_empty());
}

/// Starts the commander with `listener` as its fd 3 and `LISTEN_PID`/`LISTEN_FDS` set for
/// it, as systemd does for a service with a socket unit.
#[allow(unsafe_code)]
fn start_with_socket(fx: &Fixture, listener: &UnixListener) -> Daemon {
    let commander = fx.command();
    let mut cmd = Command::new("sh");
    // `exec` keeps the shell's pid, so `$$` is the commander's pid.
    cmd.arg("-c")
        .arg("LISTEN_PID=$$ LISTEN_FDS=1 exec \"$0\" \"$@\"")
        .arg(commander.get_program())
        .args(commander.get_args())
        .env_remove("LISTEN_PID")
        .env_remove("LISTEN_FDS");
    let fd = listener.as_raw_fd();
    // SAFETY: runs in the child between fork and exec and calls only dup2 and fcntl,
    // which are async-signal-safe; `fd` stays open in the parent for the child's whole
    // start.
    unsafe {
        cmd.pre_exec(move || {
            if fd == 3 {
                let flags = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFD)?;
                let flags =
                    nix::fcntl::FdFlag::from_bits_truncate(flags) & !nix::fcntl::FdFlag::FD_CLOEXEC;
                nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETFD(flags))?;
            } else {
                nix::unistd::dup2(fd, 3)?;
            }
            Ok(())
        });
    }
    Daemon::spawn(cmd, "listening on")
}

#[test]
fn messages_wait_in_the_held_socket_while_the_commander_restarts() {
    let fx = Fixture::new(ECHO, "allow_non_routable_ips = true");
    // This test holds the socket as systemd would: it outlives each commander.
    let listener = UnixListener::bind(fx.socket()).unwrap();
    let mut first = start_with_socket(&fx, &listener);
    assert!(
        first.log_text().contains("(socket passed by systemd)"),
        "{}",
        first.log_text()
    );
    fx.send("default", "198.51.100.1");
    assert_eq!(fx.wait_lines("ran", 1, Duration::from_secs(5)).len(), 1);
    first.signal(Signal::SIGTERM);
    assert!(first.wait_exit(Duration::from_secs(10)).unwrap().success());
    assert!(fx.socket().exists());
    // No commander now: each message is accepted by the kernel into the socket's backlog.
    for i in 0..50 {
        fx.send("default", &format!("198.51.100.{}", 10 + i));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(fx.lines("ran").len(), 1, "nothing runs without a commander");
    let second = start_with_socket(&fx, &listener);
    let ran = fx.wait_lines("ran", 51, Duration::from_secs(15));
    std::thread::sleep(Duration::from_millis(300));
    let ran_now = fx.lines("ran");
    assert_eq!(ran_now.len(), 51, "{}", second.log_text());
    assert_eq!(ran, ran_now);
    let mut unique = ran_now.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 51, "a message ran twice: {ran_now:?}");
    // And in the order they were sent: what waited in the backlog is taken in order.
    let log = second.log_text();
    let started: Vec<&str> = log
        .lines()
        .filter_map(|l| l.split("running command default for ").nth(1))
        .map(str::trim)
        .collect();
    let sent: Vec<String> = (0..50).map(|i| format!("198.51.100.{}", 10 + i)).collect();
    assert_eq!(started, sent, "{log}");
    drop(second);
}
