//! Junk as the whole machine pays it. A socket filter moves work out of the server
//! process into the kernel's receive path (softirq, or the sender's own system call on
//! loopback), so the server's own CPU time proves nothing. This measures the busy time of
//! every core (`/proc/stat`) during a flood of N datagrams to a target, minus the same
//! flood to the cheapest possible listener — a UDP socket whose filter drops everything —
//! divided by N: the marginal cost of having that target there. Target and baseline
//! alternate, and each figure is the median over repetitions.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::Context;
use socket2::{SockFilter, SockRef};

use crate::procfs::wait_drained;
use crate::traffic::{source, Sender};

/// Datagrams per flood.
pub(crate) const FLOOD: u64 = 300_000;

/// Busy time of all cores so far, ns: everything but idle and iowait in `/proc/stat`.
pub(crate) fn busy_ns() -> anyhow::Result<u64> {
    let text = std::fs::read_to_string("/proc/stat")?;
    let line = text
        .lines()
        .find(|l| l.starts_with("cpu "))
        .context("no cpu line in /proc/stat")?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|t| t.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is inside user).
    let busy: u64 = ticks
        .iter()
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, t)| *t)
        .sum();
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|hz| *hz > 0)
        .unwrap_or(100);
    Ok(busy.saturating_mul(1_000_000_000 / hz.unsigned_abs()))
}

/// The cheapest listener: a bound UDP socket whose filter drops every datagram.
pub(crate) struct Sink {
    socket: UdpSocket,
}

impl Sink {
    pub(crate) fn new() -> anyhow::Result<Self> {
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        // BPF_RET | BPF_K, 0: drop.
        SockRef::from(&socket).attach_filter(&[SockFilter::new(0x06, 0, 0, 0)])?;
        Ok(Self { socket })
    }

    pub(crate) fn addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.socket.local_addr()?)
    }
}

/// Sends `FLOOD` datagrams made by `make` to `to` from `sources` distinct loopback
/// addresses (1: the sender's own); bounded to 60 s whatever happens.
pub(crate) fn flood(
    to: SocketAddr,
    sources: u32,
    make: &dyn Fn(u64) -> Vec<u8>,
) -> anyhow::Result<u64> {
    let SocketAddr::V4(to4) = to else {
        anyhow::bail!("IPv4 only");
    };
    let sender = Sender::new()?;
    let started = Instant::now();
    let mut sent = 0;
    for i in 0..FLOOD {
        let bytes = make(i);
        if sources == 1 {
            sender.send(to, &bytes);
        } else {
            sender.send_from(source((i % u64::from(sources)) as u32), to4, &bytes);
        }
        sent += 1;
        if i % 4096 == 0 && started.elapsed() > Duration::from_secs(60) {
            break;
        }
    }
    Ok(sent)
}

/// Busy ns of the whole machine during one flood to `to`; `owner` (the pid holding the
/// socket) is waited for until its queue is empty, so its work is inside the window.
fn busy_during(
    to: SocketAddr,
    owner: Option<u32>,
    sources: u32,
    make: &dyn Fn(u64) -> Vec<u8>,
) -> anyhow::Result<(u64, u64)> {
    let before = busy_ns()?;
    let sent = flood(to, sources, make)?;
    if let Some(pid) = owner {
        wait_drained(pid, to)?;
    }
    Ok((busy_ns()?.saturating_sub(before), sent))
}

/// One repetition's marginal ns per datagram of `target` (owned by `owner`) over the sink
/// at `sink`; `target_first` alternates the order.
pub(crate) fn marginal(
    target: SocketAddr,
    owner: Option<u32>,
    sink: SocketAddr,
    sources: u32,
    make: &dyn Fn(u64) -> Vec<u8>,
    target_first: bool,
) -> anyhow::Result<f64> {
    let run_target = || busy_during(target, owner, sources, make);
    let run_sink = || busy_during(sink, None, sources, make);
    let ((t, n), (b, _)) = if target_first {
        let t = run_target()?;
        (t, run_sink()?)
    } else {
        let b = run_sink()?;
        (run_target()?, b)
    };
    Ok((t as f64 - b as f64) / n.max(1) as f64)
}
