//! The replay floors on disk: one u128 per key id, in the file of
//! [`crate::floor_format`] (two slots and a log), committed with one `pwrite` +
//! `fdatasync` per batch: a log page of what the batch spent, whatever the number of keys.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use ruroco_proto::{FloorTable, KeyId, Spend};
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
    /// Where slots and log lie in the open file (`None` until a write made it).
    layout: Option<floor_format::Layout>,
    /// Log pages written since the newest slot.
    log_used: usize,
    /// Spent since the last commit, not yet on disk.
    pending: Vec<Spend>,
    /// The next commit writes the whole table (a write failed: what it held must not be
    /// left to a log with a hole in it).
    snapshot_due: bool,
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
            layout: None,
            log_used: 0,
            pending: Vec::new(),
            snapshot_due: false,
        };
        match ruroco_fs::trust::read_bounded(&store.path, MAX_FLOOR_FILE) {
            Ok(Some(bytes)) => {
                let decoded = floor_format::decode_file(&bytes).map_err(|e| {
                    anyhow::anyhow!("invalid replay floor file {}: {e}", store.path.display())
                })?;
                store.seq = decoded.seq;
                store.slot_size = decoded
                    .layout
                    .map_or(bytes.len() / 2, |layout| layout.slot_size);
                store.table = decoded.table;
            }
            Ok(None) => {
                store.table = load_legacy(&dir.join(LEGACY_FILE))?;
            }
            Err(e) => return Err(unreadable(e)),
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
        let mut changed = 0;
        for (id, floor) in carried {
            if self.table.get(id).is_none_or(|ours| *floor > ours) {
                self.table.set(*id, *floor);
                changed += 1;
            }
        }
        if changed > 0 {
            self.snapshot()?;
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
        self.table.seed(ids, now);
        self.snapshot()
    }

    /// Applies what a datagram spent to the floors in memory (so that the next datagram
    /// of the batch is judged against it) and keeps it for [`Self::commit`].
    pub(crate) fn spend(&mut self, spend: Spend) {
        self.table.spend(spend);
        self.pending.push(spend);
    }

    /// Durably stores `floor` for `id` (see [`Self::commit`]).
    #[cfg(test)]
    pub(crate) fn advance(&mut self, id: KeyId, floor: u128) -> anyhow::Result<()> {
        self.spend(Spend::Floor(id, floor));
        self.commit()
    }

    /// Group commit: durably stores what the batch spent, in one write (a log page, or
    /// when the log is full the whole table into the other slot). What was spent stays
    /// spent in memory even when the write fails: the caller forwards nothing then, and a
    /// datagram refused because its floor could not be stored must not pass once the disk
    /// works again; the next commit that succeeds writes the whole table.
    pub(crate) fn commit(&mut self) -> anyhow::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let (Some(file), Some(layout), false) =
            (self.file.as_ref(), self.layout, self.snapshot_due)
        else {
            return self.snapshot();
        };
        let pages = self.pending.len().div_ceil(floor_format::PER_LOG_PAGE);
        if self.log_used + pages > layout.log_pages {
            return self.snapshot();
        }
        let mut bytes = Vec::with_capacity(pages * floor_format::PAGE);
        for (i, chunk) in self.pending.chunks(floor_format::PER_LOG_PAGE).enumerate() {
            let number = (self.log_used + i) as u64 + 1;
            bytes.extend(floor_format::encode_log_page(self.seq, number, chunk));
        }
        let written = file
            .write_all_at(&bytes, layout.log_offset(self.log_used))
            .and_then(|()| file.sync_data());
        self.pending.clear();
        match written {
            Ok(()) => {
                self.log_used += pages;
                Ok(())
            }
            Err(e) => {
                self.snapshot_due = true;
                Err(e).with_context(|| {
                    format!("cannot write replay floor file {}", self.path.display())
                })
            }
        }
    }

    /// Writes the whole table into the slot not holding the newest copy (or a new file, at
    /// the first write or when the table outgrew its slots); the log starts again behind it.
    fn snapshot(&mut self) -> anyhow::Result<()> {
        self.pending.clear();
        let seq = self.seq + 1;
        let needed = floor_format::slot_size_for(&self.table);
        let written = match (self.file.as_ref(), self.layout) {
            (Some(file), Some(layout)) if needed <= layout.slot_size => {
                let slot = floor_format::encode_slot(seq, &self.table, layout.slot_size);
                file.write_all_at(&slot, layout.slot_offset(seq))
                    .and_then(|()| file.sync_data())
            }
            _ => self.create(seq, needed),
        };
        if let Err(e) = written {
            self.snapshot_due = true;
            return Err(e).with_context(|| {
                format!("cannot write replay floor file {}", self.path.display())
            });
        }
        self.seq = seq;
        self.log_used = 0;
        self.snapshot_due = false;
        Ok(())
    }

    /// Writes a new file (first write, or the table outgrew its slots) the slow, atomic
    /// way: temp, fsync, rename, fsync the directory; then keeps it open for commits. Its
    /// log pages are written (zeros) here, so that appending to them changes no size.
    fn create(&mut self, seq: u64, needed: usize) -> std::io::Result<()> {
        let layout = floor_format::Layout::for_slot(needed.max(self.slot_size));
        let mut bytes = vec![0u8; layout.file_len()];
        let header = layout.encode_header();
        let slot = floor_format::encode_slot(seq, &self.table, layout.slot_size);
        for (at, part) in [(0, &header), (layout.slot_offset(seq) as usize, &slot)] {
            if let Some(target) = bytes.get_mut(at..at + part.len()) {
                target.copy_from_slice(part);
            }
        }
        ruroco_fs::write_durably(&self.path, &bytes)?;
        self.file = Some(OpenOptions::new().read(true).write(true).open(&self.path)?);
        self.slot_size = layout.slot_size;
        self.layout = Some(layout);
        Ok(())
    }
}

/// Largest floor file read: 24 bytes a key in each of two slots plus the log, so a
/// few million keys; anything larger is not a floor file and is not read into memory.
const MAX_FLOOR_FILE: u64 = 256 << 20;

/// The error for a floor file that cannot be read: opened as root opens another user's
/// file (`--check` as root reads the server's), so never through a link, never a FIFO.
fn unreadable(e: ruroco_fs::trust::OpenError) -> anyhow::Error {
    use ruroco_fs::trust::OpenError;
    match e {
        OpenError::Io { path, source } => {
            anyhow::anyhow!("cannot read replay floor file {}: {source}", path.display())
        }
        other => anyhow::anyhow!("replay floor file {other}"),
    }
}

/// The floors of an earlier version's text file (absent: none).
fn load_legacy(path: &Path) -> anyhow::Result<FloorTable> {
    let mut table = FloorTable::new();
    let bytes = match ruroco_fs::trust::read_bounded(path, MAX_FLOOR_FILE) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return Ok(table),
        Err(e) => return Err(unreadable(e)),
    };
    let text = String::from_utf8(bytes).map_err(|_| {
        anyhow::anyhow!(
            "invalid replay floor file {}: not UTF-8 text",
            path.display()
        )
    })?;
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
        let layout = floor_format::Layout::for_slot(floor_format::slot_size_for_entries(500));
        assert_eq!(len as usize, layout.file_len());
    }

    fn ids(n: u32) -> Vec<KeyId> {
        (0..n).map(|i| KeyId(u64::from(i).to_be_bytes())).collect()
    }

    /// A batch's commit appends a log page: the slots are not rewritten, so its cost does
    /// not grow with the number of keys; a restart reads slot and log back.
    #[test]
    fn a_commit_appends_to_the_log_and_leaves_the_slots_alone() {
        let dir = tempfile::tempdir().unwrap();
        let ids = ids(10_000);
        let mut store = FloorStore::load(dir.path()).unwrap();
        store.seed(ids.iter().copied(), 1).unwrap();
        let path = dir.path().join(FLOOR_FILE);
        let layout = floor_format::Layout::for_slot(floor_format::slot_size_for_entries(10_000));
        let slots = |bytes: &[u8]| bytes[..layout.log_offset(0) as usize].to_vec();
        let before = slots(&std::fs::read(&path).unwrap());
        store.spend(Spend::Floor(ids[7], 50));
        store.spend(Spend::Remember(ids[8], u128::MAX - 1));
        store.commit().unwrap();
        store.advance(ids[9], 60).unwrap();
        assert_eq!(slots(&std::fs::read(&path).unwrap()), before);
        let again = FloorStore::load(dir.path()).unwrap();
        assert_eq!(again.table(), store.table());
        assert_eq!(again.table().get(&ids[7]), Some(50));
        assert!(again.table().is_spent(&ids[8], u128::MAX - 1));
        assert_eq!(again.table().get(&ids[9]), Some(60));
        assert_eq!(again.table().get(&ids[0]), Some(1));
    }

    /// More batches than the log holds: each time it is full a snapshot goes into the
    /// other slot and the log starts again; every floor survives every restart.
    #[test]
    fn a_full_log_turns_into_a_snapshot_and_starts_again() {
        let dir = tempfile::tempdir().unwrap();
        let ids = ids(3);
        let mut store = FloorStore::load(dir.path()).unwrap();
        store.seed(ids.iter().copied(), 1).unwrap();
        let seq = store.seq;
        let rounds = floor_format::MIN_LOG_PAGES as u128 * 2 + 5;
        for floor in 2..2 + rounds {
            store.advance(ids[(floor % 3) as usize], floor).unwrap();
            if floor % 17 == 0 {
                assert_eq!(FloorStore::load(dir.path()).unwrap().table(), store.table());
            }
        }
        assert_eq!(store.seq, seq + 2, "two snapshots");
        // A batch larger than one page takes several.
        for (i, floor) in (1_000..1_000 + 3 * floor_format::PER_LOG_PAGE as u128).enumerate() {
            store.spend(Spend::Floor(ids[i % 3], floor));
        }
        store.commit().unwrap();
        let again = FloorStore::load(dir.path()).unwrap();
        assert_eq!(again.table(), store.table());
    }

    /// A torn append loses only itself; a torn snapshot falls back to the older slot and
    /// the log that follows it: in both cases the file reads as the last commit that
    /// returned.
    #[test]
    fn torn_writes_read_as_the_last_commit_that_returned() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FLOOR_FILE);
        let ids = ids(2);
        let mut store = FloorStore::load(dir.path()).unwrap();
        store.seed(ids.iter().copied(), 1).unwrap();
        store.advance(ids[0], 10).unwrap();
        let layout = store.layout.unwrap();
        let returned = store.table().clone();
        let good = std::fs::read(&path).unwrap();
        store.advance(ids[0], 11).unwrap();
        // The second log page half written.
        let mut torn = std::fs::read(&path).unwrap();
        let page = layout.log_offset(1) as usize;
        for b in &mut torn[page + 30..page + floor_format::PAGE] {
            *b = 0;
        }
        std::fs::write(&path, &torn).unwrap();
        assert_eq!(FloorStore::load(dir.path()).unwrap().table(), &returned);
        // A snapshot of everything that was torn: the older slot and its log stand.
        std::fs::write(&path, &good).unwrap();
        let mut store = FloorStore::load(dir.path()).unwrap();
        assert_eq!(store.table(), &returned);
        store.advance(ids[1], 20).unwrap(); // the first write after a start: a new file
        let new_file = std::fs::read(&path).unwrap();
        let layout = store.layout.unwrap();
        store.advance(ids[1], 21).unwrap();
        let after_one = store.table().clone();
        store.table.set(ids[1], 22);
        store.snapshot().unwrap();
        let mut torn = std::fs::read(&path).unwrap();
        let slot = layout.slot_offset(store.seq) as usize;
        torn[slot + floor_format::HEADER + 3] ^= 1;
        std::fs::write(&path, &torn).unwrap();
        assert_eq!(FloorStore::load(dir.path()).unwrap().table(), &after_one);
        assert_ne!(new_file, torn);
    }

    /// A file of the earlier layout (two slots, no header, no log) is read, and the first
    /// write makes a file with a log.
    #[test]
    fn a_file_without_a_log_is_read_and_rewritten_with_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FLOOR_FILE);
        let mut table = FloorTable::new();
        table.set(KeyId([5; 8]), 500);
        let slot = floor_format::encode_slot(3, &table, floor_format::PAGE);
        std::fs::write(&path, [slot, vec![0; floor_format::PAGE]].concat()).unwrap();
        let mut store = FloorStore::load(dir.path()).unwrap();
        assert_eq!(store.table().get(&KeyId([5; 8])), Some(500));
        store.advance(KeyId([5; 8]), 501).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..8], &floor_format::FILE_MAGIC);
        let again = FloorStore::load(dir.path()).unwrap();
        assert_eq!(again.table().get(&KeyId([5; 8])), Some(501));
        assert!(again.seq > 3);
    }

    /// A failed append leaves the spend in memory, and the next commit that succeeds
    /// writes the whole table, so it is on disk even though its own write failed.
    #[test]
    fn after_a_failed_write_the_next_commit_writes_everything() {
        let dir = tempfile::tempdir().unwrap();
        let ids = ids(2);
        let mut store = FloorStore::load(dir.path()).unwrap();
        store.seed(ids.iter().copied(), 1).unwrap();
        let good = store.file.take().unwrap();
        // A descriptor that cannot be written: the append fails.
        store.file = Some(File::open(dir.path().join(FLOOR_FILE)).unwrap());
        store.spend(Spend::Floor(ids[0], 40));
        assert!(store.commit().is_err());
        assert_eq!(store.table().get(&ids[0]), Some(40));
        store.file = Some(good);
        store.advance(ids[1], 41).unwrap();
        let again = FloorStore::load(dir.path()).unwrap();
        assert_eq!(again.table().get(&ids[0]), Some(40));
        assert_eq!(again.table().get(&ids[1]), Some(41));
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
