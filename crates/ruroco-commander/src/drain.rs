//! `ruroco-commander run-pending`: runs every pending undo now, for uninstalling. A remove
//! must not leave a firewall hole open with nothing left to close it, so the package's
//! remove step stops the daemons and runs this. Each undo runs as the commander would run
//! it (`/bin/sh -c`, `RUROCO_IP`, its own process group, its timeout) and is logged; the
//! ones that succeed leave the state file, the others stay in it and are printed with the
//! line to run by hand.

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use ruroco_config::Config;
use ruroco_fs::LockFile;

use crate::runner::SHELL;
use crate::undo::{PendingUndo, Schedule};
use crate::undo_store::UndoStore;

/// Runs every pending undo of the state directory now; `Ok(true)` when all succeeded.
pub(crate) fn run_pending(config: &Config) -> anyhow::Result<bool> {
    // No commander may be running: it would run (or reschedule) the same undos.
    let socket = config.socket_path();
    let lock_path = crate::socket::lock_path(&socket);
    let _lock = match LockFile::try_acquire(&lock_path) {
        Ok(Some(lock)) => Some(lock),
        Ok(None) => bail!(
            "a ruroco-commander is running for {} (lock {} is held); stop it first (under systemd: systemctl stop ruroco-commander.socket ruroco-commander)",
            socket.display(),
            lock_path.display()
        ),
        // No socket directory (never started): nothing can be running.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("cannot open {}", lock_path.display())),
    };
    let _state_lock = crate::leftovers::hold_state_dir(config.state_dir())?;
    let store = UndoStore::new(config.state_dir());
    let mut undos = store.read()?;
    undos.sort_by_key(|u| u.due_unix_ms);
    if undos.is_empty() {
        tracing::info!("no pending undos in {}", store.path().display());
        return Ok(true);
    }
    let mut left = Vec::new();
    for undo in undos {
        match run_one(&undo) {
            Ok(()) => tracing::info!(
                "undo of {} for {} run now (pending until {}): succeeded",
                undo.command,
                undo.ip,
                crate::clock::utc(undo.due_unix_ms)
            ),
            Err(why) => {
                tracing::error!(
                    "undo of {} for {} FAILED ({why}); run it by hand: RUROCO_IP={} {SHELL} -c {}",
                    undo.command,
                    undo.ip,
                    undo.ip,
                    shlex::try_quote(&undo.undo).unwrap_or_default()
                );
                left.push(undo);
            }
        }
    }
    let all = left.is_empty();
    store
        .save(&Schedule::from_pending(left))
        .with_context(|| format!("cannot write {}", store.path().display()))?;
    Ok(all)
}

/// Runs one undo line to its end or its timeout.
fn run_one(undo: &PendingUndo) -> Result<(), String> {
    let mut child = Command::new(SHELL)
        .arg("-c")
        .arg(&undo.undo)
        .env("RUROCO_IP", undo.ip.to_string())
        .stdin(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot start {SHELL}: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(undo.timeout_sec.max(1));
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => return Err(status.to_string()),
            Ok(None) if Instant::now() >= deadline => {
                let group = Pid::from_raw(i32::try_from(child.id()).unwrap_or(0));
                if group.as_raw() > 1 {
                    let _ = killpg(group, Signal::SIGKILL);
                }
                let _ = child.wait();
                return Err(format!("timed out after {} s", undo.timeout_sec.max(1)));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(e.to_string()),
        }
    }
}
