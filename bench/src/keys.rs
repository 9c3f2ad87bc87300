//! Many keys: for 1, 1,000, 10,000 and 100,000 key files (one per client, as documented),
//! the server's start to "listening", its resident memory, how long a reload of all of
//! them takes, and how long a knock sent right after the SIGHUP takes to be handed to the
//! commander (it must not wait for the reload, which reads the keys off the loop), what
//! the kernel filter checks at that size, and what junk costs the server process: its CPU
//! time per datagram for a flood of 94-byte datagrams with unknown key ids, with the filter
//! as it is at that size and with `kernel_filter = false`; and what a valid knock costs it
//! (CPU time per knock, its floor committed and handed over), which must not grow with the
//! number of keys.

use std::os::unix::net::UnixListener;
use std::time::{Duration, Instant};

use anyhow::Context;
use nix::sys::signal::Signal;
use ruroco_proto::Key;
use ruroco_testkit::Daemon;

use crate::binaries::Binaries;
use crate::report::{fmt, Report, Row};
use crate::stats::median;

/// The key counts measured.
const COUNTS: [usize; 4] = [1, 1_000, 10_000, 100_000];

/// One run at one key count: start ms, RSS KiB, reload ms, knock-during-reload ms.
struct Run {
    start_ms: f64,
    rss_kib: f64,
    reload_ms: f64,
    knock_ms: f64,
    filter: String,
    junk_ns: f64,
    valid_us: f64,
}

/// Valid knocks per run, each its own batch.
const VALID: usize = 200;

/// Sends [`VALID`] valid knocks, 2 ms apart, each with the next of `keys` (round the
/// first 200), takes every hand-over from `inbox`, and returns the CPU time the server
/// `pid` spent per knock, in µs.
fn valid_us(
    pid: u32,
    addr: std::net::SocketAddr,
    keys: &[Key],
    inbox: &UnixListener,
) -> anyhow::Result<f64> {
    let sender = std::net::UdpSocket::bind("127.0.0.1:0")?;
    let some = keys.get(..keys.len().min(VALID)).unwrap_or(keys);
    let before = crate::procfs::cpu_time_ns(pid)?;
    for (i, key) in some.iter().cycle().take(VALID).enumerate() {
        let datagram = crate::traffic::valid(key, "noop", crate::stack::now_ns() + i as u128)?;
        sender.send_to(&datagram, addr)?;
        std::thread::sleep(Duration::from_millis(2));
        while inbox.accept().is_ok() {}
    }
    std::thread::sleep(Duration::from_millis(100));
    while inbox.accept().is_ok() {}
    let spent = crate::procfs::cpu_time_ns(pid)?.saturating_sub(before);
    Ok(spent.as_secs_f64() * 1e6 / VALID as f64)
}

/// Junk datagrams per flood: bounded, about a second of sending.
const JUNK: usize = 200_000;

/// Floods `addr` with [`JUNK`] 94-byte datagrams of random key ids (none loaded), then
/// returns the CPU time the server `pid` spent per datagram, in ns.
fn junk_ns(pid: u32, addr: std::net::SocketAddr) -> anyhow::Result<f64> {
    let sender = std::net::UdpSocket::bind("127.0.0.1:0")?;
    let before = crate::procfs::cpu_time_ns(pid)?;
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut datagram = [0u8; 94];
    let deadline = Instant::now() + Duration::from_secs(30);
    for _ in 0..JUNK {
        // xorshift64: a fresh id per datagram.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if let Some(id) = datagram.get_mut(..8) {
            id.copy_from_slice(&x.to_be_bytes());
        }
        let _ = sender.send_to(&datagram, addr);
        if Instant::now() > deadline {
            break;
        }
    }
    // What is queued is read within this.
    std::thread::sleep(Duration::from_millis(300));
    let spent = crate::procfs::cpu_time_ns(pid)?.saturating_sub(before);
    Ok(spent.as_secs_f64() * 1e9 / JUNK as f64)
}

fn one(bins: &Binaries, dir: &std::path::Path, keys: &[Key]) -> anyhow::Result<Run> {
    let config = dir.join("config.toml");
    let socket = dir.join("ruroco.socket");
    let _ = std::fs::remove_file(&socket);
    let _ = std::fs::remove_file(dir.join("floors.bin"));
    let inbox = UnixListener::bind(&socket)?;
    inbox.set_nonblocking(true)?;
    let started = Instant::now();
    let server = Daemon::try_spawn(crate::stack::server_command(bins, &config), "listening on")
        .map_err(|(log, _)| anyhow::anyhow!("server did not start: {log}"))?;
    let start_ms = started.elapsed().as_secs_f64() * 1e3;
    let addr = server.listening_addr().context("server address")?;
    let pid = server.pid().as_raw().unsigned_abs();
    let rss_kib = crate::procfs::rss_kib(pid)? as f64;
    let log = server.log_text();
    let filter = if log.contains("does not fit") || log.contains("by length only") {
        "length"
    } else if log.contains("key id(s) reach the server") {
        "keys"
    } else {
        "off"
    }
    .to_owned();
    let key = keys.first().context("no key")?;
    let sender = std::net::UdpSocket::bind("127.0.0.1:0")?;
    let reloads_before = log.matches("reloaded").count();
    let hup = Instant::now();
    server.signal(Signal::SIGHUP);
    // The knock right after the SIGHUP.
    let datagram = crate::traffic::valid(key, "noop", crate::stack::now_ns())?;
    let sent = Instant::now();
    sender.send_to(&datagram, addr)?;
    let mut knock_ms = f64::NAN;
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if inbox.accept().is_ok() {
            knock_ms = sent.elapsed().as_secs_f64() * 1e3;
            break;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    while server.log_text().matches("reloaded").count() == reloads_before
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(1));
    }
    let reload_ms = hup.elapsed().as_secs_f64() * 1e3;
    let valid_us = valid_us(pid, addr, keys, &inbox)?;
    let junk_ns = junk_ns(pid, addr)?;
    drop(server);
    Ok(Run {
        start_ms,
        rss_kib,
        reload_ms,
        knock_ms,
        filter,
        junk_ns,
        valid_us,
    })
}

/// Junk's cost to the server with `kernel_filter = false` (every datagram judged in user
/// space), over the keys of `dir`.
fn junk_without_filter(bins: &Binaries, dir: &std::path::Path) -> anyhow::Result<f64> {
    let config = dir.join("config-nofilter.toml");
    let base = std::fs::read_to_string(dir.join("config.toml"))?;
    std::fs::write(&config, format!("{base}kernel_filter = false\n"))?;
    let _ = std::fs::remove_file(dir.join("floors.bin"));
    let server = Daemon::try_spawn(crate::stack::server_command(bins, &config), "listening on")
        .map_err(|(log, _)| anyhow::anyhow!("server did not start: {log}"))?;
    let addr = server.listening_addr().context("server address")?;
    let pid = server.pid().as_raw().unsigned_abs();
    junk_ns(pid, addr)
}

/// Runs every key count `repeat` times and reports the medians.
pub(crate) fn measure(bins: &Binaries, repeat: usize, report: &mut Report) -> anyhow::Result<()> {
    for count in COUNTS {
        let dir = tempfile::tempdir()?;
        let d = dir.path().display().to_string();
        let mut keys = Vec::with_capacity(count);
        for i in 0..count {
            let key = Key::generate()?;
            std::fs::write(
                dir.path().join(format!("k{i:06}.key")),
                key.to_key_string().as_bytes(),
            )?;
            keys.push(key);
        }
        std::fs::write(
            dir.path().join("config.toml"),
            format!(
                "ips = [\"127.0.0.1\"]\nconfig_dir = \"{d}\"\nsocket_user = \"\"\nsocket_group = \"\"\n\
                 allow_non_routable_ips = true\nmax_requests_per_second = 100000\n\
                 max_requests_per_second_global = 100000\n"
            ),
        )?;
        let mut runs = Vec::new();
        for _ in 0..repeat {
            runs.push(one(bins, dir.path(), &keys)?);
        }
        let m = |f: fn(&Run) -> f64| median(&runs.iter().map(f).collect::<Vec<_>>());
        let filter = runs.first().map(|r| r.filter.clone()).unwrap_or_default();
        let rss = m(|r| r.rss_kib);
        let junk_off = junk_without_filter(bins, dir.path())?;
        report.add(Row {
            figure: format!(
                "{count} key(s): start to listening ms / RSS KiB / reload ms / a knock sent right after SIGHUP handed over after ms / server CPU per valid knock µs / server CPU per junk datagram ns, filter {filter} / the same, filter off"
            ),
            ours: format!(
                "{} / {} / {} / {} / {} / {} / {}",
                fmt(m(|r| r.start_ms), 0),
                fmt(rss, 0),
                fmt(m(|r| r.reload_ms), 0),
                fmt(m(|r| r.knock_ms), 1),
                fmt(m(|r| r.valid_us), 0),
                fmt(m(|r| r.junk_ns), 0),
                fmt(Some(junk_off), 0)
            ),
            floor: "–".into(),
            fwknop: "–".into(),
            goal: if count == 100_000 {
                "start ≤ 1000 ms, knock ≤ 50 ms".into()
            } else {
                "–".into()
            },
        });
    }
    Ok(())
}
