//! The pending undos' state file, `<state_dir>/pending-undos.toml`, written durably (temp,
//! fsync, rename, fsync dir) after every change, so a pending undo survives a crash or a
//! power cut once the run that scheduled it is reported done.

use std::io;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::undo::{self, PendingUndo, Schedule};

/// The state file's name inside `state_dir`.
pub(crate) const FILE_NAME: &str = "pending-undos.toml";

/// Where the pending undos are kept.
#[derive(Debug, Clone)]
pub(crate) struct UndoStore {
    dir: PathBuf,
    path: PathBuf,
}

impl UndoStore {
    pub(crate) fn new(state_dir: &Path) -> Self {
        Self {
            dir: state_dir.to_owned(),
            path: state_dir.join(FILE_NAME),
        }
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The file's text, read as root reads what it runs: refused where anyone but root
    /// could change it, never through a link or from a FIFO, bounded; `None` if missing.
    fn text(&self) -> anyhow::Result<Option<String>> {
        crate::trust::read(&self.path, "", crate::trust::Role::StateFile)
    }

    /// Reads the file for listing: missing is empty, anything wrong is an error naming it.
    pub(crate) fn read(&self) -> anyhow::Result<Vec<PendingUndo>> {
        match self.text()? {
            Some(text) => undo::decode(&text)
                .map_err(|e| anyhow::anyhow!("invalid state file {}: {e}", self.path.display())),
            None => Ok(Vec::new()),
        }
    }

    /// Loads the file at start. A file that cannot be parsed is moved aside to
    /// `<name>.bad-<unix ms>` with an error line naming both (its undos are then not
    /// run: a human must look at them); one that cannot be read stops the start.
    pub(crate) fn load(&self, now_ms: u64) -> anyhow::Result<Vec<PendingUndo>> {
        let Some(text) = self.text()? else {
            return Ok(Vec::new());
        };
        match undo::decode(&text) {
            Ok(undos) => Ok(undos),
            Err(problem) => {
                let aside = self
                    .path
                    .with_file_name(format!("{FILE_NAME}.bad-{now_ms}"));
                std::fs::rename(&self.path, &aside).with_context(|| {
                    format!(
                        "invalid state file {} ({problem}) and it cannot be moved aside to {}",
                        self.path.display(),
                        aside.display()
                    )
                })?;
                tracing::error!(
                    "invalid state file {}: {problem}; moved it to {} and started with no pending undos: check it and run what it lists by hand",
                    self.path.display(),
                    aside.display()
                );
                Ok(Vec::new())
            }
        }
    }

    /// Makes sure the state directory exists (0700) and the file can be written.
    pub(crate) fn prepare(&self, schedule: &Schedule) -> anyhow::Result<()> {
        ruroco_fs::create_private_dir(&self.dir)
            .with_context(|| format!("cannot create state_dir {}", self.dir.display()))?;
        self.save(schedule)
            .with_context(|| format!("cannot write state file {}", self.path.display()))
    }

    /// Replaces the file with `schedule`, durably.
    pub(crate) fn save(&self, schedule: &Schedule) -> io::Result<()> {
        let text = schedule
            .encode()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        ruroco_fs::write_durably(&self.path, text.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_file_is_kept_aside_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let store = UndoStore::new(dir.path());
        assert_eq!(store.load(1).unwrap(), vec![]);
        std::fs::write(store.path(), "not toml [").unwrap();
        assert_eq!(store.load(42).unwrap(), vec![]);
        let aside = dir.path().join("pending-undos.toml.bad-42");
        assert_eq!(std::fs::read_to_string(aside).unwrap(), "not toml [");
        assert!(!store.path().exists());
        assert!(store.read().unwrap().is_empty());
    }

    #[test]
    fn saved_undos_load_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = UndoStore::new(&dir.path().join("state"));
        let mut s = Schedule::default();
        s.schedule(PendingUndo {
            command: "open_ssh".into(),
            ip: "192.0.2.1".parse().unwrap(),
            due_unix_ms: 7,
            undo: "close".into(),
            timeout_sec: 30,
        })
        .unwrap();
        store.prepare(&s).unwrap();
        assert_eq!(store.load(0).unwrap(), s.list());
        assert_eq!(store.read().unwrap(), s.list());
    }
}
