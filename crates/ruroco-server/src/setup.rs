//! Everything a start, a reload (SIGHUP) or `--check` loads, in one place, so the three
//! judge a configuration the same way: `config.toml`, the key files, `[key_commands]`,
//! the replay floor file and the listening address.

use std::path::{Path, PathBuf};

use anyhow::Context;
use ruroco_config::Config;
use ruroco_proto::{KeyId, Keyring, Policy};

use crate::allow::AllowList;
use crate::floors::FloorStore;
use crate::keys;
use crate::shared_floors::SharedFloors;
use crate::socket;

/// What a start or reload runs with.
pub(crate) struct Settings {
    /// The Redis floor store, when `floor_store` names one.
    pub(crate) shared: Option<SharedFloors>,
    pub(crate) config: Config,
    pub(crate) keys: Keyring,
    pub(crate) allow: AllowList,
    pub(crate) policy: Policy,
}

/// Loads `config.toml` at `path` and what it points to; the first problem is the error.
pub(crate) fn load(path: &Path) -> anyhow::Result<Settings> {
    let config = Config::load(path)?;
    let ips = config.required_ips(path)?.to_vec();
    let loaded = keys::load_keys(&config.config_dir)?;
    let allow = AllowList::build(&config.key_commands, &loaded.names, path)?;
    let shared = shared_floors(&config, path)?;
    let policy = Policy {
        ips,
        max_clock_skew_secs: config.max_clock_skew_seconds,
        accept_v0: config.accept_v0,
    };
    Ok(Settings {
        shared,
        keys: loaded.ring,
        allow,
        policy,
        config,
    })
}

/// `ruroco-server --check`: every problem a start would stop at, one line each (empty
/// when there is none), without binding anything or writing any file.
pub(crate) fn check(path: &Path, address: Option<String>) -> Vec<String> {
    let config = match Config::load(path) {
        Ok(config) => config,
        Err(e) => return vec![e.to_string()],
    };
    let mut problems = Vec::new();
    if let Err(e) = config.required_ips(path) {
        problems.push(e.to_string());
    }
    let (loaded, key_problems) = keys::scan_keys(&config.config_dir);
    problems.extend(key_problems.iter().map(|e| format!("{e:#}")));
    if let Ok(loaded) = loaded {
        if let Err(e) = AllowList::build(&config.key_commands, &loaded.names, path) {
            problems.push(format!("{e:#}"));
        }
    }
    if let Err(e) = shared_floors(&config, path) {
        problems.push(format!("{e:#}"));
    }
    if let Err(e) = FloorStore::load(config.blocklist_dir()) {
        problems.push(format!("{e:#}"));
    }
    let source = socket::resolve(
        address,
        socket::SocketEnv::from_process(),
        std::process::id(),
        config.address.clone(),
    );
    if let Err(e) = source.and_then(|s| socket::check(&s)) {
        problems.push(format!("{e:#}"));
    }
    if let Some(dir) = &config.metrics_dir {
        if !dir.is_dir() {
            problems.push(format!(
                "invalid config file {}: key `metrics_dir`: {} is not a directory",
                path.display(),
                dir.display()
            ));
        }
    }
    problems
}

/// The Redis store `floor_store` names, or `None` for `"file"`; errors name the file.
pub(crate) fn shared_floors(config: &Config, path: &Path) -> anyhow::Result<Option<SharedFloors>> {
    if config.floor_store == "file" {
        return Ok(None);
    }
    SharedFloors::new(
        &config.floor_store,
        config.floor_store_password_file.as_deref(),
        std::time::Duration::from_millis(config.floor_store_timeout_ms),
    )
    .map(Some)
    .with_context(|| format!("invalid config file {}", path.display()))
}

/// Settings a reload cannot change (they name what the running process holds open), as
/// (config key, old, new) when they differ.
pub(crate) fn fixed_changes(old: &Config, new: &Config) -> Vec<(&'static str, PathBuf, PathBuf)> {
    let mut changed = Vec::new();
    let pairs = [
        ("blocklist_dir", old.blocklist_dir(), new.blocklist_dir()),
        ("metrics_dir", opt(&old.metrics_dir), opt(&new.metrics_dir)),
    ];
    for (key, a, b) in pairs {
        if a != b {
            changed.push((key, a.to_owned(), b.to_owned()));
        }
    }
    let (a, b) = (old.socket_path(), new.socket_path());
    if a != b {
        changed.push(("socket_dir", a, b));
    }
    if old.floor_store != new.floor_store {
        changed.push((
            "floor_store",
            PathBuf::from(&old.floor_store),
            PathBuf::from(&new.floor_store),
        ));
    }
    if old.address != new.address {
        let show = |a: &Option<String>| PathBuf::from(a.clone().unwrap_or_default());
        changed.push(("address", show(&old.address), show(&new.address)));
    }
    changed
}

fn opt(p: &Option<PathBuf>) -> &Path {
    p.as_deref().unwrap_or(Path::new(""))
}

/// Key ids in `new` that are not in `old`, and the count of those gone.
pub(crate) fn key_changes(old: &Keyring, new: &Keyring) -> (Vec<KeyId>, usize) {
    let added: Vec<KeyId> = new.ids().filter(|id| old.get(id).is_none()).collect();
    let removed = old.ids().filter(|id| new.get(id).is_none()).count();
    (added, removed)
}
