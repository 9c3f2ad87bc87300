//! Warm shells: for a command that has run before (and, from the start and after each
//! reload, for the first [`MAX_WARM`] commands by name), a `/bin/sh` is started ahead of time
//! and waits, blocked reading one line (the client's address) on its stdin. Starting the
//! command is then one `write`: the fork and exec of the shell (about half a millisecond
//! here) are off the path from message to command.
//!
//! The shell runs `IFS= read -r RUROCO_IP || exit 0; export RUROCO_IP; exec </dev/null;`
//! followed by the command line, in its own process group with its output piped, so the
//! command sees exactly what a fresh `sh -c` would: `RUROCO_IP` in its environment, stdin
//! from `/dev/null`. At most [`MAX_WARM`] commands (the most recently used) keep a shell; a
//! reload retires them all, and a warm shell whose pipe breaks is replaced by a cold start.

use std::collections::VecDeque;
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, Stdio};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use crate::runner::SHELL;

/// Commands that keep a warm shell.
pub(crate) const MAX_WARM: usize = 8;

/// One waiting shell.
#[derive(Debug)]
pub(crate) struct WarmShell {
    line: String,
    child: Child,
    stdin: Option<ChildStdin>,
}

impl WarmShell {
    fn spawn(line: &str) -> std::io::Result<Self> {
        let script =
            format!("IFS= read -r RUROCO_IP || exit 0; export RUROCO_IP; exec </dev/null; {line}");
        let mut child = Command::new(SHELL)
            .arg("-c")
            .arg(script)
            .env_remove("RUROCO_IP")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()?;
        let stdin = child.stdin.take();
        Ok(Self {
            line: line.to_owned(),
            child,
            stdin,
        })
    }

    /// Lets the command run for `ip`; the running child (its output still piped), or the
    /// error if the shell is gone (then it has been reaped).
    pub(crate) fn activate(mut self, ip: IpAddr) -> std::io::Result<Child> {
        let written = match self.stdin.take() {
            Some(mut stdin) => stdin.write_all(format!("{ip}\n").as_bytes()),
            None => Err(std::io::ErrorKind::BrokenPipe.into()),
        };
        match written {
            Ok(()) => Ok(self.child),
            Err(e) => {
                self.retire();
                Err(e)
            }
        }
    }

    /// Ends the shell (and anything it might have started) and reaps it.
    fn retire(mut self) {
        drop(self.stdin.take());
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

/// The warm shells, most recently used last.
#[derive(Debug, Default)]
pub(crate) struct WarmPool {
    shells: VecDeque<(String, WarmShell)>,
}

impl WarmPool {
    /// The warm shell of command `name`, if there is one for exactly this `line`.
    pub(crate) fn take(&mut self, name: &str, line: &str) -> Option<WarmShell> {
        let i = self.shells.iter().position(|(n, _)| n == name)?;
        let (_, shell) = self.shells.remove(i)?;
        if shell.line == line {
            Some(shell)
        } else {
            shell.retire();
            None
        }
    }

    /// Makes sure `name` has a warm shell for `line`; the least recently used one goes
    /// when there are too many. A shell that cannot be started is simply not there.
    pub(crate) fn refill(&mut self, name: &str, line: &str) {
        if self.shells.iter().any(|(n, s)| n == name && s.line == line) {
            return;
        }
        if let Some(shell) = self.take(name, line) {
            self.shells.push_back((name.to_owned(), shell));
            return;
        }
        match WarmShell::spawn(line) {
            Ok(shell) => self.shells.push_back((name.to_owned(), shell)),
            Err(e) => tracing::debug!("no warm shell for {name}: {e}"),
        }
        while self.shells.len() > MAX_WARM {
            if let Some((_, old)) = self.shells.pop_front() {
                old.retire();
            }
        }
    }

    /// Retires every shell (reload, shutdown).
    pub(crate) fn clear(&mut self) {
        for (_, shell) in self.shells.drain(..) {
            shell.retire();
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.shells.len()
    }
}

impl Drop for WarmPool {
    fn drop(&mut self) {
        self.clear();
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn output(mut child: Child) -> (String, String, i32) {
        let mut out = String::new();
        let mut err = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        let code = child.wait().unwrap().code().unwrap();
        (out, err, code)
    }

    #[test]
    fn a_warm_shell_runs_the_line_as_sh_c_would() {
        let mut pool = WarmPool::default();
        let line = "echo \"ip=$RUROCO_IP env=$(printenv RUROCO_IP)\"; cat; echo done >&2; exit 7";
        pool.refill("x", line);
        let child = pool
            .take("x", line)
            .unwrap()
            .activate("2001:db8::1".parse().unwrap())
            .unwrap();
        let (out, err, code) = output(child);
        // stdin is /dev/null (cat ends at once), the address is in the environment.
        assert_eq!(out, "ip=2001:db8::1 env=2001:db8::1\n");
        assert_eq!((err.as_str(), code), ("done\n", 7));
        assert!(
            pool.take("x", line).is_none(),
            "used shells are not handed out twice"
        );
    }

    #[test]
    fn a_changed_line_or_a_dead_shell_is_not_used() {
        let mut pool = WarmPool::default();
        pool.refill("x", "echo old");
        assert!(pool.take("x", "echo new").is_none());
        pool.refill("x", "exit 3 # never waits");
        let shell = pool.take("x", "exit 3 # never waits").unwrap();
        // The shell must wait for the address: it has not run its line yet.
        let child = shell.activate("192.0.2.1".parse().unwrap()).unwrap();
        assert_eq!(output(child).2, 3);
    }

    #[test]
    fn the_pool_is_bounded_and_clears() {
        let mut pool = WarmPool::default();
        for i in 0..MAX_WARM + 3 {
            pool.refill(&format!("c{i}"), "true");
        }
        assert_eq!(pool.len(), MAX_WARM);
        assert!(
            pool.take("c0", "true").is_none(),
            "least recently used went first"
        );
        pool.clear();
        assert_eq!(pool.len(), 0);
    }
}
