//! Shared floors in production: a connection Redis killed is replaced at once, an ACL
//! user over a Unix socket, and Redis Sentinel with replicas acknowledging (`WAIT`): a
//! failover runs new knocks through the promoted replica and opens no replay.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ruroco_testkit::RedisServer;

use crate::compat::{key_string, now_nanos, v0_datagram};
use crate::shared_floors::past_the_fence;
use crate::util::{tool, Stack};

const WAIT: Duration = Duration::from_secs(5);
const QUIET: Duration = Duration::from_millis(500);
const PASS: &str = "s3cret-pass";

/// One command to a Redis (or sentinel) on `port`, after AUTH when `password` is given;
/// the raw reply text.
fn redis_cmd(port: u16, password: Option<&str>, args: &[&str]) -> String {
    redis_at(SocketAddr::from(([127, 0, 0, 1], port)), password, args)
}

/// [`redis_cmd`] to any address; a connection that cannot be made within a second (a
/// partition that drops packets) is an `-ERR` reply.
pub(crate) fn redis_at(addr: SocketAddr, password: Option<&str>, args: &[&str]) -> String {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return "-ERR cannot connect".to_owned();
    };
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut out = Vec::new();
    let mut encode = |args: &[&str]| {
        out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
        for a in args {
            out.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
        }
    };
    if let Some(p) = password {
        encode(&["AUTH", p]);
    }
    encode(args);
    if s.write_all(&out).is_err() {
        return "-ERR cannot write".to_owned();
    }
    std::thread::sleep(Duration::from_millis(100));
    let mut buf = vec![0u8; 65536];
    let n = s.read(&mut buf).unwrap_or(0);
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

pub(crate) fn password_file(dir: &Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("redis.pass");
    std::fs::write(&path, format!("{text}\n")).unwrap();
    path
}

#[test]
fn a_connection_redis_killed_is_replaced_and_the_next_knock_runs() {
    let Some(server) = tool("redis-server") else {
        assert!(std::env::var_os("CI").is_none(), "CI installs redis-server");
        return;
    };
    let redis = RedisServer::start(&server, None, None, &["--requirepass", PASS]).unwrap();
    let secrets = tempfile::tempdir().unwrap();
    let pass = password_file(secrets.path(), PASS);
    let a = Stack::start(&format!(
        "floor_store = \"redis://127.0.0.1:{}/0\"\nfloor_store_password_file = \"{}\"\nmax_clock_skew_seconds = 1\n",
        redis.port,
        pass.display()
    ));
    past_the_fence(&a);
    a.send_datagram(&v0_datagram(&key_string(&a), "default", now_nanos()));
    a.expect_runs("default", &["127.0.0.1"]);
    // Redis (or a NAT) drops the idle connection.
    let killed = redis_cmd(
        redis.port,
        Some(PASS),
        &["CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"],
    );
    assert!(killed.contains(":1"), "{killed}");
    a.send_datagram(&v0_datagram(&key_string(&a), "default", now_nanos()));
    a.expect_runs("default", &["127.0.0.1"; 2]);
    assert!(
        a.server.log_text().contains("trying a fresh one"),
        "{}",
        a.logs()
    );
}

#[test]
fn an_acl_user_over_a_unix_socket() {
    let Some(server) = tool("redis-server") else {
        assert!(std::env::var_os("CI").is_none(), "CI installs redis-server");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("redis.sock");
    let sock_arg = sock.display().to_string();
    let redis = RedisServer::start(
        &server,
        None,
        None,
        &[
            "--unixsocket",
            &sock_arg,
            "--unixsocketperm",
            "700",
            "--user",
            "default",
            "off",
            "--user",
            "ruroco",
            "on",
            ">acl-pass",
            "~ruroco:*",
            "+eval",
            "+info",
            "+wait",
            "+get",
            "+set",
            "+zscore",
            "+zadd",
            "+zcard",
            "+zrange",
            "+zremrangebylex",
        ],
    )
    .unwrap();
    let pass = password_file(dir.path(), "acl-pass");
    let a = Stack::start(&format!(
        "floor_store = \"redis+unix://{}\"\nfloor_store_user = \"ruroco\"\nfloor_store_password_file = \"{}\"\nmax_clock_skew_seconds = 1\n",
        sock.display(),
        pass.display()
    ));
    past_the_fence(&a);
    assert!(
        a.server.log_text().contains("shared through redis+unix://"),
        "{}",
        a.logs()
    );
    let datagram = v0_datagram(&key_string(&a), "default", now_nanos());
    a.send_datagram(&datagram);
    a.expect_runs("default", &["127.0.0.1"]);
    a.send_datagram(&datagram);
    assert!(a.server.wait_log("reason=replay", WAIT), "{}", a.logs());
    let stored = redis_cmd(redis.port, None, &["PING"]);
    assert!(
        stored.starts_with("-NOAUTH"),
        "the default user is off: {stored}"
    );
}

/// A sentinel process on a free port, killed when dropped.
struct Sentinel {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Sentinel {
    fn start(redis: &Path, primary: u16) -> Sentinel {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {}\nsentinel monitor floors 127.0.0.1 {primary} 2\nsentinel auth-pass floors {PASS}\nsentinel down-after-milliseconds floors 1000\nsentinel failover-timeout floors 4000\nsentinel parallel-syncs floors 1\n",
                dir.path().display()
            ),
        )
        .unwrap();
        let child = Command::new(redis)
            .arg(&conf)
            .arg("--sentinel")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + WAIT;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "sentinel did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Sentinel {
            child,
            port,
            _dir: dir,
        }
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The guide's layout: a primary, two replicas in sync, three sentinels that know each
/// other (quorum 2). `r1_extra` is added to the first replica's arguments.
fn sentinel_layout(
    server: &Path,
    r1_extra: &[&str],
) -> (RedisServer, RedisServer, RedisServer, Vec<Sentinel>) {
    let auth = ["--requirepass", PASS, "--masterauth", PASS];
    let primary = RedisServer::start(server, None, None, &auth).unwrap();
    let replica_of = primary.port.to_string();
    let mut with = auth.to_vec();
    with.extend(["--replicaof", "127.0.0.1", &replica_of]);
    let r1 = RedisServer::start(server, None, None, &[&with[..], r1_extra].concat()).unwrap();
    let r2 = RedisServer::start(server, None, None, &with).unwrap();
    let sentinels: Vec<Sentinel> = (0..3)
        .map(|_| Sentinel::start(server, primary.port))
        .collect();
    // Both replicas in sync before the servers start.
    let deadline = Instant::now() + Duration::from_secs(15);
    while redis_cmd(primary.port, Some(PASS), &["INFO", "replication"])
        .matches("state=online")
        .count()
        < 2
    {
        assert!(Instant::now() < deadline, "replicas did not connect");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The sentinels know each other (they need a majority to fail over).
    for sentinel in &sentinels {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !redis_cmd(sentinel.port, None, &["SENTINEL", "CKQUORUM", "floors"])
            .contains("3 usable")
        {
            assert!(
                Instant::now() < deadline,
                "sentinels did not find each other"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    (primary, r1, r2, sentinels)
}

/// The `redis-sentinel://` floor store of `sentinels`, with WAIT for one replica.
fn sentinel_store(sentinels: &[Sentinel], pass: &Path) -> String {
    let list: Vec<String> = sentinels
        .iter()
        .map(|s| format!("127.0.0.1:{}", s.port))
        .collect();
    format!(
        "floor_store = \"redis-sentinel://{}/floors\"\nfloor_store_password_file = \"{}\"\nfloor_store_min_replicas = 1\nfloor_store_timeout_ms = 500\nmax_requests_per_second = 100\nmax_clock_skew_seconds = 1\n",
        list.join(","),
        pass.display()
    )
}

pub(crate) fn signal(pid: u32, signal: nix::sys::signal::Signal) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap()),
        signal,
    )
    .unwrap();
}

/// The failover that loses an acknowledged floor, step by step: replica B is paused while
/// knock D runs on server H (WAIT 1 is answered by replica A); A pauses and the primary
/// dies; the sentinels promote B, which never saw D's floor; A comes back as B's replica
/// and resyncs, so no copy of D's floor is left. D, replayed to server G, must not run
/// again: G's fresh connection finds a new primary epoch, whose fence refuses it.
#[test]
fn a_promoted_replica_that_missed_a_floor_never_lets_a_knock_run_twice() {
    use nix::sys::signal::Signal;
    let Some(server) = tool("redis-server") else {
        assert!(std::env::var_os("CI").is_none(), "CI installs redis-server");
        return;
    };
    // A can never be promoted: on a busy machine the sentinels may take the freshly
    // promoted B for down, and A (which holds D's floor) would then become primary
    // again, leaving the lost floor of this test unexercised.
    let (primary, a, b, sentinels) = sentinel_layout(&server, &["--replica-priority", "0"]);
    let secrets = tempfile::tempdir().unwrap();
    let pass = password_file(secrets.path(), PASS);
    let extra = sentinel_store(&sentinels, &pass);
    let h = Stack::start(&extra);
    let g = Stack::start_with_key(&extra, &key_string(&h));
    past_the_fence(&h);
    // G has its connection to the primary too.
    g.send_datagram(&v0_datagram(&key_string(&h), "default", now_nanos()));
    g.expect_runs("default", &["127.0.0.1"]);
    // B stalls; D runs on H, acknowledged by A alone.
    signal(b.pid(), Signal::SIGSTOP);
    let d = v0_datagram(&key_string(&h), "default", now_nanos());
    h.send_datagram(&d);
    h.expect_runs("default", &["127.0.0.1"]);
    // A stalls, the primary dies, B comes back: the sentinels can only promote B.
    signal(a.pid(), Signal::SIGSTOP);
    let old = primary.port;
    drop(primary);
    signal(b.pid(), Signal::SIGCONT);
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let named = redis_cmd(
            sentinels[0].port,
            None,
            &["SENTINEL", "get-master-addr-by-name", "floors"],
        );
        if named.contains(&b.port.to_string()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "B (port {}) was not promoted (primary was {old}): {named}",
            b.port
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // A returns and becomes B's replica: it resyncs from B and loses D's floor too.
    signal(a.pid(), Signal::SIGCONT);
    // (Sentinel looks at a returning replica on its ten-second INFO round, which a busy
    // machine stretches.)
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let replication = redis_cmd(b.port, Some(PASS), &["INFO", "replication"]);
        if replication.contains(&format!("port={},state=online", a.port)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "A (port {}) did not rejoin as B's replica: {replication}",
            a.port
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // D replayed to G, whose connection went to the dead primary: a fresh one reaches B.
    // Until G has asked the sentinels (which a slow machine may not answer in time: G
    // then fails closed, and D is refused without a verdict), D is sent again; no
    // attempt may run it, and one must be judged a replay.
    let before = g.runs("default");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        g.send_datagram(&d);
        if g.server.wait_log("reason=replay", Duration::from_secs(3)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "D was never judged a replay\n{}",
            g.logs()
        );
    }
    std::thread::sleep(QUIET);
    assert_eq!(
        g.runs("default"),
        before,
        "D ran a second time after the failover\n{}",
        g.logs()
    );
    // Knocks run again once the fence is past.
    let deadline = Instant::now() + Duration::from_secs(20);
    while g.runs("default") == before {
        assert!(Instant::now() < deadline, "{}", g.logs());
        g.send_datagram(&v0_datagram(&key_string(&h), "default", now_nanos()));
        std::thread::sleep(Duration::from_millis(250));
    }
    drop((a, b, sentinels));
}

#[test]
fn a_sentinel_failover_runs_new_knocks_and_opens_no_replay() {
    let Some(server) = tool("redis-server") else {
        assert!(std::env::var_os("CI").is_none(), "CI installs redis-server");
        return;
    };
    let (primary, r1, r2, sentinels) = sentinel_layout(&server, &[]);
    let secrets = tempfile::tempdir().unwrap();
    let pass = password_file(secrets.path(), PASS);
    let extra = sentinel_store(&sentinels, &pass);
    let a = Stack::start(&extra);
    let b = Stack::start_with_key(&extra, &key_string(&a));
    past_the_fence(&a);
    // One key shared by both: each knock waits for the one before, or a later counter
    // reaching the store first would (rightly) make an earlier one a replay.
    let mut accepted = Vec::new();
    for stack in [&a, &b, &a] {
        let before = stack.runs("default");
        let d = v0_datagram(&key_string(&a), "default", now_nanos());
        stack.send_datagram(&d);
        let deadline = Instant::now() + WAIT;
        while stack.runs("default") == before {
            assert!(Instant::now() < deadline, "{}", stack.logs());
            std::thread::sleep(Duration::from_millis(20));
        }
        accepted.push(d);
    }
    // The primary dies.
    let killed_at = Instant::now();
    drop(primary);
    let mut first_run = None;
    let mut refused = 0;
    let before = a.runs("default");
    while killed_at.elapsed() < Duration::from_secs(40) {
        a.send_datagram(&v0_datagram(&key_string(&a), "default", now_nanos()));
        std::thread::sleep(Duration::from_millis(200));
        if a.runs("default") > before {
            first_run = Some(killed_at.elapsed());
            break;
        }
        refused += 1;
    }
    let first_run =
        first_run.unwrap_or_else(|| panic!("no knock ran after the failover\n{}", a.logs()));
    eprintln!(
        "failover: knocks refused for {:.1} s ({refused} knocks) until the promoted replica answered",
        first_run.as_secs_f64()
    );
    assert!(a.server.log_text().contains("a failover"), "{}", a.logs());
    // B follows too, without a restart.
    b.send_datagram(&v0_datagram(&key_string(&a), "default", now_nanos()));
    let deadline = Instant::now() + WAIT;
    while b.runs("default") < 2 {
        assert!(Instant::now() < deadline, "{}", b.logs());
        b.send_datagram(&v0_datagram(&key_string(&a), "default", now_nanos()));
        std::thread::sleep(Duration::from_millis(200));
    }
    // Everything accepted before the failover is a replay on both.
    let (ra, rb) = (a.runs("default"), b.runs("default"));
    for d in &accepted {
        a.send_datagram(d);
        b.send_datagram(d);
    }
    std::thread::sleep(QUIET);
    assert_eq!(
        (a.runs("default"), b.runs("default")),
        (ra, rb),
        "a datagram ran twice\n{}\n{}",
        a.logs(),
        b.logs()
    );
    drop((r1, r2, sentinels));
}
