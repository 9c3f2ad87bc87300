//! `commands.toml`: `[commands]` with `name = "shell"` or a table
//! `name = { cmd = "shell", timeout_sec = N, undo = "shell", undo_after_sec = N,
//! cooldown_sec = N, single_flight = true }`, and an optional `[hooks]` table (see
//! [`crate::hooks`]).
//!
//! The released ruroco 0.14.x keeps the same table inside `config.toml`; [`locate`] decides
//! which of the two files the commands come from.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ruroco_config::Config;
use ruroco_ipc::command_hash;

use crate::hooks::Hooks;
use crate::values::{seconds, shell};

/// Default time a command may run before its process group is killed.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// One configured command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CommandSpec {
    pub(crate) name: String,
    pub(crate) cmd: String,
    pub(crate) timeout: Duration,
    /// What reverses the command, and when, after it succeeded.
    pub(crate) undo: Option<UndoSpec>,
    /// A request for the same (command, IP) within this long of the last start is refused.
    pub(crate) cooldown: Option<Duration>,
    /// While an instance runs (or waits for a slot), further requests are refused.
    pub(crate) single_flight: bool,
}

/// `undo` and `undo_after_sec` of a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UndoSpec {
    pub(crate) cmd: String,
    pub(crate) after: Duration,
}

impl CommandSpec {
    /// A command with no undo and no limits (a plain string entry).
    pub(crate) fn plain(name: &str, cmd: &str, timeout: Duration) -> Self {
        Self {
            name: name.to_owned(),
            cmd: cmd.to_owned(),
            timeout,
            undo: None,
            cooldown: None,
            single_flight: false,
        }
    }
}

/// Why `commands.toml` was refused. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CommandsError {
    #[error("cannot read commands file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid commands file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid commands file {path}{}: entry `{name}`: {problem}", line.map(|n| format!(", line {n}")).unwrap_or_default())]
    Entry {
        path: PathBuf,
        /// The line of the entry or of its field at fault, when it can be found.
        line: Option<usize>,
        name: String,
        problem: String,
    },
    #[error("commands are defined twice: in {commands} and in the [commands] table of {config}; keep one of them")]
    Both { commands: PathBuf, config: PathBuf },
    #[error("no commands: {commands} does not exist and {config} has no [commands] table")]
    None { commands: PathBuf, config: PathBuf },
}

/// Where the commands come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    /// A commands file.
    File(PathBuf),
    /// The `[commands]` table of this config file (released 0.14.x layout).
    Config(PathBuf),
}

impl Source {
    pub(crate) fn path(&self) -> &Path {
        match self {
            Source::File(path) | Source::Config(path) => path,
        }
    }
}

/// Picks the commands' file: `explicit` (from `--commands`) or else `commands.toml` next
/// to `config_path` when it exists, otherwise the `[commands]` table of the config. A
/// commands file together with a `[commands]` table is an error naming both.
pub(crate) fn locate(
    explicit: Option<&Path>,
    config: &Config,
    config_path: &Path,
) -> Result<Source, CommandsError> {
    let file = match explicit {
        Some(path) => path.to_owned(),
        None => config_path.with_file_name("commands.toml"),
    };
    let file_used = explicit.is_some() || file.exists();
    match (file_used, config.commands.is_some()) {
        (true, true) => Err(CommandsError::Both {
            commands: file,
            config: config_path.to_owned(),
        }),
        (true, false) => Ok(Source::File(file)),
        (false, true) => Ok(Source::Config(config_path.to_owned())),
        (false, false) => Err(CommandsError::None {
            commands: file,
            config: config_path.to_owned(),
        }),
    }
}

/// Warns when others than the owner may read the commands file (what runs as root, and
/// where, is nobody else's business).
fn warn_if_readable(path: &Path) {
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                "commands file {} has mode {mode:o}: readable by others than its owner; chmod 600 it",
                path.display()
            );
        }
    }
}

/// The commands, by the hash of their name, and the hooks.
#[derive(Debug, Default)]
pub(crate) struct Commands {
    by_hash: HashMap<u64, Arc<CommandSpec>>,
    pub(crate) hooks: Hooks,
}

impl Commands {
    /// Loads the commands from where [`locate`] says they are.
    pub(crate) fn load_from(source: &Source, config: &Config) -> Result<Self, CommandsError> {
        match source {
            Source::File(path) => Self::load(path),
            Source::Config(path) => {
                Self::from_table(config.commands.clone().unwrap_or_default(), path, None)
            }
        }
    }

    pub(crate) fn load(path: &Path) -> Result<Self, CommandsError> {
        // Read as root reads what it runs: where the path leads, no link swapped in at
        // its end, never a FIFO, bounded (who may change it is `trust::problem`'s job).
        let read_error = |source| CommandsError::Read {
            path: path.to_owned(),
            source,
        };
        let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
        let bytes = ruroco_fs::trust::read_bounded(&real, ruroco_fs::trust::MAX_TEXT_FILE)
            .map_err(|e| read_error(std::io::Error::other(e.to_string())))?
            .ok_or_else(|| read_error(std::io::ErrorKind::NotFound.into()))?;
        let text = String::from_utf8(bytes)
            .map_err(|e| read_error(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?;
        warn_if_readable(path);
        Self::parse(&text, path)
    }

    pub(crate) fn parse(text: &str, path: &Path) -> Result<Self, CommandsError> {
        let parse_error = |message: String| CommandsError::Parse {
            path: path.to_owned(),
            message,
        };
        let mut root: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            parse_error(ruroco_config::describe_toml_error(text, &e))
        })?;
        if let Some(unknown) = root.keys().find(|k| *k != "commands" && *k != "hooks") {
            return Err(parse_error(format!(
                "unknown key `{unknown}` (allowed: [commands], [hooks])"
            )));
        }
        let commands = match root.remove("commands") {
            Some(toml::Value::Table(table)) => table,
            Some(_) => return Err(parse_error("`commands` must be a table".into())),
            None => return Err(parse_error("missing [commands] table".into())),
        };
        let hooks = match root.remove("hooks") {
            None => Hooks::default(),
            Some(toml::Value::Table(table)) => {
                Hooks::from_table(table).map_err(|p| parse_error(format!("[hooks]: {p}")))?
            }
            Some(_) => return Err(parse_error("`hooks` must be a table".into())),
        };
        let mut commands = Self::from_table(commands, path, Some(text))?;
        commands.hooks = hooks;
        Ok(commands)
    }

    /// The entries of a `[commands]` table; `path` names the file it came from and
    /// `text`, when there is one, locates the line of an error.
    fn from_table(
        commands: toml::Table,
        path: &Path,
        text: Option<&str>,
    ) -> Result<Self, CommandsError> {
        let mut by_hash: HashMap<u64, Arc<CommandSpec>> = HashMap::new();
        for (name, value) in commands {
            let entry_error = |problem: &str| CommandsError::Entry {
                path: path.to_owned(),
                line: text.and_then(|t| {
                    ruroco_config::line_of(t, "commands", &name, problem.split('`').nth(1))
                }),
                name: name.clone(),
                problem: problem.to_owned(),
            };
            let spec = entry(&name, value).map_err(|p| entry_error(&p))?;
            let hash = command_hash(&name);
            if let Some(other) = by_hash.get(&hash) {
                return Err(entry_error(&format!(
                    "its hash collides with entry `{}`; rename one",
                    other.name
                )));
            }
            by_hash.insert(hash, Arc::new(spec));
        }
        Ok(Self {
            by_hash,
            hooks: Hooks::default(),
        })
    }

    /// The command with this hash; shared, so starting it copies nothing.
    pub(crate) fn get(&self, hash: u64) -> Option<&Arc<CommandSpec>> {
        self.by_hash.get(&hash)
    }

    pub(crate) fn len(&self) -> usize {
        self.by_hash.len()
    }

    /// Up to `n` commands, by name: the ones that get a warm shell before their first run.
    pub(crate) fn first_by_name(&self, n: usize) -> Vec<Arc<CommandSpec>> {
        let mut all: Vec<&Arc<CommandSpec>> = self.by_hash.values().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all.into_iter().take(n).cloned().collect()
    }

    /// Whether any command schedules an undo (then the state directory must be usable).
    pub(crate) fn any_undo(&self) -> bool {
        self.by_hash.values().any(|c| c.undo.is_some())
    }
}

/// The keys of an entry's table form: the list the man page documents.
const TABLE_KEYS: ruroco_config::fields::Table = ruroco_config::fields::COMMAND_KEYS;

fn entry(name: &str, value: toml::Value) -> Result<CommandSpec, String> {
    let mut table = match value {
        toml::Value::String(cmd) => {
            let cmd = shell("cmd", toml::Value::String(cmd)).map_err(|_| "the command is empty")?;
            return Ok(CommandSpec::plain(name, &cmd, DEFAULT_TIMEOUT));
        }
        toml::Value::Table(table) => table,
        _ => return Err("must be a string or a table { cmd = \"...\", timeout_sec = N }".into()),
    };
    // First, so that a misspelt key is named (not reported as the key it should have been).
    if let Some(unknown) = table.keys().find(|k| !TABLE_KEYS.knows(k)) {
        return Err(format!(
            "unknown key `{unknown}` (allowed: {})",
            TABLE_KEYS.allowed()
        ));
    }
    let cmd = shell("cmd", table.remove("cmd").ok_or("missing `cmd`")?)?;
    let mut spec = CommandSpec::plain(name, &cmd, DEFAULT_TIMEOUT);
    if let Some(v) = table.remove("timeout_sec") {
        spec.timeout = seconds("timeout_sec", v)?;
    }
    if let Some(v) = table.remove("cooldown_sec") {
        spec.cooldown = Some(seconds("cooldown_sec", v)?);
    }
    match table.remove("single_flight") {
        None => {}
        Some(toml::Value::Boolean(b)) => spec.single_flight = b,
        Some(_) => return Err("`single_flight` must be true or false".into()),
    }
    match (table.remove("undo"), table.remove("undo_after_sec")) {
        (None, None) => {}
        (Some(undo), Some(after)) => {
            spec.undo = Some(UndoSpec {
                cmd: shell("undo", undo)?,
                after: seconds("undo_after_sec", after)?,
            });
        }
        (Some(_), None) => return Err("`undo` needs `undo_after_sec` (when to run it)".into()),
        (None, Some(_)) => return Err("`undo_after_sec` needs `undo` (what to run)".into()),
    }
    if let Some(unknown) = table.keys().next() {
        return Err(format!(
            "unknown key `{unknown}` (allowed: {})",
            TABLE_KEYS.allowed()
        ));
    }
    Ok(spec)
}

#[cfg(test)]
mod tests;
