//! Running shell lines: `sh -c` in its own process group, bounded in time and output,
//! supervised from the commander's single event loop.
//!
//! There is no thread per command and none per output stream: the loop polls the pipes
//! (non-blocking) with the listener, and wakes on SIGCHLD and at the nearest deadline. A
//! job is done when its shell has exited and both pipes are closed; at its deadline the
//! whole process group is killed. Output still held open by a process that left the group
//! (`setsid`) is given up on after [`OUTPUT_GRACE`].
//!
//! The shell is not reaped until its job is done: its exit is seen with `waitid(WNOWAIT)`,
//! which leaves it a zombie. So the process group ID the deadline kills stays ours for the
//! job's whole life; reaped early, the ID could be reused by another program's group
//! while a `setsid` descendant kept the job open, and the kill would hit that group.

use std::io::{ErrorKind, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStderr, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::signal::{killpg, Signal};
use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

/// The shell every line runs in.
pub(crate) const SHELL: &str = "/bin/sh";
/// Output kept per stream for the log; the rest is read and discarded.
pub(crate) const OUTPUT_LIMIT: usize = 4096;
/// How long to wait for output after the group was killed.
const OUTPUT_GRACE: Duration = Duration::from_secs(1);

/// A shell line to run.
#[derive(Debug)]
pub(crate) struct Spawn<T> {
    /// The caller's tag, handed back in [`Done`].
    pub(crate) tag: T,
    pub(crate) line: String,
    pub(crate) env: Vec<(&'static str, String)>,
    pub(crate) timeout: Duration,
}

/// What became of one run.
#[derive(Debug)]
pub(crate) enum Outcome {
    Exited(ExitStatus),
    TimedOut,
    SpawnFailed(std::io::Error),
}

impl Outcome {
    pub(crate) fn success(&self) -> bool {
        matches!(self, Outcome::Exited(s) if s.success())
    }

    /// The exit code, when the process exited by itself.
    pub(crate) fn code(&self) -> Option<i32> {
        match self {
            Outcome::Exited(s) => s.code(),
            _ => None,
        }
    }
}

/// A finished run.
#[derive(Debug)]
pub(crate) struct Done<T> {
    pub(crate) tag: T,
    pub(crate) outcome: Outcome,
    pub(crate) duration: Duration,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

/// One output stream: the pipe while open, and what was kept of it.
#[derive(Debug, Default)]
struct Capture<P> {
    pipe: Option<P>,
    kept: Vec<u8>,
    dropped: usize,
}

impl<P: Read + AsFd> Capture<P> {
    fn new(pipe: Option<P>) -> Self {
        let pipe = pipe.filter(|p| {
            // Non-blocking, so one slow command never stalls the loop.
            fcntl(p.as_fd().as_raw_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).is_ok()
        });
        Self {
            pipe,
            kept: Vec::new(),
            dropped: 0,
        }
    }

    /// The pipe's descriptor while it is open.
    fn fd(&self) -> Option<RawFd> {
        self.pipe.as_ref().map(|p| p.as_fd().as_raw_fd())
    }

    /// Reads what is there without blocking; closes the pipe at its end.
    fn drain(&mut self) {
        let Some(pipe) = self.pipe.as_mut() else {
            return;
        };
        let mut buf = [0u8; 4096];
        // Bounded per call: a command that writes without pause cannot hold the loop.
        for _ in 0..16 {
            match pipe.read(&mut buf) {
                Ok(0) => {
                    self.pipe = None;
                    return;
                }
                Ok(n) => {
                    let chunk = buf.get(..n).unwrap_or_default();
                    let room = OUTPUT_LIMIT.saturating_sub(self.kept.len());
                    let (keep, rest) = chunk.split_at(room.min(chunk.len()));
                    self.kept.extend_from_slice(keep);
                    self.dropped += rest.len();
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(_) => {
                    self.pipe = None;
                    return;
                }
            }
        }
    }

    fn text(&self) -> String {
        let mut text = String::from_utf8_lossy(&self.kept).trim_end().to_owned();
        if self.dropped > 0 {
            text.push_str(&format!(" [... {} more bytes]", self.dropped));
        }
        text
    }
}

#[derive(Debug)]
struct Running<T> {
    tag: T,
    child: Child,
    group: Pid,
    started: Instant,
    deadline: Instant,
    stdout: Capture<ChildStdout>,
    stderr: Capture<ChildStderr>,
    /// The shell has exited (seen without reaping it: it stays a zombie until done).
    exited: bool,
    /// Set when the group was killed: whether the shell itself had not exited by then,
    /// and when to stop waiting for its output.
    killed: Option<(bool, Instant)>,
}

impl<T> Running<T> {
    fn pipes_open(&self) -> bool {
        self.stdout.pipe.is_some() || self.stderr.pipe.is_some()
    }
}

/// The running jobs.
#[derive(Debug)]
pub(crate) struct Runner<T> {
    running: Vec<Running<T>>,
}

impl<T> Default for Runner<T> {
    fn default() -> Self {
        Self {
            running: Vec::new(),
        }
    }
}

impl<T> Runner<T> {
    /// Starts `job` now; if it cannot be started, hands it back as done.
    pub(crate) fn start(&mut self, job: Spawn<T>) -> Result<(), Done<T>> {
        let started = Instant::now();
        // An absolute path: no PATH search (eight failed execve calls here, and a root
        // daemon must not let PATH pick its shell).
        let spawned = Command::new(SHELL)
            .arg("-c")
            .arg(&job.line)
            .envs(job.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(e) => {
                return Err(Done {
                    tag: job.tag,
                    outcome: Outcome::SpawnFailed(e),
                    duration: started.elapsed(),
                    stdout: String::new(),
                    stderr: String::new(),
                })
            }
        };
        self.adopt(child, job.tag, job.timeout);
        Ok(())
    }

    /// Supervises a child started elsewhere (a warm shell just activated): its own process
    /// group, output piped; the timeout counts from now.
    pub(crate) fn adopt(&mut self, mut child: Child, tag: T, timeout: Duration) {
        let started = Instant::now();
        let group = Pid::from_raw(i32::try_from(child.id()).unwrap_or(0));
        self.running.push(Running {
            stdout: Capture::new(child.stdout.take()),
            stderr: Capture::new(child.stderr.take()),
            tag,
            child,
            group,
            started,
            deadline: started + timeout,
            exited: false,
            killed: None,
        });
    }

    /// Jobs running now.
    pub(crate) fn len(&self) -> usize {
        self.running.len()
    }

    /// Running jobs whose tag matches.
    pub(crate) fn count(&self, pred: impl Fn(&T) -> bool) -> usize {
        self.running.iter().filter(|r| pred(&r.tag)).count()
    }

    /// The open output pipes, to poll.
    pub(crate) fn fds(&self) -> Vec<BorrowedFd<'_>> {
        let mut fds = Vec::with_capacity(self.running.len() * 2);
        for r in &self.running {
            fds.extend(r.stdout.pipe.as_ref().map(AsFd::as_fd));
            fds.extend(r.stderr.pipe.as_ref().map(AsFd::as_fd));
        }
        fds
    }

    /// When the loop must look again even if nothing happens.
    pub(crate) fn next_wakeup(&self) -> Option<Instant> {
        self.running
            .iter()
            .map(|r| match r.killed {
                Some((_, give_up)) => give_up,
                None => r.deadline,
            })
            .min()
    }

    /// Reads the pipes in `ready` (all of them when `ready` is empty and `reap` is set),
    /// reaps exits when `reap` (a SIGCHLD came), enforces deadlines; returns the jobs
    /// that are done.
    pub(crate) fn service(&mut self, now: Instant, ready: &[RawFd], reap: bool) -> Vec<Done<T>> {
        let mut done = Vec::new();
        let mut i = 0;
        while let Some(r) = self.running.get_mut(i) {
            let wanted = |fd: Option<RawFd>| fd.is_some_and(|fd| ready.contains(&fd));
            if wanted(r.stdout.fd()) || (reap && ready.is_empty()) || r.killed.is_some() {
                r.stdout.drain();
            }
            if wanted(r.stderr.fd()) || (reap && ready.is_empty()) || r.killed.is_some() {
                r.stderr.drain();
            }
            if !r.exited && (reap || r.killed.is_some() || !r.pipes_open()) {
                r.exited = has_exited(r.group);
            }
            let finished = r.exited && !r.pipes_open();
            if !finished && r.killed.is_none() && now >= r.deadline {
                // Kills the shell and everything it started, including children that
                // still hold the output pipes. The group is ours: its leader is alive or
                // an unreaped zombie, so its ID cannot have been reused.
                if r.group.as_raw() > 1 {
                    let _ = killpg(r.group, Signal::SIGKILL);
                }
                r.killed = Some((!r.exited, now + OUTPUT_GRACE));
            }
            let given_up = matches!(r.killed, Some((_, give_up)) if now >= give_up);
            if finished || given_up {
                let r = self.running.swap_remove(i);
                done.push(finish(r, given_up));
            } else {
                i += 1;
            }
        }
        done
    }
}

/// Whether the shell whose pid is `group` has exited, leaving it unreaped.
fn has_exited(group: Pid) -> bool {
    if group.as_raw() <= 0 {
        return true;
    }
    let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
    match waitid(Id::Pid(group), flags) {
        Ok(WaitStatus::StillAlive) => false,
        Ok(_) => true,
        // ECHILD: not our child any more (cannot happen while unreaped); treat as gone.
        Err(nix::errno::Errno::EINTR) => false,
        Err(_) => true,
    }
}

fn finish<T>(mut r: Running<T>, given_up: bool) -> Done<T> {
    // Reaps the shell now that the job is done: it has exited, or was killed with SIGKILL
    // a second ago at the latest, so this returns at once.
    let status = r.child.wait().ok();
    if given_up && r.pipes_open() {
        tracing::warn!(
            "a process left its process group and still holds the output open; no longer reading it"
        );
    }
    let outcome = match (r.killed, status) {
        (Some((true, _)), _) | (_, None) => Outcome::TimedOut,
        (_, Some(status)) => Outcome::Exited(status),
    };
    Done {
        tag: r.tag,
        outcome,
        duration: r.started.elapsed(),
        stdout: r.stdout.text(),
        stderr: r.stderr.text(),
    }
}

#[cfg(test)]
mod tests;
