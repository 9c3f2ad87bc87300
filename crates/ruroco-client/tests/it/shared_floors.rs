//! Two servers sharing one key and a real `redis-server` for their replay floors: a
//! datagram runs once across both, fails closed while Redis is down, and works again
//! when it is back, without a restart.

use std::process::Command;
use std::time::Duration;

use crate::compat::{key_string, now_nanos, v0_datagram};
use ruroco_testkit::RedisServer;

use crate::util::{tool, Stack};

const WAIT: Duration = Duration::from_secs(5);
const QUIET: Duration = Duration::from_millis(700);

/// A redis-server on a free loopback port, with a password.
fn start_redis(port: Option<u16>, dir: Option<tempfile::TempDir>) -> Option<RedisServer> {
    let server = tool("redis-server")?;
    Some(RedisServer::start(&server, port, dir, &["--requirepass", "s3cret-pass"]).unwrap())
}

fn pair(redis: &RedisServer) -> (Stack, Stack, tempfile::TempDir) {
    let secrets = tempfile::tempdir().unwrap();
    let pass = secrets.path().join("redis.pass");
    std::fs::write(&pass, "s3cret-pass\n").unwrap();
    let extra = format!(
        "floor_store = \"redis://127.0.0.1:{}/0\"\nfloor_store_password_file = \"{}\"\nmax_clock_skew_seconds = 1\nmax_requests_per_second = 100\n",
        redis.port,
        pass.display()
    );
    let a = Stack::start(&extra);
    let b = Stack::start_with_key(&extra, &key_string(&a));
    past_the_fence(&a);
    (a, b, secrets)
}

/// A store's first primary epoch is fenced like any other: the first datagram after a
/// start meets the fence (`max_clock_skew_seconds`, here 1 s, past the moment the epoch
/// was first seen; with Sentinel plus the call timeout, here 500 ms) and is refused as a
/// replay; this sends one and waits the fence out.
pub(crate) fn past_the_fence(stack: &Stack) {
    let before = stack.server.count_log("primary epoch");
    stack.send_datagram(&v0_datagram(&key_string(stack), "default", now_nanos()));
    assert!(
        stack
            .server
            .wait_log_count("primary epoch", before + 1, WAIT),
        "{}",
        stack.logs()
    );
    std::thread::sleep(Duration::from_millis(1600));
}

#[test]
fn one_datagram_runs_once_across_two_servers() {
    let Some(redis) = start_redis(None, None) else {
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
    a.send_datagram(&datagram);
    b.send_datagram(&datagram);
    std::thread::sleep(QUIET);
    assert_eq!(
        a.runs("default") + b.runs("default"),
        1,
        "{}\n{}",
        a.logs(),
        b.logs()
    );
    // Accepted by A, replayed to B: nothing.
    let next = v0_datagram(&key_string(&a), "default", now_nanos());
    a.send_datagram(&next);
    a.expect_runs("default", &["127.0.0.1"; 2][..a.runs("default") + 1]);
    let before = b.runs("default");
    b.send_datagram(&next);
    assert!(b.server.wait_log("reason=replay", WAIT), "{}", b.logs());
    std::thread::sleep(QUIET);
    assert_eq!(b.runs("default"), before);
}

#[test]
fn with_redis_down_nothing_runs_and_it_recovers_without_a_restart() {
    let Some(redis) = start_redis(None, None) else {
        return;
    };
    let (a, b, _secrets) = pair(&redis);
    let (port, dir) = redis.stop();
    // Junk never reaches the store: no store error for it (it carries the key's id, so
    // the kernel filter lets it through to fail authentication).
    let id = &v0_datagram(&key_string(&a), "default", now_nanos())[..8];
    a.send_datagram(&[id, &[0u8; 86][..]].concat());
    a.send_datagram(&[id, &[1u8; 85][..]].concat());
    assert!(
        a.server.wait_log_count("rejected datagram", 2, WAIT),
        "{}",
        a.logs()
    );
    assert!(
        !a.server.log_text().contains("floor store: "),
        "{}",
        a.logs()
    );
    let refused = v0_datagram(&key_string(&a), "default", now_nanos());
    a.send_datagram(&refused);
    assert!(
        a.server.wait_log("floor store: cannot connect", WAIT),
        "{}",
        a.logs()
    );
    assert!(a.server.log_text().contains("fail closed"));
    std::thread::sleep(QUIET);
    assert_eq!(a.runs("default"), 0, "ran while the store was down");
    let _redis = start_redis(Some(port), Some(dir)).unwrap();
    // Backoff is at most 5 s; keep sending fresh datagrams until one gets through.
    let mut ran = false;
    for _ in 0..40 {
        a.send_datagram(&v0_datagram(&key_string(&a), "default", now_nanos()));
        std::thread::sleep(Duration::from_millis(250));
        if a.runs("default") > 0 {
            ran = true;
            break;
        }
    }
    assert!(ran, "{}", a.logs());
    assert!(a.server.log_text().contains("reachable again"));
    // The datagram refused while the store was down was spent in it since: neither
    // server runs it now.
    // (Its refusal may not be logged: the fenced datagrams before it were refused for the
    // same reason and source, and such lines are rate-limited. A fresh datagram after it,
    // handled in order, shows it was handled.)
    for stack in [&a, &b] {
        let before = stack.runs("default");
        stack.send_datagram(&refused);
        std::thread::sleep(QUIET);
        assert_eq!(stack.runs("default"), before, "{}", stack.logs());
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while stack.runs("default") == before {
            assert!(std::time::Instant::now() < deadline, "{}", stack.logs());
            stack.send_datagram(&v0_datagram(&key_string(&a), "default", now_nanos()));
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

#[test]
fn a_future_datagram_refused_by_one_server_never_runs_on_the_other() {
    let Some(redis) = start_redis(None, None) else {
        return;
    };
    let secrets = tempfile::tempdir().unwrap();
    let pass = secrets.path().join("redis.pass");
    std::fs::write(&pass, "s3cret-pass\n").unwrap();
    let extra = format!(
        "floor_store = \"redis://127.0.0.1:{}/0\"\nfloor_store_password_file = \"{}\"\nmax_clock_skew_seconds = 1\n",
        redis.port,
        pass.display()
    );
    let a = Stack::start(&extra);
    let b = Stack::start_with_key(&extra, &key_string(&a));
    let ahead = now_nanos() + 3_000_000_000;
    let recorded = v0_datagram(&key_string(&a), "default", ahead);
    a.send_datagram(&recorded);
    assert!(a.server.wait_log("reason=future", WAIT), "{}", a.logs());
    // Once the clock has caught up, the recorded datagram goes to the other server.
    let wait = ahead.saturating_sub(now_nanos());
    std::thread::sleep(Duration::from_nanos(u64::try_from(wait).unwrap()));
    b.send_datagram(&recorded);
    assert!(b.server.wait_log("reason=replay", WAIT), "{}", b.logs());
    std::thread::sleep(QUIET);
    assert_eq!(
        a.runs("default") + b.runs("default"),
        0,
        "{}\n{}",
        a.logs(),
        b.logs()
    );
    // The key still works on both.
    b.send_datagram(&v0_datagram(&key_string(&a), "default", now_nanos()));
    b.expect_runs("default", &["127.0.0.1"]);
}

#[test]
fn a_server_restart_keeps_the_floors() {
    let Some(redis) = start_redis(None, None) else {
        return;
    };
    let (a, b, _secrets) = pair(&redis);
    let datagram = v0_datagram(&key_string(&a), "default", now_nanos());
    a.send_datagram(&datagram);
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
    a.send_datagram(&datagram);
    assert!(a.server.wait_log("reason=replay", WAIT), "{}", a.logs());
    std::thread::sleep(QUIET);
    assert_eq!(a.runs("default"), 1);
}
