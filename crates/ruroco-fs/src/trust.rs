//! The one check for every file root reads or writes: who besides root could change it,
//! and how it is opened.
//!
//! Two questions, answered separately because they apply to different files:
//!
//! - [`exposed`]: may anyone but root (or the caller's own user, for a daemon run
//!   unprivileged) change what this path says? Every component counts — the file, then
//!   each directory up to `/` — because whoever may rename an entry of a directory may
//!   replace the file. A sticky root-owned directory such as `/tmp` is the exception for
//!   what lies in it. Root refuses to act on a file that is exposed (`config.toml`,
//!   `commands.toml`, `state_dir` and its files), and the error carries the fix.
//! - [`read_bounded`] / [`open_regular`]: open without following a link at the last
//!   component, without blocking on a FIFO (`O_NONBLOCK`), refuse anything but a regular
//!   file, and never read more than a bound. For the files root must read although
//!   another user owns them (the server's floors, the original's blocklist): what they
//!   say is data, but how root opens them must not be theirs to choose.
//!
//! The decisions ([`writable_by_others`], [`crate::access::may`]) are pure.

use std::fs::{File, Metadata, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::access::{self, Want, Who};

/// What the check needs of an entry: its owner, group and mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Mode bits (permissions, set-id and sticky).
    pub mode: u32,
}

/// Largest configuration or state file root reads (`config.toml`, `commands.toml`, a
/// state file of at most 10,000 undos of a few hundred bytes each): a file over it is
/// refused, never read into memory.
pub const MAX_TEXT_FILE: u64 = 8 << 20;

/// Whether someone besides root and `own` (the caller's user) could change an entry with
/// `stat`: another owner, or group or other write permission.
pub fn writable_by_others(stat: Stat, own: u32) -> bool {
    (stat.uid != 0 && stat.uid != own) || stat.mode & 0o022 != 0
}

/// The component of a path that someone other than root could change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exposed {
    /// The entry at fault: the file itself or a directory on its path.
    pub at: PathBuf,
    /// Whether `at` is the entry asked about (else a directory above it).
    pub is_file: bool,
    /// Whether `at` is a directory (the entry asked about may be one).
    pub is_dir: bool,
    /// Its owner and mode.
    pub stat: Stat,
    /// Who could change it, for the message: the server's user by name where it may.
    pub who: String,
}

impl Exposed {
    /// The shell line that makes root the only one who can change the entry, keeping
    /// `readers` able to read a file.
    pub fn fix(&self, readers: Readers<'_>) -> String {
        let at = self.at.display();
        match (self.is_file && !self.is_dir, readers) {
            (true, Readers::Group(group)) => {
                format!("chown root:{group} {at} && chmod 0640 {at}")
            }
            (true, Readers::RootOnly) => format!("chown root:root {at} && chmod 0600 {at}"),
            (true, Readers::AsNow) | (false, _) => {
                format!("chown root {at} && chmod go-w {at}")
            }
        }
    }

    /// "the file, X (mode 0664, owner uid 998), can be changed by …": the middle of
    /// every refusal.
    pub fn describe(&self) -> String {
        format!(
            "{}, {} (mode {:04o}, owner uid {}), can be changed by {}",
            match (self.is_file, self.is_dir) {
                (true, false) => "the file",
                (true, true) => "the directory",
                (false, _) => "a directory on its path",
            },
            self.at.display(),
            self.stat.mode,
            self.stat.uid,
            self.who
        )
    }
}

/// The entry's owner and mode, and whether it is a directory; `None` for a link (its own bits mean nothing: what counts
/// is the directory it lies in, and where it leads, both checked on their own) and for
/// what does not exist (yet: its directory decides who may create it).
fn stat(path: &Path) -> Option<(Stat, bool)> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    if meta.file_type().is_symlink() {
        return None;
    }
    let stat = Stat {
        uid: meta.uid(),
        gid: meta.gid(),
        mode: meta.mode() & 0o7777,
    };
    Some((stat, meta.is_dir()))
}

/// The first component of `file`'s path (the file, then each directory up to `/`), as
/// named and then where it leads, that someone other than root or the caller's user
/// could change; `None` when root alone decides what the file says. `server` is named in
/// the answer when it is the one who may write.
pub fn exposed(file: &Path, server: Option<&Who>) -> Option<Exposed> {
    let own = nix::unistd::geteuid().as_raw();
    let server = server.filter(|who| who.uid != own && who.uid != 0);
    // The path as named (a link in a directory others may write can be swapped), then
    // where it leads.
    let named = std::path::absolute(file).unwrap_or_else(|_| file.to_owned());
    let target = std::fs::canonicalize(file).unwrap_or_else(|_| named.clone());
    std::iter::once(&named)
        .chain((target != named).then_some(&target))
        .find_map(|path| first_exposed(path, own, server))
}

fn first_exposed(path: &Path, own: u32, server: Option<&Who>) -> Option<Exposed> {
    let mut entry: Option<&Path> = Some(path);
    while let Some(at) = entry {
        entry = at.parent();
        let Some((st, is_dir)) = stat(at) else {
            continue;
        };
        // A sticky directory's own o+w is what makes it sticky; what counts is whether
        // others can change the entry below it, which the entry's own check covers.
        let sticky_dir = at != path && st.mode & 0o1000 != 0 && st.uid == 0;
        if sticky_dir || !writable_by_others(st, own) {
            continue;
        }
        let who = match server {
            Some(who) if access::may(who, st.mode, st.uid, st.gid, Want::Write) => {
                format!("the server's user `{}`", who.name)
            }
            Some(who) if st.uid == who.uid => format!("the server's user `{}`", who.name),
            _ if st.uid != 0 && st.uid != own => format!("its owner (uid {})", st.uid),
            _ => "users other than root".to_owned(),
        };
        return Some(Exposed {
            at: at.to_owned(),
            is_file: at == path,
            is_dir,
            stat: st,
            who,
        });
    }
    None
}

/// Who must still read a file once it is root's, for [`Exposed::fix`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readers<'a> {
    /// Root alone (`commands.toml`, the state files).
    RootOnly,
    /// This group too (`config.toml`, which the server's user reads).
    Group(&'a str),
    /// Whoever reads it now: only write permission is taken away.
    AsNow,
}

/// Why a file could not be opened the way root opens another user's file.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The system said no (permissions, I/O).
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// A symbolic link where a file was expected: never followed.
    #[error("{path} is a symbolic link; it is not followed (replace it with the file itself)")]
    Link {
        /// The link.
        path: PathBuf,
    },
    /// A FIFO, socket, device or directory.
    #[error("{path} is not a regular file (a FIFO, socket, device or directory); move it aside")]
    NotRegular {
        /// The entry.
        path: PathBuf,
    },
    /// Larger than the caller's bound.
    #[error("{path} is larger than {max} bytes; it is not read")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The bound.
        max: u64,
    },
}

/// Opens `path` for reading: a link at its last component is refused, a FIFO does not
/// block the open and is refused, as is anything but a regular file or one larger than
/// `max` bytes. `Ok(None)` when there is nothing at `path`.
pub fn open_regular(path: &Path, max: u64) -> Result<Option<(File, Metadata)>, OpenError> {
    let io = |source| OpenError::Io {
        path: path.to_owned(),
        source,
    };
    let flags = nix::fcntl::OFlag::O_NOFOLLOW | nix::fcntl::OFlag::O_NONBLOCK;
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits())
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(nix::errno::Errno::ELOOP as i32) => {
            return Err(OpenError::Link {
                path: path.to_owned(),
            })
        }
        Err(e) => return Err(io(e)),
    };
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(OpenError::NotRegular {
            path: path.to_owned(),
        });
    }
    if meta.len() > max {
        return Err(OpenError::TooLarge {
            path: path.to_owned(),
            max,
        });
    }
    Ok(Some((file, meta)))
}

/// [`open_regular`], then the whole file, still never more than `max` bytes (a file that
/// grows while it is read is refused as too large).
pub fn read_bounded(path: &Path, max: u64) -> Result<Option<Vec<u8>>, OpenError> {
    let Some((file, meta)) = open_regular(path, max)? else {
        return Ok(None);
    };
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|source| OpenError::Io {
            path: path.to_owned(),
            source,
        })?;
    if bytes.len() as u64 > max {
        return Err(OpenError::TooLarge {
            path: path.to_owned(),
            max,
        });
    }
    Ok(Some(bytes))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const ROOT_FILE: Stat = Stat {
        uid: 0,
        gid: 0,
        mode: 0o600,
    };

    #[test]
    fn only_root_or_the_callers_user_may_write() {
        assert!(!writable_by_others(ROOT_FILE, 0));
        let with = |uid, mode| Stat {
            uid,
            mode,
            ..ROOT_FILE
        };
        assert!(!writable_by_others(with(0, 0o644), 0));
        assert!(writable_by_others(with(0, 0o664), 0));
        assert!(writable_by_others(with(0, 0o602), 0));
        // Owned by another user: that user may chmod it at will.
        assert!(writable_by_others(with(105, 0o600), 0));
        // A daemon run as uid 1000 owns its own files.
        assert!(!writable_by_others(with(1000, 0o600), 1000));
    }

    fn private_tree() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let file = dir.path().join("config.toml");
        std::fs::write(&file, "x = 1\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
        (dir, file)
    }

    #[test]
    fn a_private_file_passes_and_the_first_exposed_component_is_named() {
        let (dir, file) = private_tree();
        assert_eq!(exposed(&file, None), None);
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o770)).unwrap();
        let e = exposed(&file, None).unwrap();
        assert!(!e.is_file);
        assert_eq!(e.at, dir.path());
        assert_eq!(
            e.fix(Readers::RootOnly),
            format!("chown root {0} && chmod go-w {0}", dir.path().display())
        );
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o660)).unwrap();
        let e = exposed(&file, None).unwrap();
        assert!(e.is_file);
        assert_eq!(
            e.fix(Readers::Group("ruroco")),
            format!("chown root:ruroco {0} && chmod 0640 {0}", file.display())
        );
    }

    /// A missing file is judged by its directory: who may create it there.
    #[test]
    fn a_missing_file_is_judged_by_its_directory() {
        let (dir, _) = private_tree();
        let missing = dir.path().join("state").join("pending-undos.toml");
        assert_eq!(exposed(&missing, None), None);
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        assert_eq!(exposed(&missing, None).unwrap().at, dir.path());
    }

    /// A link to a private file, lying in a directory others may write, is exposed: the
    /// link can be swapped. The same link in a private directory is fine.
    #[test]
    fn a_link_counts_by_its_directory_and_its_target() {
        let (dir, file) = private_tree();
        let open = dir.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let link = open.join("config.toml");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert_eq!(exposed(&link, None).unwrap().at, open);
        let safe = dir.path().join("link.toml");
        std::os::unix::fs::symlink(&file, &safe).unwrap();
        assert_eq!(exposed(&safe, None), None);
        // A private link to a file in the open directory: the target's path is judged.
        let exposed_target = open.join("real.toml");
        std::fs::write(&exposed_target, "").unwrap();
        std::fs::set_permissions(&exposed_target, std::fs::Permissions::from_mode(0o600)).unwrap();
        let to_open = dir.path().join("to-open.toml");
        std::os::unix::fs::symlink(&exposed_target, &to_open).unwrap();
        assert_eq!(exposed(&to_open, None).unwrap().at, open);
    }

    #[test]
    fn a_file_of_another_user_names_its_owner() {
        let (_dir, file) = private_tree();
        nix::unistd::chown(&file, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
        let e = exposed(&file, None).unwrap();
        assert!(e.is_file);
        assert!(e.who.contains("uid 65534"), "{}", e.who);
        let server = Who {
            name: "nobody".into(),
            uid: 65534,
            gids: vec![65534],
        };
        let e = exposed(&file, Some(&server)).unwrap();
        assert_eq!(e.who, "the server's user `nobody`");
    }

    #[test]
    fn reads_refuse_links_fifos_and_files_over_the_bound() {
        let (dir, file) = private_tree();
        assert_eq!(read_bounded(&file, 64).unwrap().unwrap(), b"x = 1\n");
        assert!(read_bounded(&dir.path().join("none"), 64)
            .unwrap()
            .is_none());
        assert!(matches!(
            read_bounded(&file, 3),
            Err(OpenError::TooLarge { max: 3, .. })
        ));
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert!(matches!(
            read_bounded(&link, 64),
            Err(OpenError::Link { .. })
        ));
        // A FIFO nobody writes to: the open returns at once and is refused.
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let started = std::time::Instant::now();
        assert!(matches!(
            read_bounded(&fifo, 64),
            Err(OpenError::NotRegular { .. })
        ));
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        assert!(matches!(
            read_bounded(dir.path(), 64),
            Err(OpenError::NotRegular { .. })
        ));
    }
}
