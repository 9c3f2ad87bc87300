//! `commands.toml`: `[commands]` with `name = "shell"` or `name = { cmd = "shell", timeout_sec = N }`.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

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
}

/// The commands, by the hash of their name.
#[derive(Debug, Default)]
pub(crate) struct Commands {
    by_hash: HashMap<u64, CommandSpec>,
}

impl Commands {
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
