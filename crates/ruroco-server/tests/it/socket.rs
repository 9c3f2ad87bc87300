//! Socket acquisition: explicit address, environment, socket activation, fallback.

use std::net::{TcpListener, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

use crate::util::{now_nanos, Fixture, Running};

/// Runs the server through `sh` so that `LISTEN_PID` can be the server's own pid
/// (`exec` keeps the pid), with `fd` installed as fd 3 in the child.
fn activated(
    fx: &Fixture,
    fd: Option<RawFd>,
    listen_fds: &str,
    listen_pid: Option<&str>,
) -> Command {
    let server = fx.command();
    let mut cmd = Command::new("sh");
    let pid = listen_pid.unwrap_or("$$");
    cmd.arg("-c")
        .arg(format!(
            "export LISTEN_PID={pid} LISTEN_FDS={listen_fds}; exec \"$0\" \"$@\""
        ))
        .arg(server.get_program())
        .args(server.get_args())
        .env_remove("RUROCO_LISTEN_ADDRESS");
    if let Some(fd) = fd {
        // SAFETY: runs in the child between fork and exec and only calls dup2/fcntl,
        // which are async-signal-safe; `fd` is open in the parent for the whole spawn.
        #[allow(unsafe_code)]
        unsafe {
            cmd.pre_exec(move || {
                if fd == 3 {
                    nix::fcntl::fcntl(
                        3,
                        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
                    )?;
                } else {
                    nix::unistd::dup2(fd, 3)?;
                }
                Ok(())
            });
        }
    }
    cmd
}

fn assert_serves(fx: &Fixture, server: &Running) {
    let inbox = fx.inbox();
    server.send(&fx.packet("default", now_nanos()));
    assert!(
        inbox.recv(Duration::from_secs(3)).is_some(),
        "nothing forwarded\n{}",
        server.log_text()
    );
}

#[test]
fn explicit_address_is_used() {
    let fx = Fixture::new();
    let server = fx.start();
    assert!(server.addr.ip().is_loopback());
    assert_ne!(server.addr.port(), 0);
    assert_serves(&fx, &server);
}

#[test]
fn explicit_address_wins_over_the_environment() {
    let fx = Fixture::new();
    let mut cmd = fx.command();
    cmd.args(["--address", "127.0.0.1:0"])
        .env("RUROCO_LISTEN_ADDRESS", "256.0.0.1:1");
    let server = Running::spawn(cmd);
    assert_serves(&fx, &server);
}

#[test]
fn environment_address_is_used() {
    let fx = Fixture::with_config("address = \"256.1.1.1:1\"");
    let mut cmd = fx.command();
    cmd.env("RUROCO_LISTEN_ADDRESS", "[::1]:0");
    let server = Running::spawn(cmd);
    assert!(server.addr.is_ipv6(), "{}", server.addr);
    assert!(server.log_text().contains("RUROCO_LISTEN_ADDRESS"));
    let inbox = fx.inbox();
    server.send(&fx.packet_with(ruroco_proto::Plaintext {
        version: 1,
        cmd_hash: 1,
        counter: now_nanos(),
        strict: true,
        src_ip: None,
        dst_ip: "::1".parse().unwrap(),
    }));
    let msg = inbox
        .recv(Duration::from_secs(3))
        .expect("forwarded over IPv6");
    assert_eq!(msg.ip, "::1".parse::<std::net::IpAddr>().unwrap());
}

#[test]
fn config_address_is_used() {
    let fx = Fixture::with_config("address = \"127.0.0.1:0\"");
    let server = Running::spawn(fx.command());
    assert!(server.log_text().contains("config address"));
    assert_serves(&fx, &server);
}

#[test]
fn socket_activation_adopts_a_real_udp_socket_as_fd_3() {
    let fx = Fixture::with_config("address = \"256.1.1.1:1\"");
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = sock.local_addr().unwrap().port();
    let server = Running::spawn(activated(&fx, Some(sock.as_raw_fd()), "1", None));
    assert_eq!(server.addr.port(), port);
    assert!(server.log_text().contains("socket activation"));
    drop(sock);
    assert_serves(&fx, &server);
}

#[test]
fn socket_activation_refuses_a_tcp_socket() {
    let fx = Fixture::new();
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    let (log, status) = Running::try_spawn(activated(&fx, Some(tcp.as_raw_fd()), "1", None))
        .err()
        .expect("must refuse");
    assert!(!status.unwrap().success());
    assert!(
        log.contains("fd 3") && log.contains("expected a UDP"),
        "{log}"
    );
}

#[test]
fn listen_fds_other_than_one_is_refused() {
    let fx = Fixture::new();
    let (log, status) = Running::try_spawn(activated(&fx, None, "2", None))
        .err()
        .expect("must refuse");
    assert!(!status.unwrap().success());
    assert!(log.contains("LISTEN_FDS was set to 2, expected 1"), "{log}");
}

#[test]
fn foreign_listen_pid_is_refused() {
    let fx = Fixture::new();
    let (log, status) = Running::try_spawn(activated(&fx, None, "1", Some("1")))
        .err()
        .expect("must refuse");
    assert!(!status.unwrap().success());
    assert!(
        log.contains("LISTEN_PID (1) does not match current PID"),
        "{log}"
    );
}

#[test]
fn fallback_binds_port_34020_dual_stack() {
    let fx = Fixture::new();
    let server = Running::spawn(fx.command());
    assert_eq!(server.addr.port(), 34020);
    assert!(
        server.log_text().contains("[::]:34020"),
        "{}",
        server.log_text()
    );
    // Reached over IPv4 too: the [::] bind is dual-stack.
    let inbox = fx.inbox();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.send_to(&fx.packet("default", now_nanos()), "127.0.0.1:34020")
        .unwrap();
    let msg = inbox.recv(Duration::from_secs(3)).expect("forwarded");
    assert_eq!(msg.ip, "127.0.0.1".parse::<std::net::IpAddr>().unwrap());
}
