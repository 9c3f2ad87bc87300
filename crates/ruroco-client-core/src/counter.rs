//! The anti-replay counter: `<conf dir>/counter`, 16 bytes, u128 big-endian.
//!
//! Each datagram gets `max(stored + 1, now in nanoseconds)`. An exclusive lock on
//! `counter.lock` is held from reading the counter until the datagrams are sent, so
//! concurrent clients never reuse a value and send in counter order (the server rejects
//! anything at or below its floor).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use ruroco_fs::LockFile;

/// How long a client waits for another one to release the lock.
pub const LOCK_WAIT: Duration = Duration::from_secs(30);
/// After this long waiting, say so once.
const LOCK_NOTICE: Duration = Duration::from_secs(2);

/// The clock in nanoseconds since 1970 (0 before it).
pub fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// The counter file's contents: exactly 16 bytes, a big-endian u128; anything else is
/// corrupt (`None`).
pub fn decode(bytes: &[u8]) -> Option<u128> {
    <[u8; 16]>::try_from(bytes).ok().map(u128::from_be_bytes)
}

/// The first of `count` values to use, given the stored value and the clock.
///
/// Why `max(stored + 1, now)`: a server seeds the floor of each key to its own start time,
/// so a counter that only ever counted up from an older seed would be a replay there. With
/// the clock as a lower bound the counter is never behind any server that started before
/// the datagram was made. The stored value still matters within one nanosecond-clock tick
/// and when the clock steps back, so values never repeat. And because a crash can only
/// lose a write whose value the clock has passed by the time the client runs again, the
/// file needs no fsync: a write that lands whole or not at all is enough (16 bytes over
/// the old 16, or atomic replacement when the file is new or damaged).
pub fn first_value(stored: Option<u128>, now: u128) -> Option<u128> {
    let next = match stored {
        Some(value) => value.checked_add(1)?.max(now),
        None => now,
    };
    // All `count` values must fit; the caller checks with `checked_add`.
    Some(next)
}

/// The counter file with its lock held.
#[derive(Debug)]
pub struct Counter {
    path: PathBuf,
    _lock: LockFile,
}

impl Counter {
    /// Creates the conf dir if needed and takes the lock, waiting up to [`LOCK_WAIT`].
    pub fn lock(dir: &Path) -> anyhow::Result<Self> {
        ruroco_fs::create_private_dir(dir)
            .with_context(|| format!("cannot create config directory {}", dir.display()))?;
        let lock_path = dir.join("counter.lock");
        let notice = || {
            eprintln!(
                "waiting for another ruroco-client to finish ({})",
                lock_path.display()
            )
        };
        let lock = LockFile::acquire_within(&lock_path, LOCK_WAIT, LOCK_NOTICE, notice)
            .with_context(|| format!("cannot lock {}", lock_path.display()))?;
        let Some(lock) = lock else {
            bail!(
                "gave up after {} s waiting for {} (another ruroco-client is sending, or hung); try again",
                LOCK_WAIT.as_secs(),
                lock_path.display()
            );
        };
        Ok(Self {
            path: dir.join("counter"),
            _lock: lock,
        })
    }

    /// The stored value. A missing file is `None`; so is a corrupt one, with one warning
    /// line: with the clock as a lower bound, starting again from "now" is safe.
    pub fn read(&self) -> anyhow::Result<Option<u128>> {
        match std::fs::read(&self.path) {
            Ok(bytes) => match decode(&bytes) {
                Some(value) => Ok(Some(value)),
                None => {
                    eprintln!(
                        "warning: counter file {} is corrupt ({} bytes, expected 16); starting again from the current time, which is safe",
                        self.path.display(),
                        bytes.len()
                    );
                    Ok(None)
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => {
                Err(e).with_context(|| format!("cannot read counter file {}", self.path.display()))
            }
        }
    }

    /// Reserves `count` consecutive values and returns the first; the last is stored.
    pub fn reserve(&self, count: usize) -> anyhow::Result<u128> {
        let exhausted = || {
            format!(
                "counter file {} is at the largest value; run `ruroco-client reseed`",
                self.path.display()
            )
        };
        let first = first_value(self.read()?, now_nanos()).with_context(exhausted)?;
        let span = u128::try_from(count.saturating_sub(1)).unwrap_or(u128::MAX);
        let last = first.checked_add(span).with_context(exhausted)?;
        self.write(last)?;
        Ok(first)
    }

    /// Stores `value`, whole or not at all (see [`first_value`] for why no fsync is
    /// needed): over the old value when the file holds one, else by atomic replacement.
    pub fn write(&self, value: u128) -> anyhow::Result<()> {
        let bytes = value.to_be_bytes();
        let context = || format!("cannot write counter file {}", self.path.display());
        if ruroco_fs::overwrite_in_place(&self.path, &bytes).with_context(context)? {
            return Ok(());
        }
        ruroco_fs::write_atomically(&self.path, &bytes).with_context(context)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_behind_the_clock_never_repeating() {
        assert_eq!(first_value(None, 1_000), Some(1_000));
        // A counter seeded long ago jumps to now: the trap of a server started later.
        assert_eq!(first_value(Some(10), 1_000), Some(1_000));
        // Within one clock tick, or with the clock stepped back, it counts up.
        assert_eq!(first_value(Some(1_000), 1_000), Some(1_001));
        assert_eq!(first_value(Some(5_000), 1_000), Some(5_001));
        assert_eq!(first_value(Some(u128::MAX), 1_000), None);
    }

    #[test]
    fn reserve_stores_the_last_value() {
        let dir = tempfile::tempdir().unwrap();
        let before = now_nanos();
        let counter = Counter::lock(dir.path()).unwrap();
        let first = counter.reserve(3).unwrap();
        assert!(first >= before);
        assert_eq!(counter.read().unwrap(), Some(first + 2));
        let next = counter.reserve(1).unwrap();
        assert!(next > first + 2);
        assert_eq!(counter.read().unwrap(), Some(next));
    }

    #[test]
    fn a_stored_counter_is_overwritten_in_place() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("counter");
        let counter = Counter::lock(dir.path()).unwrap();
        let first = counter.reserve(1).unwrap();
        let inode = std::fs::metadata(&path).unwrap().ino();
        let next = counter.reserve(1).unwrap();
        assert!(next > first);
        assert_eq!(std::fs::read(&path).unwrap(), next.to_be_bytes());
        assert_eq!(std::fs::metadata(&path).unwrap().ino(), inode);
        assert!(!dir.path().join(".counter.tmp").exists());
    }

    #[test]
    fn corrupt_counter_restarts_from_now() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("counter"), b"12345").unwrap();
        let counter = Counter::lock(dir.path()).unwrap();
        let before = now_nanos();
        let value = counter.reserve(1).unwrap();
        assert!(value >= before);
        assert_eq!(
            std::fs::read(dir.path().join("counter")).unwrap(),
            value.to_be_bytes()
        );
    }
}
