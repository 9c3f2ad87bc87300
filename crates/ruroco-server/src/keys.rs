//! Loading the keys: every regular file `*.key` in `config_dir`.

use std::collections::HashMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use ruroco_proto::{Key, KeyId, Keyring};
use zeroize::Zeroizing;

/// The loaded keys and their names (file name without `.key`).
pub(crate) struct LoadedKeys {
    pub(crate) ring: Keyring,
    pub(crate) names: HashMap<String, KeyId>,
}

/// Loads all keys of `dir`. Zero keys, an unreadable directory or file, an invalid key
/// or two files holding the same key are errors naming the path.
pub(crate) fn load_keys(dir: &Path) -> anyhow::Result<LoadedKeys> {
    let (keys, problems) = scan_keys(dir);
    match problems.into_iter().next() {
        Some(problem) => Err(problem),
        None => keys,
    }
}

/// Like [`load_keys`], but goes on past a bad file: the keys (or the error that stops
/// everything) and every problem found, for `--check`.
pub(crate) fn scan_keys(dir: &Path) -> (anyhow::Result<LoadedKeys>, Vec<anyhow::Error>) {
    let mut problems = Vec::new();
    match scan(dir, &mut problems) {
        Ok(keys) => (Ok(keys), problems),
        Err(e) => (Err(anyhow::anyhow!("{e:#}")), {
            problems.push(e);
            problems
        }),
    }
}

/// Per-key lines logged at once (loaded, added or removed keys, mode warnings); the rest
/// are counted in one line, so 100,000 keys never make 100,000 lines.
const PER_KEY_LINES: usize = 10;

/// Logs "`what` ID" for the first [`PER_KEY_LINES`] of `ids` (by id), and how many more.
pub(crate) fn log_ids(what: &str, ids: &[KeyId]) {
    let mut sorted = ids.to_vec();
    sorted.sort_unstable();
    for id in sorted.iter().take(PER_KEY_LINES) {
        tracing::info!("{what} {id}");
    }
    if sorted.len() > PER_KEY_LINES {
        tracing::info!("… and {} more {what}s", sorted.len() - PER_KEY_LINES);
    }
}

fn scan(dir: &Path, problems: &mut Vec<anyhow::Error>) -> anyhow::Result<LoadedKeys> {
    scan_files(dir, problems, MAX_KEY_FILES)
}

fn scan_files(
    dir: &Path,
    problems: &mut Vec<anyhow::Error>,
    max_files: usize,
) -> anyhow::Result<LoadedKeys> {
    let mut paths = Vec::new();
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read key directory {}", dir.display()))?;
    for entry in entries {
        let entry =
            entry.with_context(|| format!("cannot read key directory {}", dir.display()))?;
        let path = entry.path();
        if path.extension().is_none_or(|ext| ext != "key") {
            continue;
        }
        // The directory entry's type, without a stat per file; a link is followed.
        let is_file = match entry.file_type() {
            Ok(t) if t.is_symlink() => path.is_file(),
            Ok(t) => t.is_file(),
            Err(_) => path.is_file(),
        };
        if is_file {
            if paths.len() >= max_files {
                bail!(
                    "key directory {} holds more than {max_files} key files (*.key); not loading any: remove what is not a client's key",
                    dir.display()
                );
            }
            paths.push(path);
        }
    }
    paths.sort();
    if paths.is_empty() {
        bail!(
            "no key files (*.key) in {}; create one with `ruroco-client gen`",
            dir.display()
        );
    }
    let mut keys = Keyring::new();
    let mut origin: HashMap<KeyId, PathBuf> = HashMap::new();
    let mut names = HashMap::new();
    let mut mode_warnings = 0;
    for path in paths {
        let key = match read_key(&path) {
            Ok((key, warning)) => {
                if let Some(warning) = warning {
                    if mode_warnings < PER_KEY_LINES {
                        tracing::warn!("{warning}");
                    }
                    mode_warnings += 1;
                }
                key
            }
            Err(e) => {
                problems.push(e);
                continue;
            }
        };
        let id = key.id();
        if let Err(clash) = keys.insert(key) {
            let other = origin
                .get(&clash)
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            problems.push(anyhow::anyhow!(
                "key file {} holds the same key (or key id) as {other}",
                path.display()
            ));
            continue;
        }
        if let Some(stem) = path.file_stem().and_then(|s| s.to_str()) {
            names.insert(stem.to_owned(), id);
        }
        origin.insert(id, path);
    }
    if mode_warnings > PER_KEY_LINES {
        tracing::warn!(
            "… and {} more key files with a mode like those above",
            mode_warnings - PER_KEY_LINES
        );
    }
    Ok(LoadedKeys { ring: keys, names })
}

/// More key files than this in one directory is not a set of clients: refused by name
/// before any is read (a million keys would hold some 400 MB).
const MAX_KEY_FILES: usize = 500_000;

/// A key file is one line of 56 characters; anything much larger is not a key, and is
/// refused without being read whole.
const MAX_KEY_FILE: u64 = 4096;

/// The key of `path`, and what is wrong with the file's mode, if anything.
fn read_key(path: &Path) -> anyhow::Result<(Key, Option<String>)> {
    use std::io::Read;
    let file = std::fs::File::open(path)
        .with_context(|| format!("cannot read key file {}", path.display()))?;
    let mut bytes = Zeroizing::new(Vec::with_capacity(64));
    (&file)
        .take(MAX_KEY_FILE + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read key file {}", path.display()))?;
    if bytes.len() as u64 > MAX_KEY_FILE {
        bail!(
            "invalid key file {}: larger than {MAX_KEY_FILE} bytes, so not a key (one is a line of 56 characters)",
            path.display()
        );
    }
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| anyhow::anyhow!("invalid key file {}: not text", path.display()))?;
    let key = Key::parse(text).with_context(|| format!("invalid key file {}", path.display()))?;
    let warning = file.metadata().ok().and_then(|meta| {
        // Run as root (`--check`, a test), this process is not the server's user: its
        // group cannot be told, so only "others" and group-write are judged (`--check`
        // says separately whether the server's user can read the key).
        let server_gid = if nix::unistd::geteuid().is_root() {
            meta.gid()
        } else {
            nix::unistd::getegid().as_raw()
        };
        mode_problem(meta.permissions().mode(), meta.gid(), server_gid)
            .map(|problem| format!("key file {}: {problem}", path.display()))
    });
    Ok((key, warning))
}

/// What is wrong with a key file's mode, if anything. The packaged layout is 0640
/// root:<the server's group>: the group may read it, because the server runs as that
/// group; a group that is neither root's nor the server's must not, nobody else may, and
/// no group may write it.
pub(crate) fn mode_problem(mode: u32, file_gid: u32, server_gid: u32) -> Option<String> {
    let fix = "chmod 0640 it, group root or the server's group";
    if mode & 0o007 != 0 {
        return Some(format!(
            "mode {:04o} lets every local user at it; {fix}",
            mode & 0o7777
        ));
    }
    if mode & 0o020 != 0 {
        return Some(format!(
            "mode {:04o} lets its group (gid {file_gid}) replace it; {fix}",
            mode & 0o7777
        ));
    }
    if mode & 0o070 != 0 && file_gid != 0 && file_gid != server_gid {
        return Some(format!(
            "its group (gid {file_gid}) may read it but is neither root's nor the server's (gid {server_gid}); {fix}"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::{mode_problem, scan_files};

    #[test]
    fn the_packaged_layout_is_quiet_and_real_exposure_is_named() {
        let server = 998;
        // 0600 and 0640 root:ruroco, 0640 root:root: fine.
        for (mode, gid) in [(0o600, 0), (0o640, server), (0o640, 0), (0o400, 0)] {
            assert_eq!(mode_problem(0o100000 | mode, gid, server), None, "{mode:o}");
        }
        let other = mode_problem(0o100644, server, server).unwrap();
        assert!(
            other.contains("0644") && other.contains("every local user"),
            "{other}"
        );
        let write = mode_problem(0o100660, server, server).unwrap();
        assert!(write.contains("replace"), "{write}");
        let foreign = mode_problem(0o100640, 100, server).unwrap();
        assert!(
            foreign.contains("gid 100") && foreign.contains("gid 998"),
            "{foreign}"
        );
    }

    #[test]
    fn more_key_files_than_the_bound_are_refused_by_directory() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..4 {
            let key = ruroco_proto::Key::generate().unwrap();
            std::fs::write(
                dir.path().join(format!("k{i}.key")),
                key.to_key_string().as_bytes(),
            )
            .unwrap();
        }
        let mut problems = Vec::new();
        let err = scan_files(dir.path(), &mut problems, 3)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("more than 3 key files"), "{err}");
        assert!(scan_files(dir.path(), &mut problems, 4).is_ok());
    }
}
