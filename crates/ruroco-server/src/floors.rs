//! The replay floors on disk: one u128 per key id, in the two-slot file of
//! [`crate::floor_format`], committed with one `pwrite` + `fdatasync` per batch.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use ruroco_proto::{FloorTable, KeyId};
use serde::Deserialize;

use crate::floor_format;

/// File name of the floors inside `blocklist_dir` (see [`crate::floor_format`]).
pub(crate) const FLOOR_FILE: &str = "floors.bin";
/// The text file earlier versions kept; imported once when there is no `floors.bin`.
pub(crate) const LEGACY_FILE: &str = "blocklist.toml";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LegacyFile {
    #[serde(default)]
    floors: BTreeMap<String, String>,
}

/// The floors in memory plus where they are persisted.
#[derive(Debug)]
pub(crate) struct FloorStore {
    path: PathBuf,
    table: FloorTable,
    /// Open once, at the first write; `None` until then (loading and `--check` only read).
    file: Option<File>,
    /// Sequence number of the newest committed slot (0: no file yet).
    seq: u64,
    /// Size of each slot of the file on disk (0: no file yet).
    slot_size: usize,
}

impl FloorStore {
    /// Reads the floor file of `dir` (absent = no floors yet; an earlier version's
    /// `blocklist.toml` is imported). Writes nothing.
    pub(crate) fn load(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join(FLOOR_FILE);
        let mut store = Self {
            path,
            table: FloorTable::new(),
            file: None,
            seq: 0,
            slot_size: 0,
        };
        match std::fs::read(&store.path) {
            Ok(bytes) => {
                let (seq, slot_size, table) = floor_format::decode_file(&bytes).map_err(|e| {
                    anyhow::anyhow!("invalid replay floor file {}: {e}", store.path.display())
                })?;
                store.seq = seq;
                store.slot_size = slot_size;
                store.table = table;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                store.table = load_legacy(&dir.join(LEGACY_FILE))?;
            }
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("cannot read replay floor file {}", store.path.display())
                })
            }
        }
        Ok(store)
    }

    pub(crate) fn table(&self) -> &FloorTable {
        &self.table
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Raises floors to `carried` where they are higher (and sets them where we have none)
    /// and writes the file if anything changed; returns how many changed.
    pub(crate) fn carry_over(&mut self, carried: &[(KeyId, u128)]) -> anyhow::Result<usize> {
        let mut next = self.table.clone();
        let mut changed = 0;
        for (id, floor) in carried {
            if next.get(id).is_none_or(|ours| *floor > ours) {
                next.set(*id, *floor);
                changed += 1;
            }
        }
        if changed > 0 {
            self.commit(next)?;
        }
        Ok(changed)
    }

    /// Seeds absent floors with `now` and writes the file — unless no floor was absent and
    /// the file exists: a reload that added no key writes and syncs nothing.
    pub(crate) fn seed(
        &mut self,
        ids: impl IntoIterator<Item = KeyId>,
        now: u128,
    ) -> anyhow::Result<()> {
        let ids: Vec<KeyId> = ids
            .into_iter()
            .filter(|id| self.table.get(id).is_none())
            .collect();
        if ids.is_empty() && self.seq > 0 {
            return Ok(());
        }
        let mut next = self.table.clone();
        next.seed(ids, now);
        self.commit(next)
    }

    /// Durably stores `floor` for `id` (see [`Self::commit`]).
    #[cfg(test)]
    pub(crate) fn advance(&mut self, id: KeyId, floor: u128) -> anyhow::Result<()> {
        let mut next = self.table.clone();
        next.set(id, floor);
        self.commit(next)
    }

    /// Group commit: durably stores `next` (the floors after a whole batch) in one write.
    /// `next` becomes the in-memory table even when the write fails: the caller forwards
    /// nothing then, and what the batch spent must stay spent (a datagram refused because
    /// its floor could not be stored must not pass once the disk works again). The next
    /// commit that succeeds writes it, since every commit writes the whole table.
    pub(crate) fn commit(&mut self, next: FloorTable) -> anyhow::Result<()> {
        let seq = self.seq + 1;
        let needed = floor_format::slot_size_for(&next);
        let written = match self.file.as_ref() {
            Some(file) if needed <= self.slot_size => {
                let slot = floor_format::encode_slot(seq, &next, self.slot_size);
                let offset = (seq % 2) * self.slot_size as u64;
                file.write_all_at(&slot, offset)
                    .and_then(|()| file.sync_data())
            }
            _ => self.create(seq, &next, needed),
        };
        self.table = next;
        written
            .with_context(|| format!("cannot write replay floor file {}", self.path.display()))?;
        self.seq = seq;
        Ok(())
    }

    /// Writes a new file (first write, or the table outgrew its slots) the slow, atomic
    /// way: temp, fsync, rename, fsync the directory; then keeps it open for commits.
    fn create(&mut self, seq: u64, table: &FloorTable, needed: usize) -> std::io::Result<()> {
        let slot_size = needed.max(self.slot_size);
        let mut bytes = vec![0u8; 2 * slot_size];
        let slot = floor_format::encode_slot(seq, table, slot_size);
        let offset = (seq % 2) as usize * slot_size;
        if let Some(target) = bytes.get_mut(offset..offset + slot_size) {
            target.copy_from_slice(&slot);
        }
        ruroco_fs::write_durably(&self.path, &bytes)?;
        self.file = Some(OpenOptions::new().read(true).write(true).open(&self.path)?);
        self.slot_size = slot_size;
        Ok(())
    }
}

/// The floors of an earlier version's text file (absent: none).
fn load_legacy(path: &Path) -> anyhow::Result<FloorTable> {
    let mut table = FloorTable::new();
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(table),
        Err(e) => {
            return Err(e)
                .with_context(|| format!("cannot read replay floor file {}", path.display()))
        }
    };
    let file: LegacyFile = toml::from_str(&text).map_err(|e| {
        anyhow::anyhow!(
            "invalid replay floor file {}: {}",
            path.display(),
            ruroco_config::describe_toml_error(&text, &e)
        )
    })?;
    for (id, floor) in file.floors {
        let parsed = parse_id(&id).zip(floor.parse::<u128>().ok());
        let (id, floor) = parsed.with_context(|| {
            format!(
                "invalid replay floor file {}: entry `{id}` is not key-id-hex = \"u128\"",
                path.display()
            )
        })?;
        table.set(id, floor);
    }
    tracing::info!(
        "imported the replay floors of {}; from now on they are kept in {FLOOR_FILE}",
        path.display()
    );
    Ok(table)
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
        for floor in [101, 102, u128::MAX] {
            store.advance(a, floor).unwrap();
            let again = FloorStore::load(dir.path()).unwrap();
            assert_eq!(again.table().get(&a), Some(floor));
            assert_eq!(again.table().get(&b), Some(100));
        }
    }

    #[test]
    fn a_table_that_outgrows_its_slots_moves_to_a_bigger_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = FloorStore::load(dir.path()).unwrap();
        let ids: Vec<KeyId> = (0..500u32)
            .map(|i| KeyId(u64::from(i).to_be_bytes()))
            .collect();
        store.seed(ids.iter().copied().take(10), 1).unwrap();
        store.seed(ids.iter().copied(), 2).unwrap();
        store.advance(ids[499], 3).unwrap();
        let again = FloorStore::load(dir.path()).unwrap();
        assert_eq!(again.table().get(&ids[0]), Some(1));
        assert_eq!(again.table().get(&ids[499]), Some(3));
        let len = std::fs::metadata(dir.path().join(FLOOR_FILE))
            .unwrap()
            .len();
        assert_eq!(len as usize, 2 * floor_format::slot_size_for_entries(500));
    }

    #[test]
    fn a_legacy_text_file_is_imported() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(LEGACY_FILE),
            "[floors]\n\"abababababababab\" = \"77\"\n",
        )
        .unwrap();
        let mut store = FloorStore::load(dir.path()).unwrap();
        assert_eq!(store.table().get(&KeyId([0xab; 8])), Some(77));
        store.seed([KeyId([1; 8])], 5).unwrap();
        let again = FloorStore::load(dir.path()).unwrap();
        assert_eq!(again.table().get(&KeyId([0xab; 8])), Some(77));
    }

    #[test]
    fn corrupt_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(LEGACY_FILE), "[floors]\n\"zz\" = \"1\"\n").unwrap();
        let err = FloorStore::load(dir.path()).unwrap_err();
        assert!(format!("{err:#}").contains(LEGACY_FILE));
        std::fs::write(dir.path().join(FLOOR_FILE), [0u8; 8192]).unwrap();
        let err = FloorStore::load(dir.path()).unwrap_err();
        assert!(format!("{err:#}").contains(FLOOR_FILE), "{err:#}");
    }
}
