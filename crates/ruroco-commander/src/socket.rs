//! The commander's Unix socket: one per host, owned by the server's user, mode 0o204.
//!
//! Bound here, or adopted from systemd (`ruroco-commander.socket`, `LISTEN_PID` = this
//! process, `LISTEN_FDS` = 1): then the socket outlives the commander, and whatever the
//! server hands over while the commander restarts waits in its backlog. Taking the
//! descriptor is left to the `listenfd` crate, which checks that it is a Unix stream
//! socket; this module checks that it is the configured path, and gives it the same mode
//! and owner as a socket bound here.

use std::fs::Permissions;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use nix::sys::stat::{umask, Mode};
use nix::unistd::{Group, User};
use ruroco_fs::LockFile;

/// Owner may write (connect); nobody else may. Nothing ever reads the socket file.
pub(crate) const SOCKET_MODE: u32 = 0o204;

/// The bound socket plus the lock proving this process owns it.
#[derive(Debug)]
pub(crate) struct CommanderSocket {
    pub(crate) listener: UnixListener,
    pub(crate) path: PathBuf,
    /// Passed by systemd: its socket file is systemd's to remove, not ours.
    pub(crate) adopted: bool,
    _lock: LockFile,
}

/// What the environment says about a socket passed by the service manager.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Passed {
    /// Nothing passed to this process: bind.
    Nothing,
    /// One socket passed: adopt fd 3.
    One,
}

/// Reads `LISTEN_PID`/`LISTEN_FDS` as the systemd protocol says: they are for this
/// process only if `LISTEN_PID` is its pid (variables inherited from a parent that was
/// activated are not an invitation).
pub(crate) fn passed(
    listen_pid: Option<&str>,
    listen_fds: Option<&str>,
    own_pid: u32,
) -> anyhow::Result<Passed> {
    let Some(pid) = listen_pid else {
        return Ok(Passed::Nothing);
    };
    if pid.trim().parse::<u32>().ok() != Some(own_pid) {
        return Ok(Passed::Nothing);
    }
    match listen_fds.map(str::trim) {
        Some("1") => Ok(Passed::One),
        other => bail!(
            "socket activation: LISTEN_FDS is {}, expected 1 (ruroco-commander.socket passes one socket)",
            other.unwrap_or("unset")
        ),
    }
}

impl CommanderSocket {
    /// Adopts the socket systemd passed, or binds one (see [`CommanderSocket::bind`]).
    pub(crate) fn open(path: &Path, user: &str, group: &str) -> anyhow::Result<Self> {
        let listen_pid = std::env::var("LISTEN_PID").ok();
        let listen_fds = std::env::var("LISTEN_FDS").ok();
        let how = passed(
            listen_pid.as_deref(),
            listen_fds.as_deref(),
            std::process::id(),
        );
        // The commands this process starts must not take the variables as theirs (adopting
        // clears LISTEN_PID and LISTEN_FDS).
        std::env::remove_var("LISTEN_FDNAMES");
        match how? {
            Passed::Nothing => {
                std::env::remove_var("LISTEN_PID");
                std::env::remove_var("LISTEN_FDS");
                Self::bind(path, user, group)
            }
            Passed::One => Self::adopt(path, user, group),
        }
    }

    /// Takes fd 3 (checked to be a listening Unix stream socket bound to `path`), takes
    /// the lock, and sets the mode and owner a bound socket would have.
    fn adopt(path: &Path, user: &str, group: &str) -> anyhow::Result<Self> {
        let uid = lookup_user(user)?;
        let gid = lookup_group(group)?;
        // Clears LISTEN_PID and LISTEN_FDS.
        let mut fds = listenfd::ListenFd::from_env();
        let listener = fds
            .take_unix_listener(0)
            .context("socket activation: fd 3 is not a listening Unix stream socket")?
            .context("socket activation: no socket was passed")?;
        let local = listener
            .local_addr()
            .context("socket activation: cannot read the address of fd 3")?;
        let Some(passed_path) = local.as_pathname() else {
            bail!("socket activation: fd 3 is not bound to a path (an abstract or unnamed socket); ListenStream= must be the path of socket_dir/ruroco.socket");
        };
        if passed_path != path {
            bail!(
                "socket activation: the socket passed is {}, but config.toml puts it at {} (config key socket_dir); make ListenStream= of ruroco-commander.socket say the same",
                passed_path.display(),
                path.display()
            );
        }
        let dir = path.parent().unwrap_or(Path::new("."));
        check_dir(dir)?;
        let lock = take_lock(path)?;
        Self::finish(listener, path, (uid, gid, user, group), lock, true)
    }

    /// Creates the directory, takes the lock (refusing if another commander holds it),
    /// replaces a stale socket file, binds, and sets mode and ownership.
    fn bind(path: &Path, user: &str, group: &str) -> anyhow::Result<Self> {
        // Resolve names first: an unknown user must stop us before anything changes.
        let uid = lookup_user(user)?;
        let gid = lookup_group(group)?;
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create socket directory {}", dir.display()))?;
        check_dir(dir)?;
        let lock = take_lock(path)?;
        match std::fs::remove_file(path) {
            Ok(()) => tracing::info!("removed stale socket {}", path.display()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("cannot remove stale socket {}", path.display()))
            }
        }
        // The socket file is created with its final mode: the umask masks everything the
        // mode does not grant while `bind` creates it, and is restored at once. There is
        // never a moment in which it is wider than SOCKET_MODE.
        let mask = Mode::from_bits_truncate(0o777 & !SOCKET_MODE);
        let previous = umask(mask);
        let bound = UnixListener::bind(path);
        umask(previous);
        let listener = bound.with_context(|| format!("cannot bind socket {}", path.display()))?;
        Self::finish(listener, path, (uid, gid, user, group), lock, false)
    }

    /// What binding and adopting end with: the configured mode and owner, non-blocking.
    fn finish(
        listener: UnixListener,
        path: &Path,
        (uid, gid, user, group): (Option<u32>, Option<u32>, &str, &str),
        lock: LockFile,
        adopted: bool,
    ) -> anyhow::Result<Self> {
        set_mode_and_owner(path, uid, gid, user, group)?;
        listener
            .set_nonblocking(true)
            .with_context(|| format!("cannot make socket {} non-blocking", path.display()))?;
        Ok(Self {
            listener,
            path: path.to_owned(),
            adopted,
            _lock: lock,
        })
    }

    /// Stops accepting: closes the listener and removes the socket file (unless systemd
    /// passed it: then it stays, and what arrives until the next start waits in it).
    pub(crate) fn close(self) {
        drop(self.listener);
        if self.adopted {
            return;
        }
        if let Err(e) = std::fs::remove_file(&self.path) {
            tracing::warn!("cannot remove socket {}: {e}", self.path.display());
        }
    }
}

/// Takes the lock next to the socket: one commander per socket.
fn take_lock(path: &Path) -> anyhow::Result<LockFile> {
    let lock_path = lock_path(path);
    let lock = LockFile::try_acquire(&lock_path)
        .with_context(|| format!("cannot open lock file {}", lock_path.display()))?;
    let Some(lock) = lock else {
        bail!(
            "another ruroco-commander is already running for socket {} (lock {} is held); not starting",
            path.display(),
            lock_path.display()
        );
    };
    Ok(lock)
}

/// Gives the socket file at `path` mode [`SOCKET_MODE`] and the configured owner.
fn set_mode_and_owner(
    path: &Path,
    uid: Option<u32>,
    gid: Option<u32>,
    user: &str,
    group: &str,
) -> anyhow::Result<()> {
    {
        // A bound socket has SOCKET_MODE & ~mask = SOCKET_MODE exactly; say so if not. Looked
        // at without following links (in a directory only we may write, nothing else can
        // have replaced it, but a root daemon does not rely on that alone).
        let meta = std::fs::symlink_metadata(path)
            .with_context(|| format!("cannot inspect socket {}", path.display()))?;
        if !meta.file_type().is_socket() {
            bail!(
                "{} is not the socket just bound; not starting",
                path.display()
            );
        }
        if meta.permissions().mode() & 0o777 != SOCKET_MODE {
            std::fs::set_permissions(path, Permissions::from_mode(SOCKET_MODE)).with_context(
                || format!("cannot set mode {SOCKET_MODE:o} on {}", path.display()),
            )?;
        }
        if uid.is_some() || gid.is_some() {
            std::os::unix::fs::lchown(path, uid, gid).with_context(|| {
                format!(
                    "cannot change owner of {} to {user}:{group}",
                    path.display()
                )
            })?;
        }
    }
    Ok(())
}

/// The socket directory must be a real directory (not a link) that only root or this
/// process's user owns and only its owner may write: anyone else who could write there
/// could swap the socket or its lock for a link to a file of their choice.
pub(crate) fn check_dir(dir: &Path) -> anyhow::Result<()> {
    let meta = std::fs::symlink_metadata(dir)
        .with_context(|| format!("cannot inspect socket directory {}", dir.display()))?;
    let own = nix::unistd::geteuid().as_raw();
    if !meta.file_type().is_dir() {
        bail!(
            "socket directory {} is not a directory (a symbolic link?); not starting",
            dir.display()
        );
    }
    if meta.uid() != 0 && meta.uid() != own {
        bail!(
            "socket directory {} is owned by uid {}, not by root; not starting (config key socket_dir)",
            dir.display(),
            meta.uid()
        );
    }
    if meta.permissions().mode() & 0o022 != 0 {
        bail!(
            "socket directory {} has mode {:04o}: others may write to it; chmod go-w it or pick another socket_dir",
            dir.display(),
            meta.permissions().mode() & 0o7777
        );
    }
    Ok(())
}

pub(crate) fn lock_path(socket: &Path) -> PathBuf {
    let mut name = socket.file_name().unwrap_or_default().to_owned();
    name.push(".lock");
    socket.with_file_name(name)
}

/// Resolves `socket_user` or `socket_group` (`key`) as a start would.
pub(crate) fn lookup(key: &str, name: &str) -> anyhow::Result<Option<u32>> {
    if key == "socket_user" {
        lookup_user(name)
    } else {
        lookup_group(name)
    }
}

fn lookup_user(name: &str) -> anyhow::Result<Option<u32>> {
    if name.is_empty() {
        return Ok(None);
    }
    match User::from_name(name) {
        Ok(Some(user)) => Ok(Some(user.uid.as_raw())),
        Ok(None) => bail!("socket_user `{name}` does not exist (config key socket_user; empty leaves the owner unchanged)"),
        Err(e) => bail!("cannot look up socket_user `{name}`: {e}"),
    }
}

fn lookup_group(name: &str) -> anyhow::Result<Option<u32>> {
    if name.is_empty() {
        return Ok(None);
    }
    match Group::from_name(name) {
        Ok(Some(group)) => Ok(Some(group.gid.as_raw())),
        Ok(None) => bail!("socket_group `{name}` does not exist (config key socket_group; empty leaves the group unchanged)"),
        Err(e) => bail!("cannot look up socket_group `{name}`: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_variables_for_this_process_count() {
        assert_eq!(passed(None, None, 7).unwrap(), Passed::Nothing);
        assert_eq!(passed(None, Some("1"), 7).unwrap(), Passed::Nothing);
        // Inherited from an activated parent: not ours.
        assert_eq!(passed(Some("6"), Some("1"), 7).unwrap(), Passed::Nothing);
        assert_eq!(passed(Some("x"), Some("1"), 7).unwrap(), Passed::Nothing);
        assert_eq!(passed(Some("7"), Some("1"), 7).unwrap(), Passed::One);
        let err = passed(Some("7"), Some("2"), 7).unwrap_err();
        assert_eq!(
            err.to_string(),
            "socket activation: LISTEN_FDS is 2, expected 1 (ruroco-commander.socket passes one socket)"
        );
        let err = passed(Some("7"), None, 7).unwrap_err();
        assert!(err.to_string().contains("LISTEN_FDS is unset"), "{err}");
    }
}
