//! Accepted datagrams per second through the server alone (a listener in this process
//! plays the commander and counts what it is handed), with floors in the local file and
//! with floors shared through a real `redis-server` (AOF, `appendfsync always`, so both
//! are durable before anything is forwarded).

use std::io::Read;
use std::os::unix::net::UnixListener;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use ruroco_proto::Key;
use ruroco_testkit::{Daemon, RedisServer};

use ruroco_testkit::find_tool as tool;

use crate::binaries::Binaries;
use crate::procfs::wait_drained;
use crate::report::{fmt, Report, Row};
use crate::stack::now_ns;
use crate::stats::median;
use crate::traffic::{valid, Sender};

/// Valid datagrams per measurement.
const DATAGRAMS: u64 = 5_000;
/// Sent back to back, then the queue is let drain (no kernel drops).
const CHUNK: u64 = 256;

/// Accepted and forwarded datagrams per second with `floor_store` = `store` and `extra`
/// config lines.
fn rate(bins: &Binaries, store: &str, extra: &str) -> anyhow::Result<f64> {
    let dir = tempfile::tempdir()?;
    let key = Key::generate()?;
    std::fs::write(dir.path().join("bench.key"), key.to_key_string().as_bytes())?;
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "ips = [\"127.0.0.1\"]\nconfig_dir = \"{}\"\nmax_requests_per_second = 100000\n\
             max_requests_per_second_global = 100000\nmax_clock_skew_seconds = 1\nfloor_store = \"{store}\"\n{extra}\n",
            dir.path().display()
        ),
    )?;
    let listener = UnixListener::bind(dir.path().join("ruroco.socket"))?;
    listener.set_nonblocking(true)?;
    let forwarded = Arc::new(AtomicU64::new(0));
    let count = Arc::clone(&forwarded);
    let inbox = std::thread::spawn(move || {
        let started = Instant::now();
        while count.load(Ordering::SeqCst) < DATAGRAMS
            && started.elapsed() < Duration::from_secs(120)
        {
            match listener.accept() {
                Ok((mut s, _)) => {
                    let _ = s.set_nonblocking(false);
                    let mut buf = Vec::new();
                    let _ = s.read_to_end(&mut buf);
                    count.fetch_add(1, Ordering::SeqCst);
                }
                Err(_) => std::thread::sleep(Duration::from_micros(200)),
            }
        }
    });
    let mut cmd = Command::new(&bins.server);
    cmd.arg("--config")
        .arg(&config)
        .args(["--address", "127.0.0.1:0"])
        .env_remove("RUROCO_LOG")
        .env_remove("LISTEN_FDS");
    let server = Daemon::try_spawn(cmd, "listening on")
        .map_err(|(log, _)| anyhow::anyhow!("server did not start: {log}"))?;
    let pid = server.pid().as_raw().unsigned_abs();
    let addr = server.listening_addr().context("server address")?;
    // A shared store's first epoch is fenced for max_clock_skew_seconds (1 s), with
    // Sentinel plus floor_store_timeout_ms (at most 1 s here): one datagram to open it,
    // then past the fence.
    if store != "file" {
        std::net::UdpSocket::bind("127.0.0.1:0")?.send_to(&valid(&key, "noop", now_ns())?, addr)?;
        std::thread::sleep(Duration::from_millis(2200));
    }
    let packets: Vec<Vec<u8>> = (0..DATAGRAMS)
        .map(|i| valid(&key, "noop", now_ns() + u128::from(i)))
        .collect::<anyhow::Result<_>>()?;
    let sender = Sender::new()?;
    let started = Instant::now();
    for chunk in packets.chunks(CHUNK as usize) {
        for p in chunk {
            sender.send(addr, p);
        }
        wait_drained(pid, addr)?;
    }
    while forwarded.load(Ordering::SeqCst) < DATAGRAMS
        && started.elapsed() < Duration::from_secs(60)
    {
        std::thread::sleep(Duration::from_millis(1));
    }
    let seconds = started.elapsed().as_secs_f64();
    let done = forwarded.load(Ordering::SeqCst);
    drop(server);
    let _ = inbox.join();
    Ok(done as f64 / seconds)
}

/// A redis-server on a free loopback port, durable like the file store.
fn start_redis() -> anyhow::Result<Option<RedisServer>> {
    let Some(redis) = tool("redis-server") else {
        eprintln!("floor store: Redis not measured: redis-server is not installed");
        return Ok(None);
    };
    RedisServer::start(&redis, None, None, &["--appendfsync", "always"])
        .map(Some)
        .map_err(|e| anyhow::anyhow!(e))
}

/// A sentinel watching the primary on `primary`, stopped when dropped.
struct Sentinel {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Sentinel {
    fn start(primary: u16, quorum: usize) -> anyhow::Result<Option<Sentinel>> {
        let Some(redis) = tool("redis-server") else {
            return Ok(None);
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let dir = tempfile::tempdir()?;
        let conf = dir.path().join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {}\nsentinel monitor floors 127.0.0.1 {primary} {quorum}\n",
                dir.path().display()
            ),
        )?;
        let child = Command::new(redis)
            .arg(&conf)
            .arg("--sentinel")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if started.elapsed() > Duration::from_secs(10) {
                anyhow::bail!("redis sentinel did not start");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Some(Sentinel {
            child,
            port,
            _dir: dir,
        }))
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn measure(bins: &Binaries, repeat: usize, report: &mut Report) -> anyhow::Result<()> {
    let redis = start_redis()?;
    // Three sentinels, as in the operator guide, in front of a primary with one replica;
    // each batch waits for the replica and asks every sentinel who the primary is.
    let ha = match (&redis, tool("redis-server")) {
        (Some(_), Some(server)) => {
            let primary = RedisServer::start(&server, None, None, &["--appendfsync", "always"])
                .map_err(|e| anyhow::anyhow!(e))?;
            let of = primary.port.to_string();
            let replica = RedisServer::start(
                &server,
                None,
                None,
                &["--appendfsync", "always", "--replicaof", "127.0.0.1", &of],
            )
            .map_err(|e| anyhow::anyhow!(e))?;
            let mut sentinels = Vec::new();
            for _ in 0..3 {
                sentinels.extend(Sentinel::start(primary.port, 2)?);
            }
            // Let the replica finish its first sync and the sentinels find each other.
            std::thread::sleep(Duration::from_secs(2));
            Some((primary, replica, sentinels))
        }
        _ => None,
    };
    let (mut file, mut shared, mut sentinel) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..repeat {
        file.push(rate(bins, "file", "")?);
        if let Some(redis) = &redis {
            let url = format!("redis://127.0.0.1:{}/0", redis.port);
            shared.push(rate(bins, &url, "")?);
        }
        if let Some((_, _, s)) = ha.as_ref().filter(|(_, _, s)| !s.is_empty()) {
            let hosts: Vec<String> = s.iter().map(|s| format!("127.0.0.1:{}", s.port)).collect();
            let url = format!("redis-sentinel://{}/floors", hosts.join(","));
            sentinel.push(rate(
                bins,
                &url,
                "floor_store_min_replicas = 1\nfloor_store_timeout_ms = 1000",
            )?);
        }
    }
    drop(redis);
    drop(ha);
    report.add(Row {
        figure: format!(
            "accepted datagrams per second, {DATAGRAMS} valid in chunks of {CHUNK}: file store | Redis store (AOF, fsync always) | 3 sentinels, primary + 1 replica, WAIT 1"
        ),
        ours: format!(
            "{} | {} | {}",
            fmt(median(&file), 0),
            fmt(median(&shared), 0),
            fmt(median(&sentinel), 0)
        ),
        floor: "–".into(),
        fwknop: "–".into(),
        goal: "–".into(),
    });
    Ok(())
}
