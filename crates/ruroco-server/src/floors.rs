//! The replay floors on disk: one u128 per key id, written atomically and durably.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use ruroco_proto::{FloorTable, KeyId};
use serde::Deserialize;

/// File name of the floors inside `blocklist_dir`.
pub(crate) const FLOOR_FILE: &str = "blocklist.toml";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FloorFile {
    #[serde(default)]
    floors: BTreeMap<String, String>,
}

/// The floors in memory plus where they are persisted.
#[derive(Debug)]
pub(crate) struct FloorStore {
    path: PathBuf,
    table: FloorTable,
}

impl FloorStore {
    /// Reads the floor file of `dir` (absent = no floors yet).
    pub(crate) fn load(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join(FLOOR_FILE);
        let mut table = FloorTable::new();
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let file: FloorFile = toml::from_str(&text).map_err(|e| {
                    anyhow::anyhow!(
                        "invalid replay floor file {}: {}",
                        path.display(),
                        ruroco_config::describe_toml_error(&text, &e)
                    )
                })?;
                for (id, floor) in file.floors {
                    let parsed = parse_id(&id).zip(floor.parse::<u128>().ok());
                    let (id, floor) = parsed.with_context(|| {
                        format!("invalid replay floor file {}: entry `{id}` is not key-id-hex = \"u128\"", path.display())
                    })?;
                    table.set(id, floor);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("cannot read replay floor file {}", path.display()))
            }
        }
        Ok(Self { path, table })
    }

    pub(crate) fn table(&self) -> &FloorTable {
        &self.table
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Seeds absent floors with `now` and writes the file.
    pub(crate) fn seed(
        &mut self,
        ids: impl IntoIterator<Item = KeyId>,
        now: u128,
    ) -> anyhow::Result<()> {
        let mut next = self.table.clone();
        next.seed(ids, now);
        self.write(&next)?;
        self.table = next;
        Ok(())
    }

    /// Durably stores `floor` for `id`; only once that succeeded is the in-memory floor
    /// moved. On error nothing changes.
    #[cfg(test)]
    pub(crate) fn advance(&mut self, id: KeyId, floor: u128) -> anyhow::Result<()> {
        let mut next = self.table.clone();
        next.set(id, floor);
        self.commit(next)
    }

    /// Group commit: durably stores `next` (the floors after a whole batch) in one write;
    /// only once that succeeded does it become the in-memory table. On error nothing
    /// changes.
    pub(crate) fn commit(&mut self, next: FloorTable) -> anyhow::Result<()> {
        self.write(&next)?;
        self.table = next;
        Ok(())
    }

    /// Replaces the file atomically and durably.
    fn write(&self, table: &FloorTable) -> anyhow::Result<()> {
        let mut sorted: Vec<_> = table.iter().collect();
        sorted.sort();
        let mut text = String::from(
            "# ruroco-server replay floors: key id = highest accepted counter.\n# Written by the server; do not edit while it runs.\n[floors]\n",
        );
        for (id, floor) in sorted {
            text.push_str(&format!("\"{id}\" = \"{floor}\"\n"));
        }
        ruroco_fs::write_durably(&self.path, text.as_bytes())
            .with_context(|| format!("cannot write replay floor file {}", self.path.display()))
    }
}

fn parse_id(hex: &str) -> Option<KeyId> {
    if hex.len() != 16 || !hex.is_ascii() {
        return None;
    }
    let mut id = [0u8; 8];
    for (byte, pair) in id.iter_mut().zip(hex.as_bytes().chunks(2)) {
        let pair = std::str::from_utf8(pair).ok()?;
        *byte = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(KeyId(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floors_survive_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = FloorStore::load(dir.path()).unwrap();
        let a = KeyId([0xab; 8]);
        let b = KeyId([1, 2, 3, 4, 5, 6, 7, 8]);
        store.seed([a, b], 100).unwrap();
        store.advance(a, u128::MAX).unwrap();
        let again = FloorStore::load(dir.path()).unwrap();
        assert_eq!(again.table().get(&a), Some(u128::MAX));
        assert_eq!(again.table().get(&b), Some(100));
    }

    #[test]
    fn failed_write_keeps_the_old_floor() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = FloorStore::load(dir.path()).unwrap();
        let a = KeyId([7; 8]);
        store.seed([a], 5).unwrap();
        // A directory where the temp file must go makes every write fail, even for root.
        std::fs::create_dir(dir.path().join(format!(".{FLOOR_FILE}.tmp"))).unwrap();
        assert!(store.advance(a, 6).is_err());
        assert_eq!(store.table().get(&a), Some(5));
    }

    #[test]
    fn corrupt_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FLOOR_FILE), "[floors]\n\"zz\" = \"1\"\n").unwrap();
        let err = FloorStore::load(dir.path()).unwrap_err();
        assert!(format!("{err:#}").contains(FLOOR_FILE));
    }
}
