//! The anti-replay counter: `<conf dir>/counter`, 16 bytes, u128 big-endian.
//!
//! Seeded to "now" in nanoseconds on first use, then +1 per datagram, persisted durably
//! before the datagram leaves. An exclusive lock on `counter.lock` is held from reading
//! the counter until the datagram is sent, so concurrent clients never reuse a value and
//! send in counter order (the server rejects anything at or below its floor).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use ruroco_fs::LockFile;

/// How long a client waits for another one to release the lock.
pub(crate) const LOCK_WAIT: Duration = Duration::from_secs(30);
/// After this long waiting, say so once.
const LOCK_NOTICE: Duration = Duration::from_secs(2);

pub(crate) fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// The counter file with its lock held.
#[derive(Debug)]
pub(crate) struct Counter {
    path: PathBuf,
    _lock: LockFile,
}

impl Counter {
    /// Creates the conf dir if needed and takes the lock, waiting up to [`LOCK_WAIT`].
    pub(crate) fn lock(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)
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

    /// The stored value; `None` if there is no counter yet. A file of any other size
    /// is an error, never silently reset.
    pub(crate) fn read(&self) -> anyhow::Result<Option<u128>> {
        match std::fs::read(&self.path) {
            Ok(bytes) => match <[u8; 16]>::try_from(bytes.as_slice()) {
                Ok(raw) => Ok(Some(u128::from_be_bytes(raw))),
                Err(_) => bail!(
                    "counter file {} is corrupt ({} bytes, expected 16); run `ruroco-client reseed` to reset it",
                    self.path.display(),
                    bytes.len()
                ),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read counter file {}", self.path.display())),
        }
    }

    /// The next value (stored + 1, or now if there is none), persisted before returning.
    pub(crate) fn next(&self) -> anyhow::Result<u128> {
        let next = match self.read()? {
            Some(value) => value.checked_add(1).with_context(|| {
                format!(
                    "counter file {} is exhausted; run `ruroco-client reseed`",
                    self.path.display()
                )
            })?,
            None => now_nanos(),
        };
        self.write(next)?;
        Ok(next)
    }

    /// Stores `value` atomically and durably.
    pub(crate) fn write(&self, value: u128) -> anyhow::Result<()> {
        ruroco_fs::write_durably(&self.path, &value.to_be_bytes())
            .with_context(|| format!("cannot write counter file {}", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_then_increments() {
        let dir = tempfile::tempdir().unwrap();
        let before = now_nanos();
        let counter = Counter::lock(dir.path()).unwrap();
        let first = counter.next().unwrap();
        assert!(first >= before);
        assert_eq!(counter.next().unwrap(), first + 1);
        assert_eq!(
            std::fs::read(dir.path().join("counter")).unwrap(),
            (first + 1).to_be_bytes()
        );
    }

    #[test]
    fn corrupt_counter_is_an_error_not_a_reset() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("counter"), b"12345").unwrap();
        let counter = Counter::lock(dir.path()).unwrap();
        let err = counter.next().unwrap_err().to_string();
        assert!(err.contains("reseed") && err.contains("corrupt"), "{err}");
        assert_eq!(std::fs::read(dir.path().join("counter")).unwrap(), b"12345");
    }
}
