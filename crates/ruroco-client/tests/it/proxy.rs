//! `ruroco-client proxy`: knock, wait for the port to open, relay — alone and under ssh.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{stderr, stdout, tool, Daemon, Stack, CLIENT};

const WAIT: Duration = Duration::from_secs(10);

fn save(stack: &Stack, name: &str) {
    std::fs::create_dir_all(&stack.client_dir).unwrap();
    std::fs::write(
        stack.client_dir.join("client.toml"),
        format!(
            "[servers.{name}]\naddress = \"{}\"\nkey = \"{}\"\n",
            stack.addr,
            stack.key_file.display()
        ),
    )
    .unwrap();
}

fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs the client with `stdin` as its standard input, killed if it outlives `WAIT`.
fn run_with_input(args: &[&str], conf: &Path, stdin: &[u8]) -> std::process::Output {
    let mut child = Command::new(CLIENT)
        .args(args)
        .env("RUROCO_CONF_DIR", conf)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let watchdog = std::thread::spawn(move || {
        std::thread::sleep(WAIT);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
    });
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    drop(watchdog);
    out
}

#[test]
fn proxy_waits_for_the_port_the_command_opens_and_relays_both_ways() {
    let stack = Stack::start("");
    save(&stack, "web1");
    let port = free_tcp_port();
    // The "firewall": nothing listens until the knock's command has run.
    let out_file = stack.dir.path().join("default.out");
    let server = std::thread::spawn(move || {
        let deadline = Instant::now() + WAIT;
        while !out_file.exists() {
            assert!(Instant::now() < deadline, "the command never ran");
            std::thread::sleep(Duration::from_millis(20));
        }
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        let (mut conn, _) = listener.accept().unwrap();
        conn.set_read_timeout(Some(WAIT)).unwrap();
        let mut got = Vec::new();
        conn.read_to_end(&mut got).unwrap();
        conn.write_all(b"pong:").unwrap();
        conn.write_all(&got).unwrap();
    });
    let port_arg = port.to_string();
    let out = run_with_input(
        &["proxy", "web1", "127.0.0.1", &port_arg],
        &stack.client_dir,
        b"ping\n",
    );
    server.join().unwrap();
    assert!(out.status.success(), "{}\n{}", stderr(&out), stack.logs());
    assert_eq!(stdout(&out), "pong:ping\n");
    stack.expect_runs("default", &["127.0.0.1"]);
}

#[test]
fn proxy_gives_up_after_its_wait() {
    let stack = Stack::start("");
    save(&stack, "web1");
    let port = free_tcp_port().to_string();
    let started = Instant::now();
    let out = run_with_input(
        &["proxy", "web1", "127.0.0.1", &port, "--wait-secs", "1"],
        &stack.client_dir,
        b"",
    );
    let took = started.elapsed();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("cannot connect to 127.0.0.1"),
        "{}",
        stderr(&out)
    );
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "{took:?}"
    );
    // The knock itself went out.
    stack.expect_runs("default", &["127.0.0.1"]);
}

/// The real thing: `ssh` with `ProxyCommand ruroco-client proxy …` to a real `sshd` on a
/// loopback port of its own, logging in as the user running the test.
#[test]
fn ssh_through_the_proxy_to_a_real_sshd() {
    let (Some(sshd), Some(ssh), Some(keygen)) = (tool("sshd"), tool("ssh"), tool("ssh-keygen"))
    else {
        return;
    };
    let stack = Stack::start("");
    save(&stack, "web1");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for name in ["host_key", "id"] {
        let out = Command::new(&keygen)
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(d.join(name))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    }
    std::fs::copy(d.join("id.pub"), d.join("authorized_keys")).unwrap();
    let port = free_tcp_port();
    std::fs::write(
        d.join("sshd_config"),
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {0}/host_key\nAuthorizedKeysFile {0}/authorized_keys\nPidFile none\nUsePAM no\nStrictModes no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n",
            d.display()
        ),
    )
    .unwrap();
    if nix::unistd::geteuid().is_root() {
        // sshd run by root wants its privilege-separation directory.
        std::fs::create_dir_all("/run/sshd").unwrap();
    }
    let mut cmd = Command::new(&sshd);
    cmd.args(["-D", "-e", "-f"]).arg(d.join("sshd_config"));
    let _sshd = Daemon::spawn(cmd, "Server listening on");
    let user = nix::unistd::User::from_uid(nix::unistd::getuid())
        .unwrap()
        .unwrap()
        .name;
    let proxy = format!("ProxyCommand={CLIENT} proxy web1 %h %p");
    let out = Command::new(&ssh)
        .args(["-F", "/dev/null", "-p", &port.to_string(), "-i"])
        .arg(d.join("id"))
        .args([
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "ConnectTimeout=10",
            "-o",
            &proxy,
            // The alias, as under `Host web1` without a HostName line: ssh passes it as %h.
            &format!("{user}@web1"),
            "echo through-ssh",
        ])
        .env("RUROCO_CONF_DIR", &stack.client_dir)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}\n{}", stderr(&out), stack.logs());
    assert_eq!(stdout(&out).trim(), "through-ssh");
    stack.expect_runs("default", &["127.0.0.1"]);
}

/// ssh passes the `Host` alias as `%h` when there is no `HostName`: a `%h` that is a
/// saved server's name connects to that server's address.
#[test]
fn proxy_with_the_saved_name_as_host_connects_to_the_saved_address() {
    let stack = Stack::start("");
    save(&stack, "web1");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        conn.set_read_timeout(Some(WAIT)).unwrap();
        let mut got = Vec::new();
        conn.read_to_end(&mut got).unwrap();
        conn.write_all(&got).unwrap();
    });
    let out = run_with_input(
        &["proxy", "web1", "web1", &port],
        &stack.client_dir,
        b"hello",
    );
    server.join().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "hello");
}

/// `send --wait-port`: knock, then know. The port opens once the command has run: the
/// client says after how long, one knock. A port that stays closed: one more knock, then
/// it says so and exits 1.
#[test]
fn send_wait_port_says_whether_the_port_opened() {
    let stack = Stack::start("");
    save(&stack, "web1");
    let port = free_tcp_port();
    let out_file = stack.dir.path().join("default.out");
    let opener = std::thread::spawn(move || {
        let deadline = Instant::now() + WAIT;
        while !out_file.exists() {
            assert!(Instant::now() < deadline, "the command never ran");
            std::thread::sleep(Duration::from_millis(20));
        }
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        let _ = listener.accept().unwrap();
    });
    let port_arg = port.to_string();
    let out = run_with_input(
        &["send", "web1", "--wait-port", &port_arg],
        &stack.client_dir,
        b"",
    );
    opener.join().unwrap();
    assert!(out.status.success(), "{}\n{}", stderr(&out), stack.logs());
    assert!(
        stderr(&out).contains(&format!("port {port} open after ")),
        "{}",
        stderr(&out)
    );
    stack.expect_runs("default", &["127.0.0.1"]);

    let closed = free_tcp_port().to_string();
    let started = Instant::now();
    let out = run_with_input(
        &["send", "web1", "--wait-port", &closed, "--wait-secs", "1"],
        &stack.client_dir,
        b"",
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let said = stderr(&out);
    assert!(said.contains("knocking once more"), "{said}");
    assert!(
        said.contains(&format!("sent; port {closed} still closed after 1 s")),
        "{said}"
    );
    assert!(started.elapsed() < Duration::from_secs(6));
    // The first knock, then two more: one per try.
    assert_eq!(
        stack.wait_runs("default", 3, WAIT).len(),
        3,
        "{}",
        stack.logs()
    );
}

/// A saved server's `wait_port` watches without the flag.
#[test]
fn a_saved_wait_port_watches_without_the_flag() {
    let stack = Stack::start("");
    let closed = free_tcp_port();
    std::fs::create_dir_all(&stack.client_dir).unwrap();
    std::fs::write(
        stack.client_dir.join("client.toml"),
        format!(
            "[servers.web1]\naddress = \"{}\"\nkey = \"{}\"\nwait_port = {closed}\n",
            stack.addr,
            stack.key_file.display()
        ),
    )
    .unwrap();
    let out = run_with_input(
        &["send", "web1", "--wait-secs", "1"],
        &stack.client_dir,
        b"",
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("port {closed} still closed")),
        "{}",
        stderr(&out)
    );
}
