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

/// Accepted and forwarded datagrams per second with `floor_store` = `store`.
fn rate(bins: &Binaries, store: &str) -> anyhow::Result<f64> {
    let dir = tempfile::tempdir()?;
    let key = Key::generate()?;
    std::fs::write(dir.path().join("bench.key"), key.to_key_string().as_bytes())?;
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "ips = [\"127.0.0.1\"]\nconfig_dir = \"{}\"\nmax_requests_per_second = 100000\n\
             max_requests_per_second_global = 100000\nfloor_store = \"{store}\"\n",
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

pub(crate) fn measure(bins: &Binaries, repeat: usize, report: &mut Report) -> anyhow::Result<()> {
    let redis = start_redis()?;
    let (mut file, mut shared) = (Vec::new(), Vec::new());
    for _ in 0..repeat {
        file.push(rate(bins, "file")?);
        if let Some(redis) = &redis {
            let url = format!("redis://127.0.0.1:{}/0", redis.port);
            shared.push(rate(bins, &url)?);
        }
    }
    drop(redis);
    report.add(Row {
        figure: format!(
            "accepted datagrams per second, {DATAGRAMS} valid in chunks of {CHUNK}: file store | Redis store (AOF, fsync always)"
        ),
        ours: format!("{} | {}", fmt(median(&file), 0), fmt(median(&shared), 0)),
        floor: "–".into(),
        fwknop: "–".into(),
        goal: "–".into(),
    });
    Ok(())
}
