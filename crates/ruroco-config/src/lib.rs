//! `config.toml`: one file, read by both the server and the commander.
//!
//! Each program uses its own keys and ignores the other's, but a key that neither knows is
//! an error naming it, so a typo is never silently ignored. Files of the released ruroco
//! 0.14.x also load: their `ntp` key is ignored and their `[commands]` table is the
//! commander's when there is no `commands.toml`; both produce [`Config::warnings`]. This crate only parses and
//! checks values; it never opens sockets and links no cryptography.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

mod completions;
pub mod fields;
mod locate;
mod logging;
mod service_manager;
mod time;
mod units;
pub use completions::{completion_file_name, write_completions, Shell};
pub use locate::line_of;
pub use logging::{init_logging, log_format, priority, LogFormat};
pub use service_manager::ServiceManager;
pub use time::utc;
pub use units::shadowing_units;

/// The programs' version: the package's, with `+LABEL` if `RUROCO_VERSION_LABEL` was set
/// at build time.
pub const VERSION: &str = env!("RUROCO_VERSION");
/// The version `--version` prints: the version, the git commit and the target.
pub const LONG_VERSION: &str = concat!(
    env!("RUROCO_VERSION"),
    " (commit ",
    env!("RUROCO_COMMIT"),
    ", ",
    env!("RUROCO_TARGET"),
    ")"
);
/// The git commit the programs were built from (`unknown` outside a checkout).
pub const COMMIT: &str = env!("RUROCO_COMMIT");
/// The target triple the programs were built for.
pub const TARGET: &str = env!("RUROCO_TARGET");

/// Where both programs look for `config.toml` unless told otherwise.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/ruroco/config.toml";
/// Default `config_dir`: keys, and by default the socket and the replay floors.
pub const DEFAULT_CONFIG_DIR: &str = "/etc/ruroco";
/// Default per-source limit, authenticated datagrams per second.
pub const DEFAULT_MAX_REQUESTS_PER_SECOND: u32 = 2;
/// Default limit for all sources together, authenticated datagrams per second.
pub const DEFAULT_MAX_REQUESTS_PER_SECOND_GLOBAL: u32 = 100;
/// Default allowed lead of a datagram's counter over the server clock.
pub const DEFAULT_MAX_CLOCK_SKEW_SECONDS: u64 = 3600;
/// Default owner and group of the commander's socket: the server's user.
pub const DEFAULT_SOCKET_OWNER: &str = "ruroco";
/// Default `state_dir` of the commander (the unit's `StateDirectory=`).
pub const DEFAULT_STATE_DIR: &str = "/var/lib/ruroco-commander";
/// Above this `max_clock_skew_seconds`, a shared floor store's fence (knocks refused
/// after a failover for that long) is warned about.
pub const FENCE_WARN_SECONDS: u64 = 60;
/// Upper bound for either rate limit: beyond it the limit is no limit.
pub const MAX_RATE_LIMIT: u32 = 100_000;

/// The whole file. Field names are the file's keys.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// This server's public addresses (required by the server).
    pub ips: Option<Vec<IpAddr>>,
    /// UDP address to bind when nothing more specific is given.
    pub address: Option<String>,
    /// Directory of the `*.key` files.
    #[serde(default = "default_config_dir")]
    pub config_dir: PathBuf,
    /// Directory of the replay floors (default: `config_dir`).
    pub blocklist_dir: Option<PathBuf>,
    /// Directory of the commander socket (default: `config_dir`).
    pub socket_dir: Option<PathBuf>,
    /// The commander's state directory: pending undos (default `/var/lib/ruroco-commander`).
    pub state_dir: Option<PathBuf>,
    /// Authenticated datagrams per second from one source.
    #[serde(default = "default_per_source")]
    pub max_requests_per_second: u32,
    /// Authenticated datagrams per second from all sources together.
    #[serde(default = "default_global")]
    pub max_requests_per_second_global: u32,
    /// How far ahead of the server clock a counter may be, in seconds.
    #[serde(default = "default_skew")]
    pub max_clock_skew_seconds: u64,
    /// Owner of the commander socket; empty leaves it unchanged.
    #[serde(default = "default_owner")]
    pub socket_user: String,
    /// Group of the commander socket; empty leaves it unchanged.
    #[serde(default = "default_owner")]
    pub socket_group: String,
    /// Whether the commander runs commands for non-routable client addresses; unset, the
    /// commander decides by layout (see `ruroco-commander`: yes where `[commands]` lives
    /// in this file, as the released ruroco did; no otherwise).
    #[serde(default)]
    pub allow_non_routable_ips: Option<bool>,
    /// Whether the server accepts the released 93-byte v0 format besides protocol v1.
    #[serde(default = "default_true")]
    pub accept_v0: bool,
    /// Whether the server attaches a socket filter that drops, in the kernel, every
    /// datagram that cannot be valid (wrong length or a key id not loaded).
    #[serde(default = "default_true")]
    pub kernel_filter: bool,
    /// Where each daemon writes its Prometheus metrics file (`ruroco-server.prom`,
    /// `ruroco-commander.prom`) for node_exporter's textfile collector; off when absent.
    pub metrics_dir: Option<PathBuf>,
    /// Where replay floors are kept: `"file"` (the default: `floors.bin` in
    /// `blocklist_dir`) or a Redis URL `redis://host:port/db` shared by several servers.
    #[serde(default = "default_floor_store")]
    pub floor_store: String,
    /// File holding the Redis password (never in the URL).
    pub floor_store_password_file: Option<PathBuf>,
    /// Redis ACL user to authenticate as (with the password of the file); the default
    /// user when absent.
    pub floor_store_user: Option<String>,
    /// Replicas that must hold a batch's floors (Redis `WAIT`) before any of it runs; 0
    /// waits for none.
    #[serde(default)]
    pub floor_store_min_replicas: u32,
    /// How long a Redis round trip may take before the batch is refused, ms.
    #[serde(default = "default_floor_store_timeout")]
    pub floor_store_timeout_ms: u64,
    /// The form of both daemons' log lines: `text` (the default; native entries with
    /// fields under systemd's journal) or `json` (one object per line, for log shippers).
    /// `--log-format` wins over it.
    #[serde(default)]
    pub log_format: LogFormat,
    /// Per-key allow-lists: key name (file name without `.key`) → commands it may run.
    /// Keys not listed may run anything.
    #[serde(default)]
    pub key_commands: BTreeMap<String, Vec<String>>,
    /// Released 0.14.x: where to get the time. Ignored; the system clock is used.
    #[serde(default)]
    pub ntp: Option<toml::Value>,
    /// Released 0.14.x layout: the commands, when there is no `commands.toml`.
    #[serde(default)]
    pub commands: Option<toml::Table>,
    /// What was accepted but deserves a word: ignored or clamped keys. Each program logs
    /// these once at start.
    #[serde(skip)]
    pub warnings: Vec<String>,
}

fn default_config_dir() -> PathBuf {
    PathBuf::from(DEFAULT_CONFIG_DIR)
}
fn default_per_source() -> u32 {
    DEFAULT_MAX_REQUESTS_PER_SECOND
}
fn default_global() -> u32 {
    DEFAULT_MAX_REQUESTS_PER_SECOND_GLOBAL
}
fn default_skew() -> u64 {
    DEFAULT_MAX_CLOCK_SKEW_SECONDS
}
fn default_owner() -> String {
    DEFAULT_SOCKET_OWNER.to_owned()
}
fn default_floor_store() -> String {
    "file".to_owned()
}
fn default_floor_store_timeout() -> u64 {
    200
}
fn default_true() -> bool {
    true
}

/// Why `config.toml` could not be used. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The config file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is not valid TOML, has an unknown key or a value of the wrong type.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The config file.
        path: PathBuf,
        /// The parser's description, naming the key and position.
        message: String,
    },
    /// A required key is absent.
    #[error("invalid config file {path}: missing required key `{key}`")]
    Missing {
        /// The config file.
        path: PathBuf,
        /// The missing key.
        key: &'static str,
    },
    /// A key has a value outside its allowed range.
    #[error("invalid config file {path}: key `{key}` {problem}")]
    Value {
        /// The config file.
        path: PathBuf,
        /// The key at fault.
        key: &'static str,
        /// What is wrong with it.
        problem: String,
    },
}

impl Config {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses and checks `text`; `path` is only used to name the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        // A released-layout file (its `[commands]` table lives here) was read by a server
        // that ignored keys it did not know: such keys are warned about, not refused, so a
        // misspelling the original never noticed does not stop the switch. Everywhere else
        // an unknown key is an error naming it.
        let mut ignored = Vec::new();
        let mut config: Config = match toml::from_str::<toml::Table>(text) {
            Ok(mut table) if table.contains_key("commands") => {
                let unknown: Vec<String> = table
                    .keys()
                    .filter(|k| {
                        !fields::CONFIG_KEYS.knows(k)
                            && k.as_str() != "commands"
                            && k.as_str() != "ntp"
                    })
                    .cloned()
                    .collect();
                for key in unknown {
                    table.remove(&key);
                    ignored.push(key);
                }
                Config::deserialize(table).map_err(|e| ConfigError::Parse {
                    path: path.to_owned(),
                    message: e.to_string(),
                })?
            }
            _ => toml::from_str(text).map_err(|e| ConfigError::Parse {
                path: path.to_owned(),
                message: describe_toml_error(text, &e),
            })?,
        };
        let value_error = |key, problem: &str| ConfigError::Value {
            path: path.to_owned(),
            key,
            problem: problem.to_owned(),
        };
        let mut warnings = Vec::new();
        for (key, value) in [
            (
                "max_requests_per_second",
                &mut config.max_requests_per_second,
            ),
            (
                "max_requests_per_second_global",
                &mut config.max_requests_per_second_global,
            ),
        ] {
            if *value == 0 {
                return Err(value_error(
                    key,
                    &format!("must be between 1 and {MAX_RATE_LIMIT}, got 0"),
                ));
            }
            // The released ruroco accepts any value; past the bound a limit is no limit.
            if *value > MAX_RATE_LIMIT {
                warnings.push(format!(
                    "config file {}: key `{key}` = {value} is above the maximum {MAX_RATE_LIMIT}; using {MAX_RATE_LIMIT}",
                    path.display()
                ));
                *value = MAX_RATE_LIMIT;
            }
        }
        for key in ignored {
            let hint = fields::CONFIG_KEYS
                .names()
                .find(|known| close(known, &key))
                .map(|known| format!(" (did you mean `{known}`?)"))
                .unwrap_or_default();
            warnings.push(format!(
                "config file {}: key `{key}` is not one ruroco knows{hint}; ignored, as the released ruroco ignored it (this file has [commands], the released layout)",
                path.display()
            ));
        }
        if config.ntp.is_some() {
            warnings.push(format!(
                "config file {}: key `ntp` is ignored; the system clock is used (keep it synchronised)",
                path.display()
            ));
        }
        if config.floor_store != "file" && config.max_clock_skew_seconds > FENCE_WARN_SECONDS {
            warnings.push(format!(
                "config file {}: key `max_clock_skew_seconds` = {} with a shared floor_store: after a change of Redis primary or a restart of Redis, knocks are refused for that long (the fence); with synchronised clocks, a few seconds (e.g. 10) is enough",
                path.display(),
                config.max_clock_skew_seconds
            ));
        }
        config.warnings = warnings;
        if !(1..=10_000).contains(&config.floor_store_timeout_ms) {
            return Err(value_error(
                "floor_store_timeout_ms",
                &format!(
                    "must be between 1 and 10000, got {}",
                    config.floor_store_timeout_ms
                ),
            ));
        }
        if config.ips.as_ref().is_some_and(Vec::is_empty) {
            return Err(value_error("ips", "must list at least one address"));
        }
        Ok(config)
    }

    /// The server's addresses; a missing `ips` is an error naming the key.
    pub fn required_ips(&self, path: &Path) -> Result<&[IpAddr], ConfigError> {
        self.ips.as_deref().ok_or_else(|| ConfigError::Missing {
            path: path.to_owned(),
            key: "ips",
        })
    }

    /// Where the replay floors are kept.
    pub fn blocklist_dir(&self) -> &Path {
        self.blocklist_dir.as_deref().unwrap_or(&self.config_dir)
    }

    /// For `--check`: `metrics_dir`, when set, must be an existing directory; the problem
    /// names the file and the key.
    pub fn metrics_dir_problem(&self, path: &Path) -> Option<String> {
        let dir = self.metrics_dir.as_ref()?;
        (!dir.is_dir()).then(|| {
            format!(
                "invalid config file {}: key `metrics_dir`: {} is not a directory",
                path.display(),
                dir.display()
            )
        })
    }

    /// Where the commander keeps its state (pending undos).
    pub fn state_dir(&self) -> &Path {
        self.state_dir
            .as_deref()
            .unwrap_or(Path::new(DEFAULT_STATE_DIR))
    }

    /// The commander's socket.
    pub fn socket_path(&self) -> PathBuf {
        ruroco_ipc::socket_path(self.socket_dir.as_deref(), &self.config_dir)
    }
}

/// Whether `a` and `b` differ by at most one inserted, removed or replaced character
/// (a misspelt key).
fn close(a: &str, b: &str) -> bool {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let (short, long) = if a.len() <= b.len() {
        (&a, &b)
    } else {
        (&b, &a)
    };
    if long.len() - short.len() > 1 {
        return false;
    }
    let prefix = short
        .iter()
        .zip(long.iter())
        .take_while(|(x, y)| x == y)
        .count();
    let rest_short = short.get(prefix..).unwrap_or_default();
    if short.len() == long.len() {
        rest_short.get(1..).unwrap_or_default() == long.get(prefix + 1..).unwrap_or_default()
    } else {
        rest_short == long.get(prefix + 1..).unwrap_or_default()
    }
}

/// A TOML error on one line: position, the parser's message, and the offending line of
/// `text` (which names the key even when the parser only points at a value).
pub fn describe_toml_error(text: &str, error: &toml::de::Error) -> String {
    let message = error.message().trim().replace('\n', "; ");
    let Some(span) = error.span() else {
        return message.to_owned();
    };
    let before = text.get(..span.start).unwrap_or(text);
    let line_no = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    let line = text.lines().nth(line_no - 1).unwrap_or_default().trim();
    if line.is_empty() {
        format!("line {line_no}, column {column}: {message}")
    } else {
        format!("line {line_no}, column {column}: {message} (in `{line}`)")
    }
}

#[cfg(test)]
mod tests;
