//! The two file-system mechanisms ruroco's correctness rests on.
//!
//! - [`write_durably`]: replace a small file so that after a crash it holds either the old
//!   or the new contents, and once the call returns the new contents survive power loss
//!   (write temp, fsync, rename, fsync the directory). The server's replay floors and the
//!   client's counter depend on it: a value must be on disk before the datagram that
//!   relies on it moves on.
//! - [`write_atomically`]: the same without the fsyncs: after a crash the file holds the
//!   old or the new contents, but which one is up to the kernel. For values that are safe
//!   to lose, such as the client's counter (see its comment).
//! - Both create the new file with mode 0600 from the start (never created wider and
//!   narrowed later); [`write_atomically_mode`] names another mode for files other
//!   programs read. [`create_private_dir`] makes a missing directory 0700.
//! - [`overwrite_in_place`]: for a value of a fixed size that is safe to lose, one write
//!   over the old one, where the file already has that size.
//! - [`LockFile`]: an exclusive `flock` on a side file, released when dropped or when the
//!   process dies, so a crashed holder never leaves a stale lock behind.
//!
//! - [`access`]: what another user may do with a file, from its mode bits and owners.
//! - [`trust`]: whether anyone but root could change a file root acts on, and how root
//!   opens another user's file (no link, no FIFO, bounded).
//!
//! No cryptography and no network: every program may use it.
#![forbid(unsafe_code)]

pub mod access;
pub mod trust;

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Replaces `path` with `bytes` atomically and durably.
///
/// The temporary file is `.<name>.tmp` next to `path`; on error `path` is untouched.
pub fn write_durably(path: &Path, bytes: &[u8]) -> io::Result<()> {
    replace(path, bytes, true, PRIVATE, None)
}

/// [`write_durably`] for a file another user owns, written by root into a directory that
/// user may change: the new file gets `mode` and the owner `uid:gid` through its own
/// descriptor before the rename puts it in place, so nothing is ever changed by path (a
/// link swapped in at `path` is replaced, never followed).
pub fn write_durably_owned(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    uid: u32,
    gid: u32,
) -> io::Result<()> {
    replace(path, bytes, true, mode, Some((uid, gid)))
}

/// Replaces `path` with `bytes` atomically (never half-written), without waiting for the
/// disk: after a crash either the old or the new contents may be there.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    replace(path, bytes, false, PRIVATE, None)
}

/// [`write_atomically`] with the new file given exactly `mode`, whatever the umask (a
/// file others must read, such as a metrics file, stays readable under `UMask=0077`).
pub fn write_atomically_mode(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    replace(path, bytes, false, mode, None)
}

/// Writes `bytes` over the start of `path` with one `pwrite` when `path` is already a
/// regular file of exactly that length: no new inode and no rename. `Ok(false)`, nothing
/// written, when it is missing, of another length, not a regular file (a symbolic link
/// is never followed), or `bytes` is longer than one disk sector (512 bytes).
///
/// For small values that are safe to lose, like [`write_atomically`]: a write within one
/// sector of a file whose size does not change lands whole or not at all, and readers
/// that hold the caller's lock never see it half done. It costs what a rename over an
/// existing file does not: ext4 starts writing the replacement's data out at the rename
/// (`auto_da_alloc`), measured at 0.15 to 0.3 ms, a third of a client's whole run.
pub fn overwrite_in_place(path: &Path, bytes: &[u8]) -> io::Result<bool> {
    use std::os::unix::fs::FileExt;
    if bytes.len() > 512 {
        return Ok(false);
    }
    let file = match OpenOptions::new()
        .write(true)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        // A symbolic link (ELOOP) is replaced, not followed.
        Err(e) if e.raw_os_error() == Some(nix::errno::Errno::ELOOP as i32) => return Ok(false),
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    if !meta.is_file() || meta.len() != bytes.len() as u64 {
        return Ok(false);
    }
    file.write_all_at(bytes, 0)?;
    Ok(true)
}

/// Creates `dir` and any missing parents with mode 0700; existing ones are left alone.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Mode of the files [`write_durably`] and [`write_atomically`] create.
const PRIVATE: u32 = 0o600;

fn replace(
    path: &Path,
    bytes: &[u8],
    durable: bool,
    mode: u32,
    owner: Option<(u32, u32)>,
) -> io::Result<()> {
    let dir = parent_dir(path);
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    // A temp file left by a crash keeps its old mode if reused: remove it, then create the
    // new one with its final mode.
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)?;
    // The owner first (a chown clears set-id bits), then the mode: the umask may have
    // taken bits away at creation, and the mode asked for is the mode meant.
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::fchown(&file, Some(uid), Some(gid))?;
    }
    file.set_permissions(std::fs::Permissions::from_mode(mode))?;
    file.write_all(bytes)?;
    if durable {
        file.sync_all()?;
    }
    drop(file);
    std::fs::rename(&tmp, path)?;
    if durable {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// An exclusive lock on a file, held until drop.
#[derive(Debug)]
pub struct LockFile {
    _file: File,
    path: PathBuf,
}

impl LockFile {
    /// Takes the lock if it is free; `Ok(None)` if another process holds it. A symbolic
    /// link at `path` is an error, never followed (a root daemon must not create or open
    /// a file where someone else's link points).
    pub fn try_acquire(path: &Path) -> io::Result<Option<LockFile>> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
            .open(path)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(LockFile {
                _file: file,
                path: path.to_owned(),
            })),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(e)) => Err(e),
        }
    }

    /// Waits up to `timeout` for the lock, polling; `on_wait` is called once if the lock is
    /// still busy after `notice_after`. `Ok(None)` when the time ran out.
    pub fn acquire_within(
        path: &Path,
        timeout: Duration,
        notice_after: Duration,
        on_wait: impl FnOnce(),
    ) -> io::Result<Option<LockFile>> {
        const POLL: Duration = Duration::from_millis(5);
        let started = Instant::now();
        let mut on_wait = Some(on_wait);
        loop {
            if let Some(lock) = Self::try_acquire(path)? {
                return Ok(Some(lock));
            }
            let waited = started.elapsed();
            if waited >= timeout {
                return Ok(None);
            }
            if waited >= notice_after {
                if let Some(notify) = on_wait.take() {
                    notify();
                }
            }
            std::thread::sleep(POLL);
        }
    }

    /// Replaces what the lock file says (the holder's pid, say) while holding it.
    pub fn set_contents(&self, bytes: &[u8]) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        self._file.set_len(0)?;
        self._file.write_all_at(bytes, 0)
    }

    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_durably_replaces_whole_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("value");
        write_durably(&path, b"first").unwrap();
        write_durably(&path, b"2").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"2");
        assert!(!dir.path().join(".value.tmp").exists());
    }

    #[test]
    fn write_atomically_replaces_whole_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("value");
        write_atomically(&path, b"first").unwrap();
        write_atomically(&path, b"2").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"2");
        assert!(!dir.path().join(".value.tmp").exists());
        std::fs::create_dir(dir.path().join(".value.tmp")).unwrap();
        assert!(write_atomically(&path, b"3").is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"2");
    }

    #[test]
    fn overwrite_in_place_only_over_a_file_of_the_same_size() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("value");
        // Missing: nothing written, nothing created.
        assert!(!overwrite_in_place(&path, b"abcd").unwrap());
        assert!(!path.exists());
        std::fs::write(&path, b"abcd").unwrap();
        let inode = std::fs::metadata(&path).unwrap().ino();
        assert!(overwrite_in_place(&path, b"wxyz").unwrap());
        assert_eq!(std::fs::read(&path).unwrap(), b"wxyz");
        assert_eq!(std::fs::metadata(&path).unwrap().ino(), inode);
        // Another length: left for a replacement.
        assert!(!overwrite_in_place(&path, b"12345").unwrap());
        assert!(!overwrite_in_place(&path, b"123").unwrap());
        assert_eq!(std::fs::read(&path).unwrap(), b"wxyz");
        // More than a sector: never in place.
        std::fs::write(&path, [0u8; 600]).unwrap();
        assert!(!overwrite_in_place(&path, &[1u8; 600]).unwrap());
        // A symbolic link is not followed, its target untouched.
        let target = dir.path().join("target");
        std::fs::write(&target, b"abcd").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(!overwrite_in_place(&link, b"wxyz").unwrap());
        assert_eq!(std::fs::read(&target).unwrap(), b"abcd");
        // A directory cannot be opened for writing: an error, nothing done.
        assert!(overwrite_in_place(dir.path(), b"abcd").is_err());
    }

    #[test]
    fn new_files_are_created_with_their_final_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        // A stale, world-readable temp file from a crash is not reused with its old mode.
        let stale = dir.path().join(".floors.tmp");
        std::fs::write(&stale, b"stale").unwrap();
        std::fs::set_permissions(&stale, std::fs::Permissions::from_mode(0o666)).unwrap();
        let floors = dir.path().join("floors");
        write_durably(&floors, b"1").unwrap();
        assert_eq!(mode(&floors), 0o600);
        let counter = dir.path().join("counter");
        write_atomically(&counter, b"1").unwrap();
        assert_eq!(mode(&counter), 0o600);
        let prom = dir.path().join("x.prom");
        write_atomically_mode(&prom, b"1", 0o644).unwrap();
        assert_eq!(mode(&prom), 0o644);
        let nested = dir.path().join("a/b");
        create_private_dir(&nested).unwrap();
        assert_eq!(mode(&nested), 0o700);
        assert_eq!(mode(&dir.path().join("a")), 0o700);
        create_private_dir(&nested).unwrap();
    }

    #[test]
    fn failed_write_leaves_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("value");
        write_durably(&path, b"old").unwrap();
        // A directory where the temp file must go makes the write fail, even for root.
        std::fs::create_dir(dir.path().join(".value.tmp")).unwrap();
        assert!(write_durably(&path, b"new").is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
    }

    #[test]
    fn lock_is_exclusive_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        let held = LockFile::try_acquire(&path).unwrap().unwrap();
        assert!(LockFile::try_acquire(&path).unwrap().is_none());
        let mut told = false;
        let waited =
            LockFile::acquire_within(&path, Duration::from_millis(50), Duration::ZERO, || {
                told = true
            })
            .unwrap();
        assert!(waited.is_none());
        assert!(told);
        drop(held);
        assert!(LockFile::try_acquire(&path).unwrap().is_some());
    }
}
