//! What the kernel says about a process and a socket: resident memory, CPU time, and a
//! UDP socket's receive queue and drop counter.

use std::net::SocketAddr;

use anyhow::Context;

/// Resident set size of `pid`, KiB.
pub(crate) fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    text.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no VmRSS")
}

/// User plus system CPU time of process `pid` (all its threads).
pub(crate) fn cpu_time(pid: u32) -> anyhow::Result<std::time::Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("unexpected /proc/PID/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    let ticks = |i: usize| -> anyhow::Result<u64> {
        fields
            .get(i)
            .context("short /proc/PID/stat")?
            .parse::<u64>()
            .context("bad /proc/PID/stat")
    };
    let total = ticks(11)? + ticks(12)?;
    Ok(std::time::Duration::from_secs_f64(
        total as f64 / clock_ticks_per_second(),
    ))
}

/// CPU time of the live threads of process `pid`, to the nanosecond: the first field of
/// each `/proc/PID/task/TID/schedstat` (`/proc/PID/stat` counts in ticks of 10 ms, too
/// coarse for 200 knocks of 0.1 ms). Threads that ended are not in it.
pub(crate) fn cpu_time_ns(pid: u32) -> anyhow::Result<std::time::Duration> {
    let mut total: u64 = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let path = task?.path().join("schedstat");
        // A thread that ended meanwhile has nothing to add.
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let ns: u64 = text
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("unexpected {}", path.display()))?;
        total += ns;
    }
    Ok(std::time::Duration::from_nanos(total))
}

/// The clock tick of those fields (`getconf CLK_TCK`; 100 on Linux).
fn clock_ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// (bytes queued, datagrams dropped) of the IPv4 UDP socket bound to `addr` in the
/// network namespace of process `pid`.
pub(crate) fn udp_socket(pid: u32, addr: SocketAddr) -> anyhow::Result<(u64, u64)> {
    let SocketAddr::V4(a) = addr else {
        anyhow::bail!("only IPv4 sockets are measured");
    };
    let local = format!(
        "{:08X}:{:04X}",
        u32::from_le_bytes(a.ip().octets()),
        a.port()
    );
    let text = std::fs::read_to_string(format!("/proc/{pid}/net/udp"))?;
    // Bound to the address, or to all addresses (0.0.0.0) on that port.
    let any = format!("00000000:{:04X}", a.port());
    let line = text
        .lines()
        .find(|l| {
            let local_field = l.split_whitespace().nth(1);
            local_field == Some(local.as_str()) || local_field == Some(any.as_str())
        })
        .with_context(|| format!("{addr} not in /proc/{pid}/net/udp"))?;
    let fields: Vec<&str> = line.split_whitespace().collect();
    let queued = fields
        .get(4)
        .and_then(|f| f.split(':').nth(1))
        .and_then(|q| u64::from_str_radix(q, 16).ok())
        .unwrap_or(0);
    let drops = fields.last().and_then(|d| d.parse().ok()).unwrap_or(0);
    Ok((queued, drops))
}

/// Waits (up to 20 s) until the socket at `addr` of process `pid` has nothing queued.
pub(crate) fn wait_drained(pid: u32, addr: SocketAddr) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while udp_socket(pid, addr)?.0 > 0 {
        if std::time::Instant::now() > deadline {
            anyhow::bail!("{addr} did not drain within 20 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    Ok(())
}
