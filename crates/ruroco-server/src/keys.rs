//! Loading the keys: every regular file `*.key` in `config_dir`.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
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

fn scan(dir: &Path, problems: &mut Vec<anyhow::Error>) -> anyhow::Result<LoadedKeys> {
    let mut paths = Vec::new();
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read key directory {}", dir.display()))?;
    for entry in entries {
        let entry =
            entry.with_context(|| format!("cannot read key directory {}", dir.display()))?;
        let path = entry.path();
        if path.extension().is_some_and(|ext| ext == "key") && path.is_file() {
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
    for path in paths {
        let key = match read_key(&path) {
            Ok(key) => key,
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
    Ok(LoadedKeys { ring: keys, names })
}

fn read_key(path: &Path) -> anyhow::Result<Key> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .with_context(|| format!("cannot read key file {}", path.display()))?,
    );
    let key = Key::parse(&text).with_context(|| format!("invalid key file {}", path.display()))?;
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(
                "key file {} is readable by others than its owner; chmod 600 it",
                path.display()
            );
        }
    }
    tracing::info!("loaded key {} from {}", key.id(), path.display());
    Ok(key)
}
