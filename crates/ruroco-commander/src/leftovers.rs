//! Processes a previous commander left behind: after a `kill -9` (or a crash) its
//! commands keep running in their own process groups. Every process the commander starts
//! carries `RUROCO_COMMANDER=<socket path>` in its environment, which its children
//! inherit; at start, once the socket's lock is ours (so no other commander for this
//! socket is alive), every process still carrying it is killed and logged. Under systemd,
//! `KillMode=control-group` already does this; this covers everything else.

use std::path::Path;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// The environment variable that marks our processes.
pub(crate) const MARKER: &str = "RUROCO_COMMANDER";

/// Kills every process whose environment has `RUROCO_COMMANDER=<socket>`, except this
/// one; returns how many.
pub(crate) fn kill_leftovers(socket: &Path) -> usize {
    let wanted = format!("{MARKER}={}", socket.display()).into_bytes();
    let own = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut killed = 0;
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == own {
            continue;
        }
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        if !environ
            .split(|b| *b == 0)
            .any(|var| var == wanted.as_slice())
        {
            continue;
        }
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        let Ok(raw) = i32::try_from(pid) else {
            continue;
        };
        if kill(Pid::from_raw(raw), Signal::SIGKILL).is_ok() {
            killed += 1;
            tracing::warn!(
                "killed pid {pid} ({}) left running by a previous commander for {}",
                comm.trim(),
                socket.display()
            );
        }
    }
    killed
}
