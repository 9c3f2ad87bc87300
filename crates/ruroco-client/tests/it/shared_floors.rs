//! Two servers sharing one key and a real `redis-server` for their replay floors: a
//! datagram runs once across both, fails closed while Redis is down, and works again
//! when it is back, without a restart.

use std::net::{TcpListener, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::compat::{key_string, now_nanos, v0_datagram};
use crate::util::{tool, Stack};

const WAIT: Duration = Duration::from_secs(5);
const QUIET: Duration = Duration::from_millis(700);

/// A redis-server on a loopback port of its own, with a password; stopped when dropped.
struct Redis {
    child: Child,
    port: u16,
    dir: Option<tempfile::TempDir>,
}

impl Redis {
    fn start(port: Option<u16>, dir: Option<tempfile::TempDir>) -> Option<Redis> {
        let server = tool("redis-server")?;
        let port = port.unwrap_or_else(|| {
            TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        });
        let dir = dir.unwrap_or_else(|| tempfile::tempdir().unwrap());
        let mut child = Command::new(server)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--requirepass",
                "s3cret-pass",
                "--save",
                "",
                "--appendonly",
                "yes",
            ])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        for _ in 0..250 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(Redis {
                    child,
                    port,
                    dir: Some(dir),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("redis-server did not start on port {port}");
    }

    /// Stops it (by its PID) and hands back what a restart on the same port needs.
    fn stop(mut self) -> (u16, tempfile::TempDir) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        (self.port, self.dir.take().unwrap())
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn pair(redis: &Redis) -> (Stack, Stack, tempfile::TempDir) {
    let secrets = tempfile::tempdir().unwrap();
    let pass = secrets.path().join("redis.pass");
    std::fs::write(&pass, "s3cret-pass\n").unwrap();
    let extra = format!(
        "floor_store = \"redis://127.0.0.1:{}/0\"\nfloor_store_password_file = \"{}\"\n",
        redis.port,
        pass.display()
    );
    let a = Stack::start(&extra);
    let b = Stack::start_with_key(&extra, &key_string(&a));
    (a, b, secrets)
}

fn send(stack: &Stack, datagram: &[u8]) {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .send_to(datagram, stack.addr)
        .unwrap();
}

fn runs(stack: &Stack) -> usize {
    stack.wait_runs("default", usize::MAX, Duration::ZERO).len()
}

#[test]
fn one_datagram_runs_once_across_two_servers() {
    let Some(redis) = Redis::start(None, None) else {
        return;
    };
    let (a, b, _secrets) = pair(&redis);
    assert!(a
        .server
        .log_text()
        .contains("shared through redis://127.0.0.1:"));
    assert!(
        !a.server.log_text().contains("s3cret"),
        "the password was logged"
    );
    // The same datagram to both at once: whichever asks Redis first runs it.
    let datagram = v0_datagram(&key_string(&a), "default", now_nanos());
    send(&a, &datagram);
    send(&b, &datagram);
    std::thread::sleep(QUIET);
    assert_eq!(runs(&a) + runs(&b), 1, "{}\n{}", a.logs(), b.logs());
    // Accepted by A, replayed to B: nothing.
    let next = v0_datagram(&key_string(&a), "default", now_nanos());
    send(&a, &next);
    a.expect_runs("default", &["127.0.0.1"; 2][..runs(&a) + 1]);
    let before = runs(&b);
    send(&b, &next);
    assert!(b.server.wait_log("reason=replay", WAIT), "{}", b.logs());
    std::thread::sleep(QUIET);
    assert_eq!(runs(&b), before);
}

#[test]
fn with_redis_down_nothing_runs_and_it_recovers_without_a_restart() {
    let Some(redis) = Redis::start(None, None) else {
        return;
    };
    let (a, _b, _secrets) = pair(&redis);
    let (port, dir) = redis.stop();
    // Junk never reaches the store: no store error for it.
    send(&a, &[0u8; 94]);
    send(&a, &[1u8; 93]);
    assert!(
        a.server.wait_log_count("rejected datagram", 2, WAIT),
        "{}",
        a.logs()
    );
    assert!(!a.server.log_text().contains("floor store"), "{}", a.logs());
    send(&a, &v0_datagram(&key_string(&a), "default", now_nanos()));
    assert!(
        a.server.wait_log("floor store: cannot connect", WAIT),
        "{}",
        a.logs()
    );
    assert!(a.server.log_text().contains("fail closed"));
    std::thread::sleep(QUIET);
    assert_eq!(runs(&a), 0, "ran while the store was down");
    let _redis = Redis::start(Some(port), Some(dir)).unwrap();
    // Backoff is at most 5 s; keep sending fresh datagrams until one gets through.
    let mut ran = false;
    for _ in 0..40 {
        send(&a, &v0_datagram(&key_string(&a), "default", now_nanos()));
        std::thread::sleep(Duration::from_millis(250));
        if runs(&a) > 0 {
            ran = true;
            break;
        }
    }
    assert!(ran, "{}", a.logs());
    assert!(a.server.log_text().contains("reachable again"));
}

#[test]
fn a_server_restart_keeps_the_floors() {
    let Some(redis) = Redis::start(None, None) else {
        return;
    };
    let (a, b, _secrets) = pair(&redis);
    let datagram = v0_datagram(&key_string(&a), "default", now_nanos());
    send(&a, &datagram);
    a.expect_runs("default", &["127.0.0.1"]);
    drop(b);
    // Restart A's server (same files): the old datagram is a replay.
    let Stack { server, .. } = &a;
    server.signal(nix::sys::signal::Signal::SIGTERM);
    let mut a = a;
    a.server.wait_exit(WAIT).unwrap();
    let mut cmd = Command::new(crate::util::workspace_bin("ruroco-server"));
    cmd.arg("--config")
        .arg(a.dir.path().join("server/config.toml"))
        .args(["--address", &a.addr.to_string()])
        .env_remove("LISTEN_FDS");
    a.server = crate::util::Daemon::spawn(cmd, "listening on");
    send(&a, &datagram);
    assert!(a.server.wait_log("reason=replay", WAIT), "{}", a.logs());
    std::thread::sleep(QUIET);
    assert_eq!(runs(&a), 1);
}
