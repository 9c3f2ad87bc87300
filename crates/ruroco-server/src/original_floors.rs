//! Replay floors carried over from the original ruroco server, so that switching servers
//! touches no client. The original keeps each key's last accepted counter in
//! `blocklist.msgpck` (in its config directory): MessagePack, as `rmp-serde` writes the
//! struct `{ map: {[u8; 8] → u128}, path }`. Released clients count from a seed taken
//! once, far below "now"; without their floors every one of them would be a `replay`.
//!
//! Read with `rmp-serde`, the library that wrote it. At every start (and `--check`) the
//! values become floors where they are higher than ours — exactly them for keys we have
//! no floor for yet — so a client that was never reseeded keeps working and anything the
//! original accepted stays a replay. It is one-way: the original never reads our floors.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use ruroco_proto::KeyId;
use serde::Deserialize;

/// The original's file name.
pub(crate) const FILE: &str = "blocklist.msgpck";
/// Larger than any real file (24 bytes or so per key); a bigger one is refused unread.
const MAX_BYTES: u64 = 16 << 20;

/// The original's struct, field for field.
#[derive(Deserialize)]
struct Blocklist {
    map: HashMap<[u8; 8], u128>,
    #[allow(dead_code)]
    path: PathBuf,
}

/// Floors found in the original's file.
#[derive(Debug)]
pub(crate) struct Carried {
    pub(crate) path: PathBuf,
    pub(crate) floors: Vec<(KeyId, u128)>,
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

/// The original's file in the first of `dirs` that has one; `None` when none does. A
/// file that cannot be read is an error naming it and the way out.
pub(crate) fn find(dirs: &[&Path]) -> anyhow::Result<Option<Carried>> {
    for dir in dirs {
        let path = dir.join(FILE);
        let file = match std::fs::File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(refuse(&path, &e.to_string())),
        };
        let mut bytes = Vec::new();
        file.take(MAX_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| refuse(&path, &e.to_string()))?;
        if bytes.len() as u64 > MAX_BYTES {
            return Err(refuse(&path, &format!("larger than {MAX_BYTES} bytes")));
        }
        let floors = decode(&bytes).map_err(|e| refuse(&path, &e))?;
        return Ok(Some(Carried { path, floors }));
    }
    Ok(None)
}

fn refuse(path: &Path, why: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "cannot read the original ruroco's replay floors {}: {why}; not starting without them. \
         To start anyway, move it aside (mv {0} {0}.bak): every client of the original is then \
         refused as `replay` until it is reseeded",
        path.display()
    )
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
