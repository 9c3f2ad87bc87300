//! The server under junk: what a junk datagram costs the whole machine (see
//! [`crate::machine`]) with and without the kernel filter, next to a bare `recvmmsg` loop
//! and fwknopd, from 1 and 65,536 sources; how much junk still reaches the server process;
//! resident memory before and after a million distinct sources; and valid commands that
//! still run during a flood.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::binaries::Binaries;
use crate::fwknopd::Fwknopd;
use crate::machine::{marginal, Sink, FLOOD};
use crate::procfs::{rss_kib, udp_socket, wait_drained};
use crate::report::{fmt, Report, Row};
use crate::stack::{now_ns, Stack};
use crate::stats::median;
use crate::traffic::{junk, source, valid, Sender};

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

/// Medians of one figure's samples for each target.
#[derive(Default)]
struct Samples {
    ours: Vec<f64>,
    ours_unfiltered: Vec<f64>,
    floor: Vec<f64>,
    fwknopd: Vec<f64>,
    keyed_ours: Vec<f64>,
    keyed_floor: Vec<f64>,
    reached: Vec<f64>,
}

/// Marginal whole-machine CPU per junk datagram (ours with and without the kernel filter,
/// the bare loop and fwknopd; 1 and 65,536 sources; random junk and junk carrying a loaded
/// key id), junk reaching the server process, valid commands during a flood, RSS.
pub(crate) fn measure(bins: &Binaries, repeat: usize, report: &mut Report) -> anyhow::Result<()> {
    let stack = Stack::start(bins)?;
    let unfiltered = Stack::start_with(bins, "kernel_filter = false")?;
    let (mut floor, floor_addr) = start_floor(bins)?;
    let floor_pid = floor.id();
    let sink = Sink::new()?;
    let sink_addr = sink.addr()?;
    let fw = match Fwknopd::start()? {
        Ok(fw) => Some(fw),
        Err(why) => {
            eprintln!("fwknopd: not measured: {why}");
            None
        }
    };
    let random = |i: u64| junk(i).to_vec();
    let id = stack.key.id().0;
    let keyed = move |i: u64| {
        let mut bytes = junk(i).to_vec();
        if let Some(head) = bytes.get_mut(..8) {
            head.copy_from_slice(&id);
        }
        bytes
    };
    for sources in [1u32, 65_536] {
        let mut m = Samples::default();
        for rep in 0..repeat {
            let first = rep % 2 == 0;
            let server = stack.server_pid();
            let drops_before = udp_socket(server, stack.addr)?.1;
            let ours = marginal(stack.addr, Some(server), sink_addr, sources, &random, first)?;
            let dropped = udp_socket(server, stack.addr)?
                .1
                .saturating_sub(drops_before);
            m.reached.push(FLOOD.saturating_sub(dropped) as f64);
            m.ours.push(ours);
            let (pid, addr) = (unfiltered.server_pid(), unfiltered.addr);
            m.ours_unfiltered.push(marginal(
                addr,
                Some(pid),
                sink_addr,
                sources,
                &random,
                first,
            )?);
            m.floor.push(marginal(
                floor_addr,
                Some(floor_pid),
                sink_addr,
                sources,
                &random,
                first,
            )?);
            m.keyed_ours.push(marginal(
                stack.addr,
                Some(server),
                sink_addr,
                sources,
                &keyed,
                first,
            )?);
            m.keyed_floor.push(marginal(
                floor_addr,
                Some(floor_pid),
                sink_addr,
                sources,
                &keyed,
                first,
            )?);
            if let Some(fw) = &fw {
                let (pid, addr) = (fw.pid(), fw.addr());
                m.fwknopd.push(fw.inside(move || {
                    // Its own baseline, in its namespace.
                    let sink = Sink::new()?;
                    let random = |i: u64| junk(i).to_vec();
                    marginal(addr, Some(pid), sink.addr()?, sources, &random, first)
                })?);
            }
        }
        let floor_ns = median(&m.floor);
        let ratio = |v: Option<f64>, base: Option<f64>| fmt(v.zip(base).map(|(v, b)| v / b), 2);
        let ours = median(&m.ours);
        report.add(Row {
            figure: format!(
                "junk, whole-machine CPU per datagram over a drop-all socket, ns, {sources} source(s)"
            ),
            ours: fmt(ours, 0),
            floor: format!("{} recvmmsg loop", fmt(floor_ns, 0)),
            fwknop: fmt(median(&m.fwknopd), 0),
            goal: format!("≤ 0.2× floor (now {}×)", ratio(ours, floor_ns)),
        });
        let unf = median(&m.ours_unfiltered);
        report.add(Row {
            figure: format!("  the same, ruroco with kernel_filter = false, {sources} source(s)"),
            ours: fmt(unf, 0),
            floor: format!("{} recvmmsg loop", fmt(floor_ns, 0)),
            fwknop: "–".into(),
            goal: format!("≤ 1.2× floor (now {}×)", ratio(unf, floor_ns)),
        });
        let (k, kf) = (median(&m.keyed_ours), median(&m.keyed_floor));
        report.add(Row {
            figure: format!(
                "  junk carrying a loaded key id (passes the filter, fails authentication), {sources} source(s)"
            ),
            ours: fmt(k, 0),
            floor: format!("{} recvmmsg loop", fmt(kf, 0)),
            fwknop: "–".into(),
            goal: format!("≤ 1.2× floor (now {}×)", ratio(k, kf)),
        });
        report.add(Row {
            figure: format!(
                "  junk datagrams reaching the server process, of {FLOOD}, {sources} source(s)"
            ),
            ours: fmt(median(&m.reached), 0),
            floor: format!("{FLOOD}"),
            fwknop: "–".into(),
            goal: "0".into(),
        });
    }
    let _ = floor.kill();
    let _ = floor.wait();
    drop(sink);

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

    // Without the filter: with it, no junk would reach the process at all.
    let (before, after) = million_sources(unfiltered.server_pid(), unfiltered.addr)?;
    let theirs = match &fw {
        Some(fw) => {
            let (pid, addr) = (fw.pid(), fw.addr());
            let (b, a) = fw.inside(move || million_sources(pid, addr))?;
            format!("{b} → {a}")
        }
        None => "–".into(),
    };
    report.add(Row {
        figure:
            "RSS, KiB, before → after junk from 1,000,000 distinct sources (kernel_filter = false)"
                .into(),
        ours: format!("{before} → {after}"),
        floor: "–".into(),
        fwknop: theirs,
        goal: "flat".into(),
    });
    Ok(())
}
