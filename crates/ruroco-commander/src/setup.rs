//! What a start, a reload (SIGHUP) and `--check` load, in one place: `config.toml`, the
//! commands (from `commands.toml` or the released `[commands]` table) and the pending
//! undos' state file.

use std::path::PathBuf;

use ruroco_config::Config;

use crate::commands::{self, Commands, Source};
use crate::undo_store::UndoStore;

/// Where the configuration comes from: the command line.
#[derive(Debug, Clone)]
pub(crate) struct Origin {
    pub(crate) config: PathBuf,
    pub(crate) commands: Option<PathBuf>,
}

/// A loaded configuration.
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) config: Config,
    pub(crate) commands: Commands,
    pub(crate) source: Source,
}

/// Loads the config and the commands; the first problem is the error.
pub(crate) fn load(origin: &Origin) -> anyhow::Result<Settings> {
    let config = Config::load(&origin.config)?;
    let source = commands::locate(origin.commands.as_deref(), &config, &origin.config)?;
    let commands = Commands::load_from(&source, &config)?;
    Ok(Settings {
        config,
        commands,
        source,
    })
}

/// `ruroco-commander --check`: every problem a start would stop at, one line each, without
/// binding the socket or writing any file.
pub(crate) fn check(origin: &Origin) -> Vec<String> {
    let config = match Config::load(&origin.config) {
        Ok(config) => config,
        Err(e) => return vec![e.to_string()],
    };
    let mut problems = Vec::new();
    match commands::locate(origin.commands.as_deref(), &config, &origin.config) {
        Ok(source) => {
            if let Err(e) = Commands::load_from(&source, &config) {
                problems.push(e.to_string());
            }
        }
        Err(e) => problems.push(e.to_string()),
    }
    if let Err(e) = UndoStore::new(config.state_dir()).read() {
        problems.push(format!("{e:#}"));
    }
    for (key, name) in [
        ("socket_user", &config.socket_user),
        ("socket_group", &config.socket_group),
    ] {
        if let Err(e) = crate::socket::lookup(key, name) {
            problems.push(format!(
                "invalid config file {}: {e:#}",
                origin.config.display()
            ));
        }
    }
    problems.extend(config.metrics_dir_problem(&origin.config));
    problems
}
