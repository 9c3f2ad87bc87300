//! Everything a start, a reload (SIGHUP) or `--check` loads, in one place, so the three
//! judge a configuration the same way: `config.toml`, the key files, `[key_commands]`,
//! the replay floor file and the listening address.

use std::path::Path;

use anyhow::Context;
use ruroco_config::Config;
use ruroco_proto::{KeyId, Keyring, Policy};

use crate::allow::AllowList;
use crate::floors::FloorStore;
use crate::keys;
use crate::original_floors;
use crate::shared_floors::SharedFloors;
use crate::socket;
use ruroco_fs::access;

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
    load_with(path, true)
}

/// What a reload (and `--check`) reads: like [`load`] without the floor store, which a reload keeps
/// (changing `floor_store` takes a restart): no name lookup or connection, so a key
/// deleted to revoke it is gone at the reload even while the store's name does not
/// resolve.
pub(crate) fn load_for_reload(path: &Path) -> anyhow::Result<Settings> {
    load_with(path, false)
}

fn load_with(path: &Path, with_store: bool) -> anyhow::Result<Settings> {
    let mut config = Config::load(path)?;
    let ips = config.required_ips(path)?.to_vec();
    let loaded = keys::load_keys(&config.config_dir)?;
    let (allow, warnings) = AllowList::build(&config.key_commands, &loaded.names, path);
    config.warnings.extend(warnings);
    let shared = if with_store {
        shared_floors(&config, path)?
    } else {
        None
    };
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
    let (_, key_problems) = keys::scan_keys(&config.config_dir);
    problems.extend(key_problems.iter().map(|e| format!("{e:#}")));
    problems.extend(server_user_problems(&config));
    if config.floor_store != "file" {
        if let Err(e) = SharedFloors::check(
            &config.floor_store,
            config.floor_store_user.as_deref(),
            config.floor_store_password_file.as_deref(),
        ) {
            problems.push(format!("invalid config file {}: {e:#}", path.display()));
        }
    }
    if let Err(e) = FloorStore::load(config.blocklist_dir()) {
        problems.push(format!("{e:#}"));
    }
    let dirs = original_floors::dirs(config.blocklist_dir(), &config.config_dir);
    if let Err(e) = original_floors::find(&dirs) {
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
    problems.extend(config.metrics_dir_problem(path));
    problems.extend(metrics_problem(&config));
    problems
}

/// The directory, made by the package's tmpfiles.d and writable under the shipped unit,
/// where the server keeps its metrics file when node_exporter's directory is root's.
pub(crate) const OWN_METRICS_DIR: &str = "/var/lib/ruroco-metrics";

/// The server's metrics file in `dir`: a link there is followed only where root made it
/// and it points into [`OWN_METRICS_DIR`].
pub(crate) fn metrics_file(dir: &Path) -> ruroco_metrics::MetricsFile {
    ruroco_metrics::MetricsFile::new(dir, "ruroco-server")
        .through_link_into(Path::new(OWN_METRICS_DIR))
}

/// A metrics file the server could not write: `metrics_dir` (or the directory its
/// `ruroco-server.prom` link points into) must be writable by the server's user — asked of
/// that user when `--check` runs as root for it, of this process otherwise (under the
/// shipped unit, with its read-only file system).
pub(crate) fn metrics_problem(config: &Config) -> Option<String> {
    let dir = config.metrics_dir.as_deref().filter(|d| d.is_dir())?;
    let file = metrics_file(dir);
    let destination = match file.destination() {
        Ok(destination) => destination,
        Err(e) => return Some(format!("metrics_dir {}: {e}", dir.display())),
    };
    let target_dir = destination.parent()?;
    let own = nix::unistd::geteuid();
    let who = (own.is_root() && !config.socket_user.is_empty())
        .then(|| access::Who::lookup(&config.socket_user))
        .flatten()
        .filter(|who| who.uid != own.as_raw());
    let (writable, user) = match &who {
        Some(who) => (
            access::may_path(who, target_dir, access::Want::Write),
            who.name.clone(),
        ),
        None => (
            nix::unistd::access(target_dir, nix::unistd::AccessFlags::W_OK).is_ok(),
            nix::unistd::User::from_uid(own)
                .ok()
                .flatten()
                .map_or_else(|| own.to_string(), |u| u.name),
        ),
    };
    if writable {
        return None;
    }
    let link = file.path();
    Some(if destination == link {
        format!(
            "metrics_dir {}: the server's user `{user}` cannot write there, so ruroco-server.prom would never appear; give the server a file of its own (the package makes {OWN_METRICS_DIR}, which the shipped unit may write): ln -s {OWN_METRICS_DIR}/ruroco-server.prom {}",
            dir.display(),
            link.display()
        )
    } else {
        format!(
            "metrics_dir {}: ruroco-server.prom links to {}, but the server's user `{user}` cannot write {}; install -d -o {user} -g {user} -m 0755 {}",
            dir.display(),
            destination.display(),
            target_dir.display(),
            target_dir.display()
        )
    })
}

/// Whether `dir` holds what root's commander reads (config.toml, commands.toml or key
/// files): the server must never be given write access to it.
fn holds_roots_files(config: &Config, dir: &Path) -> bool {
    let same = |a: &Path, b: &Path| match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    };
    same(dir, &config.config_dir)
        || dir.join("config.toml").exists()
        || dir.join("commands.toml").exists()
}

/// The advice for a floor directory the server cannot use: where it also holds root's
/// files (the released layout keeps floors beside config.toml), a directory of its own.
fn own_floor_dir_advice(user: &str) -> String {
    format!(
        "it also holds config.toml (which names the commands root runs) and the keys, so never let the server write there: set blocklist_dir = \"/var/lib/ruroco\" in config.toml and install -d -o {user} -g {user} -m 0700 /var/lib/ruroco (the original's blocklist.msgpck is still read from the config directory)"
    )
}

/// A floor directory that does not exist, and how to make it.
pub(crate) fn floor_dir_problem(config: &Config) -> Option<String> {
    let dir = config.blocklist_dir();
    (!dir.is_dir()).then(|| {
        format!(
            "replay floor directory {} does not exist (config key blocklist_dir): the shipped unit's StateDirectory= makes it; without systemd: install -d -o {user} -g {user} -m 0700 {}",
            dir.display(),
            dir.display(),
            user = if config.socket_user.is_empty() { "ruroco" } else { &config.socket_user }
        )
    })
}

/// What the server's own user (`socket_user`, the user the shipped unit runs the server
/// as) could not do that a start needs: read each key file, write the floor directory.
/// Only answerable, and only asked, when `--check` runs as root for another user; the
/// floor directory must exist in any case.
fn server_user_problems(config: &Config) -> Vec<String> {
    let mut problems: Vec<String> = floor_dir_problem(config).into_iter().collect();
    let dir = config.blocklist_dir();
    let own = nix::unistd::geteuid();
    if !own.is_root() || config.socket_user.is_empty() {
        return problems;
    }
    let Some(who) = access::Who::lookup(&config.socket_user) else {
        return problems;
    };
    if who.uid == own.as_raw() {
        return problems;
    }
    if let Ok(entries) = std::fs::read_dir(&config.config_dir) {
        let mut keys: Vec<_> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "key"))
            .collect();
        keys.sort();
        for key in keys {
            if !access::may_path(&who, &key, access::Want::Read) {
                problems.push(format!(
                    "key file {}: the server's user `{}` cannot read it (the server runs as that user); chgrp {} {} && chmod 0640 {}",
                    key.display(),
                    who.name,
                    who.name,
                    key.display(),
                    key.display()
                ));
            }
        }
    }
    for dir in original_floors::dirs(config.blocklist_dir(), &config.config_dir) {
        let original = dir.join(original_floors::FILE);
        if original.exists() && !access::may_path(&who, &original, access::Want::Read) {
            let group = who
                .gids
                .first()
                .and_then(|g| nix::unistd::Group::from_gid((*g).into()).ok().flatten())
                .map_or_else(|| who.name.clone(), |g| g.name);
            problems.push(format!(
                "the original ruroco's replay floors {}: the server's user `{}` cannot read them, and a start needs them; chgrp {group} {} && chmod 0640 {}",
                original.display(),
                who.name,
                original.display(),
                original.display()
            ));
        }
    }
    if dir.is_dir() && !access::may_path(&who, dir, access::Want::Write) {
        if holds_roots_files(config, dir) {
            problems.push(format!(
                "replay floor directory {}: the server's user `{}` cannot write it, and {}",
                dir.display(),
                who.name,
                own_floor_dir_advice(&who.name)
            ));
        } else {
            problems.push(format!(
                "replay floor directory {}: the server's user `{}` cannot write it; chown {} {}",
                dir.display(),
                who.name,
                who.name,
                dir.display()
            ));
        }
    }
    problems
}

/// Warnings for `ips` that are documentation addresses (the packaged placeholders): every
/// datagram for the real address would be refused as `dst_ip`.
pub(crate) fn placeholder_ips(config: &Config) -> Option<String> {
    let ips = config.ips.as_ref()?;
    let placeholder = |ip: &std::net::IpAddr| match ip {
        std::net::IpAddr::V4(v4) => v4.is_documentation(),
        std::net::IpAddr::V6(v6) => {
            let s = v6.segments();
            s.first() == Some(&0x2001) && s.get(1) == Some(&0x0db8)
        }
    };
    let found: Vec<String> = ips
        .iter()
        .filter(|ip| placeholder(ip))
        .map(ToString::to_string)
        .collect();
    (!found.is_empty()).then(|| {
        format!(
            "`ips` lists documentation addresses ({}): put this server's public addresses there, or every datagram is refused as dst_ip",
            found.join(", ")
        )
    })
}

/// What `--check` says besides OK about the kernel filter: whether the key-id program
/// fits a socket here (tried on a scratch socket).
pub(crate) fn filter_note(config: &Config, keys: &Keyring) -> Option<String> {
    if !config.kernel_filter {
        return None;
    }
    let ids = crate::kernel_filter::sorted_ids(keys);
    crate::kernel_filter::fits(&ids, config.accept_v0)
        .err()
        .map(|e| {
            format!(
                "warning: {}",
                crate::kernel_filter::does_not_fit(ids.len(), &e)
            )
        })
}

/// What `--check` says besides OK about the floor store's name: a warning when it does
/// not resolve now (a start would fail; a running server and its reloads go on).
pub(crate) fn store_note(config: &Config) -> Option<String> {
    if config.floor_store == "file" {
        return None;
    }
    let endpoint = crate::redis::Endpoint::parse(&config.floor_store).ok()?;
    endpoint.resolve().err().map(|e| {
        format!(
            "warning: key `floor_store`: {endpoint} does not resolve now ({e}): a start would fail until it does; a running server keeps the addresses it resolved at start, and a reload reads keys without it"
        )
    })
}

/// What `--check` says besides OK: the floors a start would carry over from the original.
pub(crate) fn check_notes(config: &Config) -> Vec<String> {
    let dirs = original_floors::dirs(config.blocklist_dir(), &config.config_dir);
    let (Ok(Some(carried)), Ok(ours)) = (
        original_floors::find(&dirs),
        FloorStore::load(config.blocklist_dir()),
    ) else {
        return Vec::new();
    };
    if original_floors::due(&carried, config.blocklist_dir()) {
        vec![original_floors::describe(&carried, ours.table())]
    } else {
        vec![format!(
            "warning: {}",
            original_floors::stale_warning(&carried.path, config.blocklist_dir())
        )]
    }
}

/// The Redis store `floor_store` names, or `None` for `"file"`; errors name the file.
pub(crate) fn shared_floors(config: &Config, path: &Path) -> anyhow::Result<Option<SharedFloors>> {
    if config.floor_store == "file" {
        return Ok(None);
    }
    SharedFloors::new(
        &config.floor_store,
        config.floor_store_user.as_deref(),
        config.floor_store_password_file.as_deref(),
        std::time::Duration::from_millis(config.floor_store_timeout_ms),
        config.floor_store_min_replicas,
        std::time::Duration::from_secs(config.max_clock_skew_seconds),
    )
    .map(Some)
    .with_context(|| format!("invalid config file {}", path.display()))
}

/// Settings a reload cannot change (they name what the running process holds open: the
/// floor file, the commander socket, the UDP socket, the metrics file, the floor store).
/// Each that differs in `new` is put back to its `running` value and reported as
/// (config key, running value, value in the file).
pub(crate) fn keep_fixed(
    running: &Config,
    new: &mut Config,
) -> Vec<(&'static str, String, String)> {
    let show = |c: &Config| {
        [
            ("blocklist_dir", c.blocklist_dir().display().to_string()),
            ("socket_dir", c.socket_path().display().to_string()),
            ("address", c.address.clone().unwrap_or_default()),
            (
                "metrics_dir",
                c.metrics_dir
                    .as_ref()
                    .map(|d| d.display().to_string())
                    .unwrap_or_default(),
            ),
            ("floor_store", c.floor_store.clone()),
            (
                "floor_store_password_file",
                c.floor_store_password_file
                    .as_ref()
                    .map(|f| f.display().to_string())
                    .unwrap_or_default(),
            ),
            (
                "floor_store_timeout_ms",
                c.floor_store_timeout_ms.to_string(),
            ),
            (
                "floor_store_user",
                c.floor_store_user.clone().unwrap_or_default(),
            ),
            (
                "floor_store_min_replicas",
                c.floor_store_min_replicas.to_string(),
            ),
        ]
    };
    let changed = show(running)
        .into_iter()
        .zip(show(new))
        .filter(|((_, a), (_, b))| a != b)
        .map(|((key, a), (_, b))| (key, a, b))
        .collect();
    new.blocklist_dir.clone_from(&running.blocklist_dir);
    new.socket_dir.clone_from(&running.socket_dir);
    new.address.clone_from(&running.address);
    new.metrics_dir.clone_from(&running.metrics_dir);
    new.floor_store.clone_from(&running.floor_store);
    new.floor_store_password_file
        .clone_from(&running.floor_store_password_file);
    new.floor_store_timeout_ms = running.floor_store_timeout_ms;
    new.floor_store_user.clone_from(&running.floor_store_user);
    new.floor_store_min_replicas = running.floor_store_min_replicas;
    changed
}

/// Key ids in `new` that are not in `old`, and those in `old` gone from `new`.
pub(crate) fn key_changes(old: &Keyring, new: &Keyring) -> (Vec<KeyId>, Vec<KeyId>) {
    let added: Vec<KeyId> = new.ids().filter(|id| old.get(id).is_none()).collect();
    let gone: Vec<KeyId> = old.ids().filter(|id| new.get(id).is_none()).collect();
    (added, gone)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        Config::parse(text, Path::new("/c/config.toml")).unwrap()
    }

    #[test]
    fn a_reload_keeps_what_the_process_holds_open_and_says_so() {
        let running = config("ips = [\"192.0.2.1\"]\nblocklist_dir = \"/a\"\n");
        let mut new = config(
            "ips = [\"192.0.2.2\"]\nblocklist_dir = \"/b\"\nfloor_store = \"redis://r/0\"\n",
        );
        let changed = keep_fixed(&running, &mut new);
        let keys: Vec<&str> = changed.iter().map(|(k, _, _)| *k).collect();
        assert_eq!(keys, ["blocklist_dir", "floor_store"]);
        assert_eq!(changed[0].1, "/a");
        assert_eq!(new.blocklist_dir(), Path::new("/a"));
        assert_eq!(new.floor_store, "file");
        // What a reload may change is taken from the file.
        assert_eq!(new.ips, Some(vec!["192.0.2.2".parse().unwrap()]));
        // A second reload of the same file reports the same difference again.
        let mut again = config(
            "ips = [\"192.0.2.2\"]\nblocklist_dir = \"/b\"\nfloor_store = \"redis://r/0\"\n",
        );
        assert_eq!(keep_fixed(&new, &mut again).len(), 2);
    }
}
