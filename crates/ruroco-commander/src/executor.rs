//! Running commands: `sh -c` in its own process group, bounded in time, output and number.

use std::io::Read;
use std::net::IpAddr;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use crate::commands::CommandSpec;

/// Commands running at once.
pub(crate) const MAX_RUNNING: usize = 16;
/// Commands running or waiting for a slot; beyond this a message is refused.
pub(crate) const MAX_IN_FLIGHT: usize = 256;
/// Output kept per stream for the log; the rest is read and discarded.
pub(crate) const OUTPUT_LIMIT: usize = 4096;
/// How long to wait for output after the command ended or was killed.
const OUTPUT_GRACE: Duration = Duration::from_secs(1);
/// How often a running command is checked.
const POLL: Duration = Duration::from_millis(20);

#[derive(Debug, Default)]
struct Slots {
    running: usize,
    in_flight: usize,
}

/// Starts commands on worker threads, never blocking the caller.
#[derive(Debug, Clone, Default)]
pub(crate) struct Executor {
    slots: Arc<(Mutex<Slots>, Condvar)>,
}

impl Executor {
    /// Queues `spec` for `ip`; `false` if too many are already in flight.
    pub(crate) fn submit(&self, spec: CommandSpec, ip: IpAddr) -> bool {
        {
            let Ok(mut slots) = self.slots.0.lock() else {
                return false;
            };
            if slots.in_flight >= MAX_IN_FLIGHT {
                return false;
            }
            slots.in_flight += 1;
        }
        let slots = Arc::clone(&self.slots);
        let name = spec.name.clone();
        let spawned = thread::Builder::new()
            .name(format!("cmd-{}", spec.name))
            .spawn(move || {
                acquire(&slots);
                run(&spec, ip);
                release(&slots);
            });
        if let Err(e) = spawned {
            tracing::error!("cannot start a thread for command {name}: {e}");
            release_in_flight(&self.slots);
            return false;
        }
        true
    }

    /// Waits until every submitted command has finished (each is bounded by its timeout).
    pub(crate) fn wait_idle(&self) {
        let (lock, cvar) = &*self.slots;
        let Ok(mut slots) = lock.lock() else { return };
        while slots.in_flight > 0 {
            match cvar.wait_timeout(slots, Duration::from_secs(1)) {
                Ok((guard, _)) => slots = guard,
                Err(_) => return,
            }
        }
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.slots.0.lock().map(|s| s.in_flight).unwrap_or(0)
    }
}

fn acquire(slots: &(Mutex<Slots>, Condvar)) {
    let (lock, cvar) = slots;
    let Ok(mut s) = lock.lock() else { return };
    while s.running >= MAX_RUNNING {
        match cvar.wait_timeout(s, Duration::from_secs(1)) {
            Ok((guard, _)) => s = guard,
            Err(_) => return,
        }
    }
    s.running += 1;
}

fn release(slots: &(Mutex<Slots>, Condvar)) {
    if let Ok(mut s) = slots.0.lock() {
        s.running = s.running.saturating_sub(1);
        s.in_flight = s.in_flight.saturating_sub(1);
    }
    slots.1.notify_all();
}

fn release_in_flight(slots: &(Mutex<Slots>, Condvar)) {
    if let Ok(mut s) = slots.0.lock() {
        s.in_flight = s.in_flight.saturating_sub(1);
    }
    slots.1.notify_all();
}

/// What became of one run.
#[derive(Debug)]
pub(crate) enum Outcome {
    Exited(ExitStatus),
    TimedOut,
    SpawnFailed(std::io::Error),
}

/// Runs one command to completion or timeout and logs the result in one line.
pub(crate) fn run(spec: &CommandSpec, ip: IpAddr) {
    let started = Instant::now();
    tracing::info!("running command {} for {ip}", spec.name);
    let (outcome, stdout, stderr) = execute(spec, ip);
    let ms = started.elapsed().as_millis();
    let name = &spec.name;
    match outcome {
        Outcome::Exited(status) if status.success() => tracing::info!(
            "command {name} for {ip} succeeded ({status}) in {ms} ms; stdout={stdout:?} stderr={stderr:?}"
        ),
        Outcome::Exited(status) => tracing::warn!(
            "command {name} for {ip} failed ({status}) in {ms} ms; stdout={stdout:?} stderr={stderr:?}"
        ),
        Outcome::TimedOut => tracing::warn!(
            "command {name} for {ip} timed out after {ms} ms (limit {} s); process group killed; stdout={stdout:?} stderr={stderr:?}",
            spec.timeout.as_secs()
        ),
        Outcome::SpawnFailed(e) => tracing::error!("command {name} for {ip} could not be started: {e}"),
    }
}

/// Spawns `sh -c`, waits up to the timeout for it and for its output to close, and kills
/// the whole process group if the time runs out.
pub(crate) fn execute(spec: &CommandSpec, ip: IpAddr) -> (Outcome, String, String) {
    let deadline = Instant::now() + spec.timeout;
    let child = Command::new("sh")
        .arg("-c")
        .arg(&spec.cmd)
        .env("RUROCO_IP", ip.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn();
    let mut child: Child = match child {
        Ok(child) => child,
        Err(e) => return (Outcome::SpawnFailed(e), String::new(), String::new()),
    };
    let group = Pid::from_raw(i32::try_from(child.id()).unwrap_or(0));
    let (done_tx, done_rx) = mpsc::channel();
    let captured = [
        Arc::new(Mutex::new(Captured::default())),
        Arc::new(Mutex::new(Captured::default())),
    ];
    let [out_sink, err_sink] = captured.clone();
    let readers = [
        child
            .stdout
            .take()
            .map(|s| spawn_reader(s, out_sink, done_tx.clone())),
        child
            .stderr
            .take()
            .map(|s| spawn_reader(s, err_sink, done_tx.clone())),
    ];
    drop(done_tx);

    let mut status = None;
    let mut open_streams = readers.iter().flatten().count();
    let mut timed_out = false;
    while status.is_none() || open_streams > 0 {
        if status.is_none() {
            status = child.try_wait().ok().flatten();
        }
        if open_streams > 0 {
            if done_rx.recv_timeout(POLL).is_ok() {
                open_streams -= 1;
            }
        } else {
            thread::sleep(POLL);
        }
        if Instant::now() >= deadline && (status.is_none() || open_streams > 0) {
            timed_out = status.is_none();
            // Kills the shell and everything it started, including children that still
            // hold the output pipes.
            if group.as_raw() > 0 {
                let _ = killpg(group, Signal::SIGKILL);
            }
            break;
        }
    }
    if status.is_none() {
        status = child.wait().ok();
    }
    // Output still open now is held by a process that left the group (setsid): wait a
    // little, then leave its reader thread behind rather than hang this one.
    let grace = Instant::now() + OUTPUT_GRACE;
    while open_streams > 0 {
        if done_rx
            .recv_timeout(grace.saturating_duration_since(Instant::now()))
            .is_err()
        {
            tracing::warn!(
                "command {} left a process outside its process group holding its output open",
                spec.name
            );
            break;
        }
        open_streams -= 1;
    }
    drop(readers);
    let [stdout, stderr] = captured.map(|c| c.lock().map(|c| c.text()).unwrap_or_default());
    let outcome = match (timed_out, status) {
        (false, Some(status)) => Outcome::Exited(status),
        _ => Outcome::TimedOut,
    };
    (outcome, stdout, stderr)
}

/// What a reader has kept of one output stream so far.
#[derive(Debug, Default)]
struct Captured {
    kept: Vec<u8>,
    dropped: usize,
}

impl Captured {
    fn text(&self) -> String {
        let mut text = String::from_utf8_lossy(&self.kept).trim_end().to_owned();
        if self.dropped > 0 {
            text.push_str(&format!(" [... {} more bytes]", self.dropped));
        }
        text
    }
}

/// Reads `stream` to its end, keeping the first [`OUTPUT_LIMIT`] bytes in `sink`, and
/// signals `done` at the end. Partial output stays readable while it runs.
fn spawn_reader(
    mut stream: impl Read + Send + 'static,
    sink: Arc<Mutex<Captured>>,
    done: mpsc::Sender<()>,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let chunk = buf.get(..n).unwrap_or_default();
                    let Ok(mut captured) = sink.lock() else { break };
                    let room = OUTPUT_LIMIT.saturating_sub(captured.kept.len());
                    let (keep, rest) = chunk.split_at(room.min(chunk.len()));
                    captured.kept.extend_from_slice(keep);
                    captured.dropped += rest.len();
                }
            }
        }
        let _ = done.send(());
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(cmd: &str, secs: u64) -> CommandSpec {
        CommandSpec {
            name: "t".into(),
            cmd: cmd.into(),
            timeout: Duration::from_secs(secs),
        }
    }

    #[test]
    fn captures_output_and_status() {
        let (outcome, out, err) = execute(
            &spec("echo \"$RUROCO_IP\"; echo oops >&2; exit 3", 5),
            "192.0.2.1".parse().unwrap(),
        );
        assert!(matches!(outcome, Outcome::Exited(s) if s.code() == Some(3)));
        assert_eq!(out, "192.0.2.1");
        assert_eq!(err, "oops");
    }

    #[test]
    fn output_is_bounded() {
        let (_, out, _) = execute(
            &spec("head -c 100000 /dev/zero | tr '\\0' a", 5),
            "192.0.2.1".parse().unwrap(),
        );
        assert!(out.len() < OUTPUT_LIMIT + 64);
        assert!(
            out.ends_with(&format!("[... {} more bytes]", 100_000 - OUTPUT_LIMIT)),
            "{}",
            &out[out.len() - 40..]
        );
    }

    #[test]
    fn a_process_escaping_the_group_cannot_hang_the_executor() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("escaped.pid");
        let cmd = format!(
            "setsid sh -c 'echo $$ > {}; exec sleep 30' & sleep 0.2; echo started",
            pid_file.display()
        );
        let started = Instant::now();
        let (outcome, out, _) = execute(&spec(&cmd, 1), "192.0.2.1".parse().unwrap());
        let elapsed = started.elapsed();
        if let Ok(pid) = std::fs::read_to_string(&pid_file) {
            let pid = nix::unistd::Pid::from_raw(pid.trim().parse().unwrap());
            let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
        }
        assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
        assert!(
            matches!(outcome, Outcome::Exited(s) if s.success()),
            "{outcome:?}"
        );
        assert_eq!(out, "started", "partial output is kept");
    }

    #[test]
    fn timeout_kills_the_group() {
        let started = Instant::now();
        let (outcome, _, _) = execute(
            &spec("sleep 100 & sleep 100", 1),
            "192.0.2.1".parse().unwrap(),
        );
        assert!(matches!(outcome, Outcome::TimedOut));
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
