//! The commander's Unix socket: one per host, owned by the server's user, mode 0o204.

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
    _lock: LockFile,
}

impl CommanderSocket {
    /// Creates the directory, takes the lock (refusing if another commander holds it),
    /// replaces a stale socket file, binds, and sets mode and ownership.
    pub(crate) fn bind(path: &Path, user: &str, group: &str) -> anyhow::Result<Self> {
        // Resolve names first: an unknown user must stop us before anything changes.
        let uid = lookup_user(user)?;
        let gid = lookup_group(group)?;
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create socket directory {}", dir.display()))?;
        check_dir(dir)?;
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
        // The file now has SOCKET_MODE & ~mask = SOCKET_MODE exactly; say so if not. Looked
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
        listener
            .set_nonblocking(true)
            .with_context(|| format!("cannot make socket {} non-blocking", path.display()))?;
        Ok(Self {
            listener,
            path: path.to_owned(),
            _lock: lock,
        })
    }

    /// Stops accepting: closes the listener and removes the socket file.
    pub(crate) fn close(self) {
        drop(self.listener);
        if let Err(e) = std::fs::remove_file(&self.path) {
            tracing::warn!("cannot remove socket {}: {e}", self.path.display());
        }
    }
}

/// The socket directory must be a real directory (not a link) that only root or this
/// process's user owns and only its owner may write: anyone else who could write there
/// could swap the socket or its lock for a link to a file of their choice.
fn check_dir(dir: &Path) -> anyhow::Result<()> {
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
