//! Loading the keys: every regular file `*.key` in `config_dir`.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
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
    let mut names: Vec<OsString> = Vec::new();
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read key directory {}", dir.display()))?;
    for entry in entries {
        let entry =
            entry.with_context(|| format!("cannot read key directory {}", dir.display()))?;
        let name = entry.file_name();
        if !is_key_name(&name) {
            continue;
        }
        // The directory entry's type, without a stat per file; a link is followed.
        let is_file = match entry.file_type() {
            Ok(t) if !t.is_symlink() => t.is_file(),
            _ => entry.path().is_file(),
        };
        if is_file {
            if names.len() >= max_files {
                bail!(
                    "key directory {} holds more than {max_files} key files (*.key); not loading any: remove what is not a client's key",
                    dir.display()
                );
            }
            names.push(name);
        }
    }
    if names.is_empty() {
        bail!(
            "no key files (*.key) in {}; create one with `ruroco-client gen`",
            dir.display()
        );
    }
    // By name, as bytes: one directory, so the order of the paths, without comparing
    // them component by component.
    names.sort_unstable();
    let paths: Vec<PathBuf> = names.iter().map(|name| dir.join(name)).collect();
    drop(names);
    let server_gid = server_gid();
    let read = read_all(&paths, server_gid);
    let mut keys = Keyring::new();
    let mut origin: HashMap<KeyId, usize> = HashMap::with_capacity(paths.len());
    let mut names = HashMap::with_capacity(paths.len());
    let mut mode_warnings = 0;
    for (i, (path, result)) in paths.iter().zip(read.into_iter().flatten()).enumerate() {
        let key = match result {
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
                .and_then(|&j| paths.get(j))
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
        origin.insert(id, i);
    }
    if mode_warnings > PER_KEY_LINES {
        tracing::warn!(
            "… and {} more key files with a mode like those above",
            mode_warnings - PER_KEY_LINES
        );
    }
    Ok(LoadedKeys { ring: keys, names })
}

/// Whether a directory entry's name ends in `.key` (and has something before it).
fn is_key_name(name: &OsStr) -> bool {
    let bytes = name.as_bytes();
    bytes.len() > ".key".len() && bytes.ends_with(b".key")
}

/// The group the key files must be readable by. Run as root (`--check`, a test), this
/// process is not the server's user: its group cannot be told, so only "others" and
/// group-write are judged (`--check` says separately whether the server's user can read
/// the key); `None` stands for "the file's own group".
fn server_gid() -> Option<u32> {
    if nix::unistd::geteuid().is_root() {
        None
    } else {
        Some(nix::unistd::getegid().as_raw())
    }
}

/// Below this many files one thread reads them all; above it, one thread per core (at
/// most [`MAX_READERS`]), each a contiguous share, in order. Opening and reading a file
/// is mostly system-call time, which the cores do side by side.
const READ_IN_PARALLEL_FROM: usize = 512;
const MAX_READERS: usize = 8;

/// What [`read_key`] gives for each of a share of the paths.
type Share = Vec<anyhow::Result<(Key, Option<String>)>>;

/// [`read_key`] of every path, in the order of `paths`, one [`Share`] per reader (kept
/// apart, so that each is freed as soon as it has been taken in, not copied into one).
fn read_all(paths: &[PathBuf], server_gid: Option<u32>) -> Vec<Share> {
    let read_share =
        |share: &[PathBuf]| -> Vec<_> { share.iter().map(|p| read_key(p, server_gid)).collect() };
    let readers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(MAX_READERS);
    if paths.len() < READ_IN_PARALLEL_FROM || readers < 2 {
        return vec![read_share(paths)];
    }
    let share = paths.len().div_ceil(readers);
    std::thread::scope(|scope| {
        let started: Vec<_> = paths
            .chunks(share)
            .map(|chunk| {
                let handle = std::thread::Builder::new()
                    .name("key-reader".to_owned())
                    .spawn_scoped(scope, move || read_share(chunk));
                (chunk, handle)
            })
            .collect();
        started
            .into_iter()
            .map(|(chunk, handle)| {
                // A reader that could not be started (or failed) leaves its share to
                // this thread.
                match handle.ok().map(std::thread::ScopedJoinHandle::join) {
                    Some(Ok(read)) => read,
                    _ => read_share(chunk),
                }
            })
            .collect()
    })
}

/// More key files than this in one directory is not a set of clients: refused by name
/// before any is read (a million keys would hold some 400 MB).
const MAX_KEY_FILES: usize = 500_000;

/// A key file is one line of 56 characters; anything much larger is not a key, and is
/// refused without being read.
const MAX_KEY_FILE: u64 = 4096;

/// The key of `path`, and what is wrong with the file's mode, if anything. One `open`,
/// one `fstat`, one `read` and one `close` for a key file that is what its size says.
fn read_key(path: &Path, server_gid: Option<u32>) -> anyhow::Result<(Key, Option<String>)> {
    let cannot_read = || format!("cannot read key file {}", path.display());
    let mut file = std::fs::File::open(path).with_context(cannot_read)?;
    let meta = file.metadata().with_context(cannot_read)?;
    let too_large = || {
        anyhow::anyhow!(
            "invalid key file {}: larger than {MAX_KEY_FILE} bytes, so not a key (one is a line of 56 characters)",
            path.display()
        )
    };
    if meta.len() > MAX_KEY_FILE {
        return Err(too_large());
    }
    let bytes = read_bounded(&mut file, meta.len()).with_context(cannot_read)?;
    if bytes.len() as u64 > MAX_KEY_FILE {
        return Err(too_large());
    }
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| anyhow::anyhow!("invalid key file {}: not text", path.display()))?;
    let key = Key::parse(text).with_context(|| format!("invalid key file {}", path.display()))?;
    let warning = mode_problem(
        meta.permissions().mode(),
        meta.gid(),
        server_gid.unwrap_or(meta.gid()),
    )
    .map(|problem| format!("key file {}: {problem}", path.display()));
    Ok((key, warning))
}

/// Room for the largest key file allowed and one byte more, to tell it was larger.
const KEY_FILE_BUF: usize = MAX_KEY_FILE as usize + 1;

/// What `file` holds, at most [`KEY_FILE_BUF`] bytes (more means "too large"), read with
/// one `read` when `size` (its `fstat` size) is right: a key's 57 bytes, not 4 KiB to
/// fill and wipe for each of 100,000 keys. A file that grew after `size` was taken is read
/// on to the bound; one that shrank ends where it ends.
fn read_bounded(file: &mut impl std::io::Read, size: u64) -> std::io::Result<Zeroizing<Vec<u8>>> {
    let room = usize::try_from(size)
        .map_or(KEY_FILE_BUF, |len| len.saturating_add(1))
        .min(KEY_FILE_BUF);
    let mut buf = Zeroizing::new(vec![0u8; room]);
    let mut filled = 0;
    loop {
        let Some(rest) = buf.get_mut(filled..).filter(|rest| !rest.is_empty()) else {
            if filled >= KEY_FILE_BUF {
                break;
            }
            // A new buffer, not a resize: the old one is wiped as it goes.
            let mut bigger = Zeroizing::new(vec![0u8; KEY_FILE_BUF]);
            if let (Some(to), Some(from)) = (bigger.get_mut(..filled), buf.get(..filled)) {
                to.copy_from_slice(from);
            }
            buf = bigger;
            continue;
        };
        let n = match file.read(rest) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        filled += n;
        if n == 0 || filled as u64 == size {
            break;
        }
    }
    buf.truncate(filled);
    Ok(buf)
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
    use super::{mode_problem, read_bounded, scan_files, KEY_FILE_BUF, READ_IN_PARALLEL_FROM};

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

    /// Counts the `read` calls made on what it wraps; the first one may be interrupted.
    struct Reads<R> {
        inner: R,
        calls: usize,
        interrupt_first: bool,
    }

    impl<R: std::io::Read> std::io::Read for Reads<R> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.calls += 1;
            if self.interrupt_first && self.calls == 1 {
                return Err(std::io::ErrorKind::Interrupted.into());
            }
            self.inner.read(buf)
        }
    }

    fn reads<R>(inner: R) -> Reads<R> {
        Reads {
            inner,
            calls: 0,
            interrupt_first: false,
        }
    }

    #[test]
    fn a_key_file_of_the_size_it_says_is_read_with_one_read() {
        let text = [b'A'; 57];
        let mut file = reads(&text[..]);
        let got = read_bounded(&mut file, 57).unwrap();
        assert_eq!(got.as_slice(), &text[..]);
        assert_eq!(file.calls, 1);
    }

    #[test]
    fn a_file_that_grew_or_shrank_after_its_size_was_taken_is_read_as_it_is() {
        let grown = [b'B'; 100];
        assert_eq!(read_bounded(&mut reads(&grown[..]), 57).unwrap().len(), 100);
        let shrunk = [b'C'; 10];
        assert_eq!(read_bounded(&mut reads(&shrunk[..]), 57).unwrap().len(), 10);
        let mut interrupted = Reads {
            inner: &shrunk[..],
            calls: 0,
            interrupt_first: true,
        };
        assert_eq!(read_bounded(&mut interrupted, 10).unwrap().len(), 10);
    }

    #[test]
    fn an_endless_file_is_read_to_the_bound_and_no_further() {
        // Size 0 and no end, like a file in /proc or a device behind a link.
        let mut endless = reads(std::io::repeat(b'x'));
        let got = read_bounded(&mut endless, 0).unwrap();
        assert_eq!(got.len(), KEY_FILE_BUF);
        assert!(endless.calls <= 3, "{} reads", endless.calls);
    }

    /// Enough files to be read by several threads: every name still maps to its own key,
    /// and a duplicate is reported against the file before it in name order.
    #[test]
    fn keys_read_side_by_side_keep_their_names_and_order() {
        let dir = tempfile::tempdir().unwrap();
        let n = READ_IN_PARALLEL_FROM * 2 + 7;
        let mut ids = std::collections::HashMap::new();
        let mut last = None;
        for i in 0..n {
            let key = ruroco_proto::Key::generate().unwrap();
            std::fs::write(
                dir.path().join(format!("k{i:05}.key")),
                key.to_key_string().as_bytes(),
            )
            .unwrap();
            ids.insert(format!("k{i:05}"), key.id());
            last = Some(key);
        }
        // The same key once more, under a name sorted after the original.
        let copy = last.unwrap().to_key_string();
        std::fs::write(dir.path().join("z-copy.key"), copy.as_bytes()).unwrap();
        let mut problems = Vec::new();
        let loaded = scan_files(dir.path(), &mut problems, 1_000_000).unwrap();
        assert_eq!(loaded.names.len(), n);
        for (name, id) in &ids {
            assert_eq!(loaded.names.get(name), Some(id), "{name}");
        }
        let problem = problems
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join("\n");
        assert!(
            problem.contains("z-copy.key holds the same key")
                && problem.contains(&format!("k{:05}.key", n - 1)),
            "{problem}"
        );
    }
}
