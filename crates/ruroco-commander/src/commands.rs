//! `commands.toml`: `[commands]` with `name = "shell"` or `name = { cmd = "shell", timeout_sec = N }`.
//!
//! The released ruroco 0.14.x keeps the same table inside `config.toml`; [`locate`] decides
//! which of the two files the commands come from.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ruroco_config::Config;
use ruroco_ipc::command_hash;

/// Default time a command may run before its process group is killed.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// One configured command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CommandSpec {
    pub(crate) name: String,
    pub(crate) cmd: String,
    pub(crate) timeout: Duration,
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
    #[error("invalid commands file {path}: entry `{name}`: {problem}")]
    Entry {
        path: PathBuf,
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

/// The commands, by the hash of their name.
#[derive(Debug, Default)]
pub(crate) struct Commands {
    by_hash: HashMap<u64, CommandSpec>,
}

impl Commands {
    /// Loads the commands from where [`locate`] says they are.
    pub(crate) fn load_from(source: &Source, config: &Config) -> Result<Self, CommandsError> {
        match source {
            Source::File(path) => Self::load(path),
            Source::Config(path) => {
                Self::from_table(config.commands.clone().unwrap_or_default(), path)
            }
        }
    }

    pub(crate) fn load(path: &Path) -> Result<Self, CommandsError> {
        let text = std::fs::read_to_string(path).map_err(|source| CommandsError::Read {
            path: path.to_owned(),
            source,
        })?;
        if let Ok(meta) = std::fs::metadata(path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!(
                    "commands file {} has mode {mode:o}: readable by others than its owner; chmod 600 it",
                    path.display()
                );
            }
        }
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
        if let Some(unknown) = root.keys().find(|k| *k != "commands") {
            return Err(parse_error(format!(
                "unknown key `{unknown}` (only [commands] is allowed)"
            )));
        }
        let commands = match root.remove("commands") {
            Some(toml::Value::Table(table)) => table,
            Some(_) => return Err(parse_error("`commands` must be a table".into())),
            None => return Err(parse_error("missing [commands] table".into())),
        };
        Self::from_table(commands, path)
    }

    /// The entries of a `[commands]` table; `path` names the file it came from.
    fn from_table(commands: toml::Table, path: &Path) -> Result<Self, CommandsError> {
        let mut by_hash: HashMap<u64, CommandSpec> = HashMap::new();
        for (name, value) in commands {
            let entry_error = |problem: &str| CommandsError::Entry {
                path: path.to_owned(),
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
            by_hash.insert(hash, spec);
        }
        Ok(Self { by_hash })
    }

    pub(crate) fn get(&self, hash: u64) -> Option<&CommandSpec> {
        self.by_hash.get(&hash)
    }

    pub(crate) fn len(&self) -> usize {
        self.by_hash.len()
    }
}

fn entry(name: &str, value: toml::Value) -> Result<CommandSpec, String> {
    let (cmd, timeout) = match value {
        toml::Value::String(cmd) => (cmd, DEFAULT_TIMEOUT),
        toml::Value::Table(mut table) => {
            let cmd = match table.remove("cmd") {
                Some(toml::Value::String(cmd)) => cmd,
                Some(_) => return Err("`cmd` must be a string".into()),
                None => return Err("missing `cmd`".into()),
            };
            let timeout = match table.remove("timeout_sec") {
                None => DEFAULT_TIMEOUT,
                Some(toml::Value::Integer(n)) if n > 0 => Duration::from_secs(n.unsigned_abs()),
                Some(_) => return Err("`timeout_sec` must be a positive integer".into()),
            };
            if let Some(unknown) = table.keys().next() {
                return Err(format!(
                    "unknown key `{unknown}` (allowed: cmd, timeout_sec)"
                ));
            }
            (cmd, timeout)
        }
        _ => return Err("must be a string or a table { cmd = \"...\", timeout_sec = N }".into()),
    };
    if cmd.trim().is_empty() {
        return Err("the command is empty".into());
    }
    Ok(CommandSpec {
        name: name.to_owned(),
        cmd,
        timeout,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Commands, CommandsError> {
        Commands::parse(text, Path::new("/c/commands.toml"))
    }

    #[test]
    fn both_forms() {
        let c = parse(
            "[commands]\ndefault = \"echo hi\"\nslow = { cmd = \"sleep 1\", timeout_sec = 5 }\n",
        )
        .unwrap();
        assert_eq!(c.len(), 2);
        let d = c.get(command_hash("default")).unwrap();
        assert_eq!((d.cmd.as_str(), d.timeout), ("echo hi", DEFAULT_TIMEOUT));
        let s = c.get(command_hash("slow")).unwrap();
        assert_eq!(
            (s.cmd.as_str(), s.timeout),
            ("sleep 1", Duration::from_secs(5))
        );
    }

    #[test]
    fn malformed_entries_are_named() {
        for (text, name) in [
            ("[commands]\nbad = 5\n", "bad"),
            ("[commands]\nbad = { timeout_sec = 5 }\n", "bad"),
            (
                "[commands]\nbad = { cmd = \"x\", timeout_sec = 0 }\n",
                "bad",
            ),
            ("[commands]\nbad = { cmd = \"x\", timeout = 3 }\n", "bad"),
            ("[commands]\nbad = \"  \"\n", "bad"),
        ] {
            match parse(text) {
                Err(CommandsError::Entry {
                    name: got, path, ..
                }) => {
                    assert_eq!(got, name);
                    assert_eq!(path, Path::new("/c/commands.toml"));
                }
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    fn config(text: &str) -> Config {
        Config::parse(text, Path::new("/c/config.toml")).unwrap()
    }

    #[test]
    fn commands_come_from_one_file_only() {
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("config.toml");
        let next_to = dir.path().join("commands.toml");
        let released = config("[commands]\ndefault = \"true\"\n");
        let current = config("");
        // Neither: an error naming both places.
        let err = locate(None, &current, &config_path).unwrap_err();
        assert!(matches!(err, CommandsError::None { .. }), "{err}");
        // Only the [commands] table of config.toml (released layout).
        assert_eq!(
            locate(None, &released, &config_path).unwrap(),
            Source::Config(config_path.clone())
        );
        let c = Commands::load_from(&Source::Config(config_path.clone()), &released).unwrap();
        assert!(c.get(command_hash("default")).is_some());
        // commands.toml next to config.toml wins when the config has no table.
        std::fs::write(&next_to, "[commands]\n").unwrap();
        assert_eq!(
            locate(None, &current, &config_path).unwrap(),
            Source::File(next_to.clone())
        );
        // Both: an error naming both files.
        for explicit in [None, Some(next_to.as_path())] {
            let err = locate(explicit, &released, &config_path).unwrap_err();
            let text = err.to_string();
            assert!(matches!(err, CommandsError::Both { .. }), "{text}");
            assert!(
                text.contains("commands.toml") && text.contains("config.toml"),
                "{text}"
            );
        }
        // An explicit path is used even before it exists (and then fails to load, naming it).
        let elsewhere = dir.path().join("elsewhere.toml");
        assert_eq!(
            locate(Some(&elsewhere), &current, &config_path).unwrap(),
            Source::File(elsewhere)
        );
    }

    #[test]
    fn malformed_files_are_refused() {
        for text in ["[commands\n", "x = 1\n[commands]\n", "commands = 3\n", ""] {
            assert!(
                matches!(parse(text), Err(CommandsError::Parse { .. })),
                "{text}"
            );
        }
    }
}
