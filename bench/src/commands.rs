//! From datagram to command: a burst of valid datagrams sent back to back (commands run
//! per second), and the latency from sending a datagram to the first line its command
//! prints (`echo $(date +%s%N)`), 100 ms apart.

use std::time::{Duration, Instant};

use crate::binaries::Binaries;
use crate::fwknopd::Fwknopd;
use crate::report::{fmt, Report, Row};
use crate::stack::{now_ns, Stack};
use crate::stats::{median, quantile};
use crate::traffic::{valid, Sender};

/// Datagrams in a burst.
const BURST: usize = 100;
/// Bursts per repetition (each on a fresh stack); the figure is their median.
const BURSTS_PER_RUN: usize = 3;
/// Datagrams for the latency figure.
const LATENCY: usize = 100;

/// Waits (bounded) until `n` stamps are there; the stamps.
fn wait_stamps(stack: &Stack, n: usize, limit: Duration) -> Vec<u128> {
    let started = Instant::now();
    loop {
        let stamps = stack.stamps();
        if stamps.len() >= n || started.elapsed() > limit {
            return stamps;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Commands per second for one burst on a fresh stack.
fn burst(bins: &Binaries) -> anyhow::Result<Option<f64>> {
    let stack = Stack::start(bins)?;
    let sender = Sender::new()?;
    let base = now_ns();
    let packets: Vec<Vec<u8>> = (0..BURST)
        .map(|i| valid(&stack.key, "stamp", base + i as u128))
        .collect::<anyhow::Result<_>>()?;
    let first_sent = now_ns();
    for p in &packets {
        sender.send(stack.addr, p);
    }
    let stamps = wait_stamps(&stack, BURST, Duration::from_secs(30));
    if stamps.len() < BURST {
        eprintln!("burst: only {} of {BURST} commands ran", stamps.len());
        return Ok(None);
    }
    let last = stamps.iter().max().copied().unwrap_or(first_sent);
    let seconds = (last.saturating_sub(first_sent)) as f64 / 1e9;
    Ok(Some(BURST as f64 / seconds))
}

/// Latency in ms over `LATENCY` datagrams 100 ms apart, and where it went.
struct Latency {
    p50: Option<f64>,
    p99: Option<f64>,
    /// Medians, ms: send → the commander's `running command` line (the floor stored,
    /// the message handed on, the command started), → the command's first line.
    stages: [Option<f64>; 2],
}

/// Nanoseconds into the UTC day of each log line holding `needle` (the daemons' lines
/// start with `YYYY-MM-DDTHH:MM:SS.ffffffZ`).
fn log_times(log: &str, needle: &str) -> Vec<u128> {
    let of_day = |line: &str| -> Option<u128> {
        let hms = line.get(11..26)?;
        let h: u128 = hms.get(0..2)?.parse().ok()?;
        let m: u128 = hms.get(3..5)?.parse().ok()?;
        let s: u128 = hms.get(6..8)?.parse().ok()?;
        let us: u128 = hms.get(9..15)?.parse().ok()?;
        Some(((h * 60 + m) * 60 + s) * 1_000_000_000 + us * 1_000)
    };
    log.lines()
        .filter(|l| l.contains(needle))
        .filter_map(of_day)
        .collect()
}

/// Writes out what earlier sections left for the disk, so that neither latency run pays
/// for them: ruroco's includes a flush of its floors (`fdatasync`), which waits for every
/// write the disk has queued, and right after the junk floods that left a p99 of 3.3 ms
/// against 1.9 ms a minute later.
fn settle() {
    nix::unistd::sync();
    std::thread::sleep(Duration::from_millis(500));
}

fn latency(bins: &Binaries) -> anyhow::Result<Latency> {
    const DAY: u128 = 86_400 * 1_000_000_000;
    let stack = Stack::start(bins)?;
    settle();
    let sender = Sender::new()?;
    let mut samples = Vec::with_capacity(LATENCY);
    let mut sent_at = Vec::with_capacity(LATENCY);
    for i in 0..LATENCY {
        let packet = valid(&stack.key, "stamp", now_ns())?;
        let sent = now_ns();
        sender.send(stack.addr, &packet);
        let stamps = wait_stamps(&stack, i + 1, Duration::from_secs(5));
        if let Some(ran) = stamps.get(i) {
            samples.push(ran.saturating_sub(sent) as f64 / 1e6);
        }
        sent_at.push((sent, stamps.get(i).copied()));
        std::thread::sleep(Duration::from_millis(100));
    }
    // The commander logs `running command` right after the command was handed its
    // address; the server's own line comes after the hand-off and is no mark.
    std::thread::sleep(Duration::from_millis(200));
    let running = log_times(&stack._commander.log_text(), "running command stamp");
    let (mut to_commander, mut to_command) = (Vec::new(), Vec::new());
    for (i, (sent, stamp)) in sent_at.iter().enumerate() {
        let (Some(r), Some(stamp)) = (running.get(i), stamp) else {
            continue;
        };
        let (sent, stamp) = (sent % DAY, stamp % DAY);
        if sent <= *r && *r <= stamp {
            to_commander.push((r - sent) as f64 / 1e6);
            to_command.push((stamp - r) as f64 / 1e6);
        }
    }
    Ok(Latency {
        p50: quantile(&samples, 0.5),
        p99: quantile(&samples, 0.99),
        stages: [median(&to_commander), median(&to_command)],
    })
}

/// Commands per second of a burst, and latency (p50, p99) in ms; `None` where not measured.
struct Figures {
    rate: Option<f64>,
    p50: Option<f64>,
    p99: Option<f64>,
}

/// fwknopd's burst rate and latency, each on a fresh fwknopd.
fn fwknopd_runs(with_latency: bool) -> anyhow::Result<Option<Figures>> {
    let fw = match Fwknopd::start()? {
        Ok(fw) => fw,
        Err(why) => {
            eprintln!("fwknopd: not measured: {why}");
            return Ok(None);
        }
    };
    // Burst: packets made in advance by the real client, sent back to back.
    let packets = fw.packets(BURST)?;
    let to = fw.addr();
    let first_sent = fw.inside(move || {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0")?;
        let first = now_ns();
        for p in &packets {
            sock.send_to(p, to)?;
        }
        Ok(first)
    })?;
    let stamps = wait_for(|| fw.stamps(), BURST, Duration::from_secs(30));
    let rate = (stamps.len() >= BURST).then(|| {
        let last = stamps.iter().max().copied().unwrap_or(first_sent);
        BURST as f64 / (last.saturating_sub(first_sent) as f64 / 1e9)
    });
    drop(fw);
    let mut figures = Figures {
        rate,
        p50: None,
        p99: None,
    };
    if !with_latency {
        return Ok(Some(figures));
    }
    let Ok(fw) = Fwknopd::start()? else {
        return Ok(Some(figures));
    };
    let packets = fw.packets(LATENCY)?;
    let to = fw.addr();
    settle();
    let sent: Vec<u128> = fw.inside(move || {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0")?;
        let mut sent = Vec::new();
        for p in &packets {
            sent.push(now_ns());
            sock.send_to(p, to)?;
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(sent)
    })?;
    let stamps = wait_for(|| fw.stamps(), LATENCY, Duration::from_secs(5));
    let samples: Vec<f64> = sent
        .iter()
        .zip(stamps.iter())
        .map(|(s, r)| r.saturating_sub(*s) as f64 / 1e6)
        .collect();
    figures.p50 = quantile(&samples, 0.5);
    figures.p99 = quantile(&samples, 0.99);
    Ok(Some(figures))
}

/// Waits (bounded) until `get` returns `n` items.
fn wait_for(get: impl Fn() -> Vec<u128>, n: usize, limit: Duration) -> Vec<u128> {
    let started = Instant::now();
    loop {
        let got = get();
        if got.len() >= n || started.elapsed() > limit {
            return got;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The burst figure, and with `with_latency` the latency figure, ours and fwknopd's.
pub(crate) fn measure(
    bins: &Binaries,
    repeat: usize,
    report: &mut Report,
    with_latency: bool,
) -> anyhow::Result<()> {
    let (mut rates, mut p50s, mut p99s) = (Vec::new(), Vec::new(), Vec::new());
    let mut stages: [Vec<f64>; 2] = Default::default();
    let (mut fw_rates, mut fw_p50s, mut fw_p99s) = (Vec::new(), Vec::new(), Vec::new());
    let mut fw_seen = false;
    // Interleaved, so both see the same machine state, and each goes first every other
    // repetition.
    for rep in 0..repeat {
        let theirs_first = rep % 2 == 1;
        let mut run_theirs = || -> anyhow::Result<()> {
            if let Some(f) = fwknopd_runs(with_latency)? {
                fw_seen = true;
                fw_rates.extend(f.rate);
                fw_p50s.extend(f.p50);
                fw_p99s.extend(f.p99);
            }
            Ok(())
        };
        if theirs_first {
            run_theirs()?;
        }
        // A burst is short and its rate noisy: three per repetition.
        for _ in 0..BURSTS_PER_RUN {
            rates.extend(burst(bins)?);
        }
        if with_latency {
            let l = latency(bins)?;
            p50s.extend(l.p50);
            p99s.extend(l.p99);
            for (all, one) in stages.iter_mut().zip(l.stages) {
                all.extend(one);
            }
        }
        if !theirs_first {
            run_theirs()?;
        }
    }
    let theirs = |v: String| if fw_seen { v } else { "–".into() };
    report.add(Row {
        figure: format!("burst of {BURST} valid datagrams: commands run per second"),
        ours: fmt(median(&rates), 0),
        floor: "–".into(),
        fwknop: theirs(fmt(median(&fw_rates), 0)),
        goal: "≥ 1,000".into(),
    });
    if !with_latency {
        return Ok(());
    }
    report.add(Row {
        figure: "latency datagram → first line of the command, ms, p50 / p99".into(),
        ours: format!("{} / {}", fmt(median(&p50s), 2), fmt(median(&p99s), 2)),
        floor: "–".into(),
        fwknop: theirs(format!(
            "{} / {}",
            fmt(median(&fw_p50s), 2),
            fmt(median(&fw_p99s), 2)
        )),
        goal: "≤ fwknopd".into(),
    });
    let [a, b] = &stages;
    report.add(Row {
        figure: "  where it goes, ms, p50: to the commander's `running` (floor stored, handed on, started) | to the first line".into(),
        ours: format!("{} | {}", fmt(median(a), 2), fmt(median(b), 2)),
        floor: "–".into(),
        fwknop: "–".into(),
        goal: "–".into(),
    });
    Ok(())
}
