//! Replay floors carried over from the original ruroco server, so that switching servers
//! touches no client, and written back to it, so that switching back replays nothing.
//!
//! The original keeps each key's last accepted counter in `blocklist.msgpck` (in its
//! config directory): MessagePack, as `rmp-serde` writes the struct
//! `{ map: {[u8; 8] → u128}, path }` (released 0.14.x) or `{ map }` (its current version),
//! as an array or with field names. Released clients count from a seed taken once, far
//! below "now"; without their floors every one of them would be a `replay`.
//!
//! Read with `rmp-serde`, the library that wrote it. The carry-over raises our floors to
//! the file's where they are higher, and happens once: the record
//! `original-floors.carried` beside `floors.bin` says it did (the file's size, inode and
//! hash), and a later start leaves that file alone — unless another file is there (the
//! original ran again since, or a backup was put back, whatever its times: carrying
//! only ever raises floors). Without the record, a start after
//! `floors.bin` was lost would take the original's old floors and let everything
//! accepted since be replayed; so while the original's file stays, every start and
//! `--check` say to move it aside. Going back, [`write_back`] puts our floors (the larger
//! of both per key) into the original's file in the layout it has, so the original
//! refuses everything ours accepted.
//!
//! Root reads and writes this file (`--check`, `write-original-floors`) in a directory
//! the original's user owns: never through a link, never a FIFO, bounded, and the file
//! written back gets its owner and mode on its descriptor before the rename.
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::Context;
use ruroco_proto::KeyId;
use serde::{Deserialize, Serialize};

/// The original's file name.
pub(crate) const FILE: &str = "blocklist.msgpck";
/// Larger than any real file (24 bytes or so per key); a bigger one is refused unread.
const MAX_BYTES: u64 = 16 << 20;
/// The record of a carry-over, beside `floors.bin`.
pub(crate) const RECORD: &str = "original-floors.carried";

/// The original's struct, field for field: released 0.14.x writes `{ map, path }`, its
/// current version `{ map }` alone (an array of one element in rmp-serde's compact form).
#[derive(Deserialize)]
struct Blocklist {
    map: HashMap<[u8; 8], u128>,
    #[allow(dead_code)]
    #[serde(default)]
    path: Option<PathBuf>,
}

/// Floors found in the original's file.
#[derive(Debug)]
pub(crate) struct Carried {
    pub(crate) path: PathBuf,
    pub(crate) floors: Vec<(KeyId, u128)>,
    /// Which file it was, for the record.
    pub(crate) seen: Seen,
}

/// The floors of `bytes`, or what is wrong with them.
pub(crate) fn decode(bytes: &[u8]) -> Result<Vec<(KeyId, u128)>, String> {
    let list: Blocklist = rmp_serde::from_slice(bytes).map_err(|e| e.to_string())?;
    let mut floors: Vec<(KeyId, u128)> = list
        .map
        .into_iter()
        .map(|(id, floor)| (KeyId(id), floor))
        .collect();
    floors.sort_unstable();
    Ok(floors)
}

/// Where the original's file is, for writing it back: in the first of `dirs` that has
/// one (as [`find`] looks).
pub(crate) fn located(dirs: &[&Path]) -> Option<PathBuf> {
    dirs.iter()
        .map(|d| d.join(FILE))
        .find(|p| std::fs::symlink_metadata(p).is_ok())
}

/// The original's file in the first of `dirs` that has one; `None` when none does. A
/// file that cannot be read is an error naming it and the way out. Read as root reads a
/// file in a directory another user owns (`--check`, `write-original-floors`): never
/// through a link, never a FIFO (whose open would wait for a writer), at most
/// [`MAX_BYTES`].
pub(crate) fn find(dirs: &[&Path]) -> anyhow::Result<Option<Carried>> {
    for dir in dirs {
        let path = dir.join(FILE);
        let Some((bytes, meta)) = read(&path)? else {
            continue;
        };
        let floors = decode(&bytes).map_err(|e| refuse(&path, &e))?;
        return Ok(Some(Carried {
            path,
            floors,
            seen: Seen::of(&bytes, &meta),
        }));
    }
    Ok(None)
}

/// The original's file at `path` and what `fstat` says of it, or `None` when there is
/// none; errors name the file and the way out.
fn read(path: &Path) -> anyhow::Result<Option<(Vec<u8>, std::fs::Metadata)>> {
    use ruroco_fs::trust::OpenError;
    let (file, meta) = match ruroco_fs::trust::open_regular(path, MAX_BYTES) {
        Ok(Some(found)) => found,
        Ok(None) => return Ok(None),
        Err(OpenError::Io { source, .. })
            if source.kind() == std::io::ErrorKind::PermissionDenied =>
        {
            return Err(anyhow::anyhow!(
                "cannot read the original ruroco's replay floors {}: {source}; let the server's user read them: chgrp ruroco {0} && chmod 0640 {0} (the server's group; moving the file aside instead makes every client of the original a `replay` until it is reseeded)",
                path.display()
            ))
        }
        Err(OpenError::Io { source, .. }) => return Err(refuse(path, &source.to_string())),
        Err(e) => return Err(refuse(path, &e.to_string())),
    };
    let mut bytes = Vec::new();
    file.take(MAX_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| refuse(path, &e.to_string()))?;
    if bytes.len() as u64 > MAX_BYTES {
        return Err(refuse(path, &format!("larger than {MAX_BYTES} bytes")));
    }
    Ok(Some((bytes, meta)))
}

/// Which file was carried: its size, inode and a BLAKE2b hash of its bytes. The record
/// holds it, and a later start carries over again only when the file is another one
/// (the original wrote it since, or a backup was put back): timestamps decide nothing,
/// so a backup restored with its old times is carried like any other file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Seen {
    pub(crate) size: u64,
    pub(crate) inode: u64,
    pub(crate) blake2b: String,
}

impl Seen {
    fn of(bytes: &[u8], meta: &std::fs::Metadata) -> Self {
        use blake2::Digest;
        use std::fmt::Write;
        use std::os::unix::fs::MetadataExt;
        let digest = blake2::Blake2b512::digest(bytes);
        let mut hex = String::with_capacity(digest.len() * 2);
        for byte in digest {
            let _ = write!(hex, "{byte:02x}");
        }
        Self {
            size: bytes.len() as u64,
            inode: meta.ino(),
            blake2b: hex,
        }
    }
}

fn refuse(path: &Path, why: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "cannot read the original ruroco's replay floors {}: {why}; not starting without them. \
         To start anyway, move it aside (mv {0} {0}.bak): every client of the original is then \
         refused as `replay` until it is reseeded",
        path.display()
    )
}

/// The record of a carry-over in `blocklist_dir`.
pub(crate) fn record_path(blocklist_dir: &Path) -> PathBuf {
    blocklist_dir.join(RECORD)
}

/// The record of an earlier carry-over, as [`record`] writes it.
#[derive(Deserialize)]
struct Record {
    #[serde(flatten)]
    seen: Option<Seen>,
}

/// Whether the carry-over of `carried` is still to be done: no record, or the record
/// names another file (size or hash differ: the original wrote it again, or a backup was
/// put back; carrying again only ever raises floors). A record of an earlier version,
/// without size and hash, is judged by the times it has: the original's file written
/// after the record.
pub(crate) fn due(carried: &Carried, blocklist_dir: &Path) -> bool {
    let path = record_path(blocklist_dir);
    let Ok(Some(bytes)) = ruroco_fs::trust::read_bounded(&path, 64 << 10) else {
        return true;
    };
    let text = String::from_utf8_lossy(&bytes);
    match toml::from_str::<Record>(&text) {
        Ok(Record { seen: Some(seen) }) => {
            seen.size != carried.seen.size || seen.blake2b != carried.seen.blake2b
        }
        Ok(Record { seen: None }) => {
            let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
            match (modified(&path), modified(&carried.path)) {
                (Some(recorded), Some(written)) => written > recorded,
                _ => true,
            }
        }
        Err(_) => true,
    }
}

/// Records, durably, that `carried` was carried over (after the floors were committed).
pub(crate) fn record(blocklist_dir: &Path, carried: &Carried) -> anyhow::Result<()> {
    let path = record_path(blocklist_dir);
    let when = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let text = format!(
        "# ruroco-server carried over the original ruroco's replay floors once; it does so\n\
         # again only for another file there (another size or hash). Delete to carry over again.\n\
         from = {:?}\nkeys = {}\nat_unix = {when}\nsize = {}\ninode = {}\nblake2b = {:?}\n",
        carried.path.display().to_string(),
        carried.floors.len(),
        carried.seen.size,
        carried.seen.inode,
        carried.seen.blake2b,
    );
    ruroco_fs::write_durably(&path, text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// What every start and `--check` say while the original's file stays after its
/// carry-over.
pub(crate) fn stale_warning(original: &Path, blocklist_dir: &Path) -> String {
    format!(
        "the original ruroco's {} was carried over once ({}) and is not read again; move it aside (mv {0} {0}.carried): if {} were ever lost, a start would take its old floors again",
        original.display(),
        record_path(blocklist_dir).display(),
        blocklist_dir.join(crate::floors::FLOOR_FILE).display()
    )
}

pub(crate) use crate::cli::Layout;

/// The layout of an existing file (`None` when it is neither) and whether its fields are
/// named (a map) rather than an array.
fn layout_of(bytes: &[u8]) -> Option<(Layout, bool)> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Released {
        #[allow(dead_code)]
        map: HashMap<[u8; 8], u128>,
        #[allow(dead_code)]
        path: PathBuf,
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Current {
        #[allow(dead_code)]
        map: HashMap<[u8; 8], u128>,
    }
    // MessagePack: fixmap 0x80–0x8f, map16 0xde, map32 0xdf.
    let named = matches!(bytes.first(), Some(0x80..=0x8f | 0xde | 0xdf));
    if rmp_serde::from_slice::<Released>(bytes).is_ok() {
        Some((Layout::Released, named))
    } else if rmp_serde::from_slice::<Current>(bytes).is_ok() {
        Some((Layout::Current, named))
    } else {
        None
    }
}

/// The original's file holding `floors`.
pub(crate) fn encode(
    floors: &[(KeyId, u128)],
    layout: Layout,
    named: bool,
    path: &Path,
) -> anyhow::Result<Vec<u8>> {
    #[derive(Serialize)]
    struct Released<'a> {
        map: HashMap<[u8; 8], u128>,
        path: &'a Path,
    }
    #[derive(Serialize)]
    struct Current {
        map: HashMap<[u8; 8], u128>,
    }
    let map: HashMap<[u8; 8], u128> = floors.iter().map(|(id, f)| (id.0, *f)).collect();
    let bytes = match (layout, named) {
        (Layout::Released, false) => rmp_serde::to_vec(&Released { map, path }),
        (Layout::Released, true) => rmp_serde::to_vec_named(&Released { map, path }),
        (Layout::Current, false) => rmp_serde::to_vec(&Current { map }),
        (Layout::Current, true) => rmp_serde::to_vec_named(&Current { map }),
    };
    bytes.context("cannot encode the original's floors")
}

/// What [`write_back`] did.
#[derive(Debug)]
pub(crate) struct WrittenBack {
    pub(crate) path: PathBuf,
    pub(crate) keys: usize,
    pub(crate) raised: usize,
    pub(crate) layout: Layout,
}

/// Writes `ours` into the original's file `to` (atomically and durably; owner and
/// permission bits kept where it exists, set-id bits never): per key the larger of ours and what the file holds, in the file's layout, or
/// `layout` (released 0.14.x when neither says).
pub(crate) fn write_back(
    ours: &ruroco_proto::FloorTable,
    to: &Path,
    layout: Option<Layout>,
) -> anyhow::Result<WrittenBack> {
    use std::os::unix::fs::MetadataExt;
    let (existing, meta, found) = match read(to)? {
        Some((bytes, meta)) => {
            let floors = decode(&bytes).map_err(|e| {
                anyhow::anyhow!(
                    "{} is not the original's floor file ({e}); not replacing it",
                    to.display()
                )
            })?;
            (floors, Some(meta), layout_of(&bytes))
        }
        None => (Vec::new(), None, None),
    };
    let mut merged: HashMap<KeyId, u128> = existing.into_iter().collect();
    let mut raised = 0;
    for (id, floor) in ours.iter() {
        let slot = merged.entry(id).or_insert(0);
        if floor > *slot {
            *slot = floor;
            raised += 1;
        }
    }
    let mut floors: Vec<(KeyId, u128)> = merged.into_iter().collect();
    floors.sort_unstable();
    let (layout, named) = match (layout, found) {
        (Some(wanted), found) => (wanted, found.is_some_and(|(_, named)| named)),
        (None, Some(found)) => found,
        (None, None) => (Layout::Released, false),
    };
    let bytes = encode(&floors, layout, named, to)?;
    // Owner and mode go on the new file's descriptor before the rename: the directory may
    // be the original's user's, and nothing there is changed by path.
    let written = match meta {
        Some(meta) => {
            ruroco_fs::write_durably_owned(to, &bytes, meta.mode() & 0o777, meta.uid(), meta.gid())
        }
        None => ruroco_fs::write_durably(to, &bytes),
    };
    written.with_context(|| format!("cannot write {}", to.display()))?;
    Ok(WrittenBack {
        path: to.to_owned(),
        keys: floors.len(),
        raised,
        layout,
    })
}

/// Where to look: `blocklist_dir`, then `config_dir` (the original writes it there).
pub(crate) fn dirs<'a>(blocklist_dir: &'a Path, config_dir: &'a Path) -> Vec<&'a Path> {
    if blocklist_dir == config_dir {
        vec![blocklist_dir]
    } else {
        vec![blocklist_dir, config_dir]
    }
}

/// What a start carries over from `carried`, given our floors `ours` (for `--check`).
pub(crate) fn describe(carried: &Carried, ours: &ruroco_proto::FloorTable) -> String {
    let above = carried
        .floors
        .iter()
        .filter(|(id, floor)| ours.get(id).is_none_or(|f| *floor > f))
        .count();
    format!(
        "carries over the floors of {} key(s) from {} ({above} above ours)",
        carried.floors.len(),
        carried.path.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Serialize;

    #[derive(Serialize)]
    struct Original {
        map: HashMap<[u8; 8], u128>,
        path: PathBuf,
    }

    fn original() -> Original {
        Original {
            map: HashMap::from([
                (*b"laptop01", 1_700_000_000_000_000_123),
                (*b"phone-02", 42),
            ]),
            path: PathBuf::from("/etc/ruroco/blocklist.msgpck"),
        }
    }

    #[test]
    fn reads_what_rmp_serde_writes_in_either_struct_form() {
        let want = vec![
            (KeyId(*b"laptop01"), 1_700_000_000_000_000_123),
            (KeyId(*b"phone-02"), 42),
        ];
        for bytes in [
            rmp_serde::to_vec(&original()).unwrap(),
            rmp_serde::to_vec_named(&original()).unwrap(),
        ] {
            assert_eq!(decode(&bytes).unwrap(), want);
        }
    }

    /// The original's current version dropped `path`: `{ map }` only.
    #[derive(Serialize)]
    struct Current {
        map: HashMap<[u8; 8], u128>,
    }

    #[test]
    fn reads_the_current_originals_layout_without_path() {
        let current = Current {
            map: original().map,
        };
        let want = vec![
            (KeyId(*b"laptop01"), 1_700_000_000_000_000_123),
            (KeyId(*b"phone-02"), 42),
        ];
        for bytes in [
            rmp_serde::to_vec(&current).unwrap(),
            rmp_serde::to_vec_named(&current).unwrap(),
        ] {
            assert_eq!(decode(&bytes).unwrap(), want);
        }
    }

    /// A record of an earlier version (no size or hash) is judged by times; one with them
    /// by size and hash alone.
    #[test]
    fn due_follows_the_records_hash_and_an_old_record_its_times() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(FILE),
            rmp_serde::to_vec(&original()).unwrap(),
        )
        .unwrap();
        let carried = find(&[dir.path()]).unwrap().unwrap();
        assert!(due(&carried, dir.path()), "no record yet");
        std::fs::write(
            record_path(dir.path()),
            "from = \"x\"\nkeys = 2\nat_unix = 1\n",
        )
        .unwrap();
        assert!(
            !due(&carried, dir.path()),
            "an old record newer than the file"
        );
        record(dir.path(), &carried).unwrap();
        assert!(!due(&carried, dir.path()));
        let mut other = original();
        other.map.insert(*b"laptop01", u128::MAX);
        std::fs::write(dir.path().join(FILE), rmp_serde::to_vec(&other).unwrap()).unwrap();
        let changed = find(&[dir.path()]).unwrap().unwrap();
        assert!(due(&changed, dir.path()), "another file after the record");
    }

    #[test]
    fn garbage_is_an_error_and_a_missing_file_is_none() {
        assert!(decode(b"not msgpack").is_err());
        assert!(decode(&[]).is_err());
        let dir = tempfile::tempdir().unwrap();
        assert!(find(&[dir.path()]).unwrap().is_none());
        std::fs::write(dir.path().join(FILE), b"\xc1\xc1").unwrap();
        let err = format!("{:#}", find(&[dir.path()]).unwrap_err());
        assert!(err.contains(FILE) && err.contains("move it aside"), "{err}");
    }
}
