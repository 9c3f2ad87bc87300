//! Processes a previous commander left behind: after a `kill -9` (or a crash) its
//! commands keep running in their own process groups. Under systemd,
//! `KillMode=control-group` already ends them; this covers everything else.
//!
//! Every process the commander starts carries `RUROCO_COMMANDER=<socket path>` and
//! `RUROCO_COMMANDER_RUN=<token>` in its environment, which its children inherit. The
//! token is random, new at every start, and kept in the root-only state directory
//! (`commander.run`, mode 0600); another user can neither read it there nor in the
//! environment of our processes (`/proc/<pid>/environ` is private to their owner). At
//! start, once the socket's lock is ours (so the previous commander is gone), a process is
//! killed only if its real user is ours and its environment carries the *previous*
//! start's token, which only a commander that did not stop cleanly leaves (a clean stop
//! waits for its commands and removes the file, so what they started to outlive them,
//! such as a daemon restarted by a command, is left alone): a local user who copies the marker onto a program (even a setuid one)
//! cannot get it killed. The process is opened as a pidfd first and checked after, so the
//! signal reaches the process that was checked, never one that reused its pid.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rustix::process::{pidfd_open, pidfd_send_signal, Pid, PidfdFlags, Signal};

/// The variable naming the socket (for commands that want to know their commander).
pub(crate) const MARKER: &str = "RUROCO_COMMANDER";
/// The variable carrying this start's token.
pub(crate) const TOKEN_VAR: &str = "RUROCO_COMMANDER_RUN";
/// The token's file in the state directory.
pub(crate) const TOKEN_FILE: &str = "commander.run";

/// The lock a running commander holds on its state directory.
pub(crate) const LOCK_FILE: &str = "commander.lock";

/// Takes the state directory's lock (creating the directory, 0700, if missing) and writes
/// our pid into it. One commander per state directory: the token and the undos there are
/// that commander's, and holding the lock is what proves the previous holder gone, so
/// only then are its leftovers ours to end. A lock held by another process is an error
/// naming its pid.
pub(crate) fn hold_state_dir(state_dir: &Path) -> anyhow::Result<ruroco_fs::LockFile> {
    use anyhow::Context;
    let path = state_dir.join(LOCK_FILE);
    ruroco_fs::create_private_dir(state_dir)
        .with_context(|| format!("cannot create state_dir {}", state_dir.display()))?;
    let lock = ruroco_fs::LockFile::try_acquire(&path)
        .with_context(|| format!("cannot open lock file {}", path.display()))?;
    let Some(lock) = lock else {
        let holder = ruroco_fs::trust::read_bounded(&path, 64)
            .ok()
            .flatten()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|t| t.trim().parse::<u32>().ok())
            .map_or_else(|| "another process".to_owned(), |pid| format!("pid {pid}"));
        anyhow::bail!(
            "another ruroco-commander ({holder}) is already running with state_dir {} (lock {} is held); not starting: give each commander a state_dir of its own (config key state_dir)",
            state_dir.display(),
            path.display()
        );
    };
    lock.set_contents(format!("{}\n", std::process::id()).as_bytes())
        .with_context(|| format!("cannot write lock file {}", path.display()))?;
    Ok(lock)
}

/// The token file of `state_dir`.
pub(crate) fn token_path(state_dir: &Path) -> PathBuf {
    state_dir.join(TOKEN_FILE)
}

/// The previous start's token, if it left one that looks like ours.
pub(crate) fn previous_token(state_dir: &Path) -> Option<String> {
    let text = crate::trust::read(&token_path(state_dir), "", crate::trust::Role::StateFile)
        .ok()
        .flatten()?;
    let token = text.trim();
    (token.len() == 32 && token.bytes().all(|b| b.is_ascii_hexdigit())).then(|| token.to_owned())
}

/// A new token (128 bits from the kernel's random source), written durably to the state
/// directory before anything is started with it.
pub(crate) fn new_token(state_dir: &Path) -> std::io::Result<String> {
    let mut bytes = [0u8; 16];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut bytes)?;
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    ruroco_fs::create_private_dir(state_dir)?;
    ruroco_fs::write_durably(&token_path(state_dir), format!("{token}\n").as_bytes())?;
    Ok(token)
}

/// Removes the token file after a clean stop (none there is fine).
pub(crate) fn clear_token(state_dir: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(token_path(state_dir)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Whether the environment `environ` (NUL-separated) carries `token`.
pub(crate) fn carries(environ: &[u8], token: &str) -> bool {
    let wanted = format!("{TOKEN_VAR}={token}").into_bytes();
    environ
        .split(|b| *b == 0)
        .any(|var| var == wanted.as_slice())
}

/// The real user id of a `/proc/<pid>/status` text.
pub(crate) fn real_uid(status: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|uid| uid.parse().ok())
}

/// Kills every process of our real user carrying `token`, except this one; returns how
/// many.
pub(crate) fn kill_leftovers(token: &str, socket: &Path) -> usize {
    let own = std::process::id();
    let own_uid = std::fs::metadata("/proc/self").map(|m| m.uid()).ok();
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
        let Some(pid_t) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
            continue;
        };
        // Opened first, checked after: if the pid was reused in between, the checks see
        // the process the pidfd holds.
        let Ok(pidfd) = pidfd_open(pid_t, PidfdFlags::empty()) else {
            continue;
        };
        let dir = entry.path();
        let status = std::fs::read_to_string(dir.join("status")).unwrap_or_default();
        if own_uid.is_none() || real_uid(&status) != own_uid {
            continue;
        }
        let Ok(environ) = std::fs::read(dir.join("environ")) else {
            continue;
        };
        if !carries(&environ, token) {
            continue;
        }
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if pidfd_send_signal(&pidfd, Signal::KILL).is_ok() {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_token_matches() {
        let token = "0123456789abcdef0123456789abcdef";
        let env = format!("PATH=/bin\0{TOKEN_VAR}={token}\0HOME=/root\0");
        assert!(carries(env.as_bytes(), token));
        assert!(!carries(env.as_bytes(), "0123456789abcdef0123456789abcdee"));
        let prefix = format!("{TOKEN_VAR}={token}0\0");
        assert!(!carries(prefix.as_bytes(), token));
        assert!(!carries(b"", token));
    }

    #[test]
    fn real_uid_is_the_first_uid_field() {
        let status = "Name:\tsudo\nUid:\t1000\t0\t0\t0\nGid:\t1000\t1000\t1000\t1000\n";
        assert_eq!(real_uid(status), Some(1000));
        assert_eq!(real_uid("Name:\tx\n"), None);
    }

    #[test]
    fn tokens_are_new_each_time_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        assert_eq!(previous_token(&state), None);
        let a = new_token(&state).unwrap();
        assert_eq!(previous_token(&state).as_deref(), Some(a.as_str()));
        let b = new_token(&state).unwrap();
        assert_ne!(a, b);
        let mode = std::fs::metadata(token_path(&state)).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600);
        std::fs::write(token_path(&state), "not a token").unwrap();
        assert_eq!(previous_token(&state), None);
    }
}
