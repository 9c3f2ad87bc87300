//! The server under junk: CPU per datagram from 1 and 65,536 sources next to a bare
//! `recvmmsg` loop, kernel drops, resident memory before and after a million distinct
//! sources, and valid commands that still run during a flood.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::binaries::Binaries;
use crate::fwknopd::Fwknopd;
use crate::procfs::{cpu_ns, rss_kib, udp_socket, wait_drained};
use crate::report::{fmt, Report, Row};
use crate::stack::{now_ns, Stack};
use crate::stats::median;
use crate::traffic::{junk, source, valid, Sender};

/// Junk datagrams per measurement.
const JUNK: u64 = 300_000;

/// CPU ns per datagram the process at `pid` spent on `JUNK` datagrams from `sources`
/// distinct sources sent to `to`, and the kernel's drops on its socket.
pub(crate) fn junk_cost(pid: u32, to: SocketAddr, sources: u32) -> anyhow::Result<(f64, u64)> {
    let SocketAddr::V4(to4) = to else {
        anyhow::bail!("IPv4 only");
    };
    let sender = Sender::new()?;
    let drops_before = udp_socket(pid, to)?.1;
    let cpu_before = cpu_ns(pid)?;
    let started = Instant::now();
    for i in 0..JUNK {
        let bytes = junk(i);
        if sources == 1 {
            sender.send(to, &bytes);
        } else {
            sender.send_from(source((i % u64::from(sources)) as u32), to4, &bytes);
        }
        // Bounded in time whatever happens.
        if i % 4096 == 0 && started.elapsed() > Duration::from_secs(60) {
            break;
        }
    }
    wait_drained(pid, to)?;
    let cpu = cpu_ns(pid)?.saturating_sub(cpu_before);
    let drops = udp_socket(pid, to)?.1.saturating_sub(drops_before);
    let received = JUNK.saturating_sub(drops).max(1);
    Ok((cpu as f64 / received as f64, drops))
}

/// Starts the bare receive loop; its pid and address.
fn start_floor(bins: &Binaries) -> anyhow::Result<(Child, SocketAddr)> {
    let mut child = Command::new(&bins.udp_floor)
        .args(["127.0.0.1:0", "600"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start udp-floor")?;
    let mut line = String::new();
    let stdout = child.stdout.take().context("no stdout")?;
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)?;
    let port: u16 = line.trim().parse().context("udp-floor printed no port")?;
    Ok((child, SocketAddr::from(([127, 0, 0, 1], port))))
}

/// RSS (KiB) of `pid` before and after junk from a million distinct sources.
fn million_sources(pid: u32, to: SocketAddr) -> anyhow::Result<(u64, u64)> {
    let before = rss_kib(pid)?;
    let SocketAddr::V4(to4) = to else {
        anyhow::bail!("IPv4 only")
    };
    let sender = Sender::new()?;
    let started = Instant::now();
    for i in 0..1_000_000u64 {
        sender.send_from(source(i as u32), to4, &junk(i));
        if i % 65_536 == 0 {
            wait_drained(pid, to)?;
            if started.elapsed() > Duration::from_secs(120) {
                break;
            }
        }
    }
    wait_drained(pid, to)?;
    Ok((before, rss_kib(pid)?))
}

/// Valid commands run of 100 sent 20 ms apart during a junk flood from 65,536 sources.
fn during_flood(stack: &Stack) -> anyhow::Result<(usize, u64)> {
    let flood_to = stack.addr;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = std::sync::Arc::clone(&stop);
    let flood = std::thread::spawn(move || -> anyhow::Result<u64> {
        let SocketAddr::V4(to) = flood_to else {
            return Ok(0);
        };
        let sender = Sender::new()?;
        let started = Instant::now();
        let mut i = 0u64;
        while !flag.load(std::sync::atomic::Ordering::SeqCst)
            && started.elapsed() < Duration::from_secs(30)
        {
            sender.send_from(source((i % 65_536) as u32), to, &junk(i));
            i += 1;
        }
        Ok(i)
    });
    let sender = Sender::new()?;
    for _ in 0..VALID_IN_FLOOD {
        sender.send(stack.addr, &valid(&stack.key, "stamp", now_ns())?);
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let junk_sent = flood
        .join()
        .map_err(|_| anyhow::anyhow!("flood thread panicked"))??;
    wait_drained(stack.server_pid(), stack.addr)?;
    std::thread::sleep(Duration::from_millis(1500));
    Ok((stack.stamps().len(), junk_sent))
}

/// Valid datagrams sent during the flood.
const VALID_IN_FLOOD: usize = 100;

/// Junk CPU per datagram (ours, the floor and fwknopd; 1 and 65,536 sources), drops,
/// valid commands during a flood, RSS.
pub(crate) fn measure(bins: &Binaries, repeat: usize, report: &mut Report) -> anyhow::Result<()> {
    let stack = Stack::start(bins)?;
    let (mut floor, floor_addr) = start_floor(bins)?;
    let floor_pid = floor.id();
    let fw = match Fwknopd::start()? {
        Ok(fw) => Some(fw),
        Err(why) => {
            eprintln!("fwknopd: not measured: {why}");
            None
        }
    };
    for sources in [1u32, 65_536] {
        let mut m: [Vec<f64>; 6] = Default::default();
        for _ in 0..repeat {
            let (ns, d) = junk_cost(stack.server_pid(), stack.addr, sources)?;
            m[0].push(ns / 1000.0);
            m[1].push(d as f64);
            let (ns, d) = junk_cost(floor_pid, floor_addr, sources)?;
            m[2].push(ns / 1000.0);
            m[3].push(d as f64);
            if let Some(fw) = &fw {
                let (pid, addr) = (fw.pid(), fw.addr());
                let (ns, d) = fw.inside(move || junk_cost(pid, addr, sources))?;
                m[4].push(ns / 1000.0);
                m[5].push(d as f64);
            }
        }
        let [ours, drops, base, base_drops, theirs, their_drops] = &m;
        let (o, b) = (median(ours), median(base));
        report.add(Row {
            figure: format!(
                "junk CPU per datagram, µs, {sources} source(s) (kernel drops of {JUNK})"
            ),
            ours: format!("{} ({})", fmt(o, 2), fmt(median(drops), 0)),
            floor: format!(
                "{} ({}) recvmmsg loop",
                fmt(b, 2),
                fmt(median(base_drops), 0)
            ),
            fwknop: format!(
                "{} ({})",
                fmt(median(theirs), 2),
                fmt(median(their_drops), 0)
            ),
            goal: format!(
                "≤ 1.2× floor (now {}×)",
                fmt(o.zip(b).map(|(o, b)| o / b), 2)
            ),
        });
    }
    let _ = floor.kill();
    let _ = floor.wait();

    let (ran, junk_sent) = during_flood(&stack)?;
    report.add(Row {
        figure: format!(
            "valid commands run of {VALID_IN_FLOOD} sent during a flood of {junk_sent} junk datagrams"
        ),
        ours: ran.to_string(),
        floor: "–".into(),
        fwknop: "–".into(),
        goal: format!("{VALID_IN_FLOOD}"),
    });

    let (before, after) = million_sources(stack.server_pid(), stack.addr)?;
    let theirs = match &fw {
        Some(fw) => {
            let (pid, addr) = (fw.pid(), fw.addr());
            let (b, a) = fw.inside(move || million_sources(pid, addr))?;
            format!("{b} → {a}")
        }
        None => "–".into(),
    };
    report.add(Row {
        figure: "RSS, KiB, before → after junk from 1,000,000 distinct sources".into(),
        ours: format!("{before} → {after}"),
        floor: "–".into(),
        fwknop: theirs,
        goal: "flat".into(),
    });
    Ok(())
}
