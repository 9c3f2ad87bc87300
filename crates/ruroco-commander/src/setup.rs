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

impl Settings {
    /// Whether commands run for loopback, private, link-local, … client addresses: as
    /// `allow_non_routable_ips` says, and where it says nothing, as the released ruroco did
    /// for its layout (`[commands]` in config.toml: yes), no for commands.toml.
    pub(crate) fn allow_non_routable(&self) -> bool {
        self.config
            .allow_non_routable_ips
            .unwrap_or(matches!(self.source, Source::Config(_)))
    }

    /// What a start and `--check` say when the released layout's default applies.
    pub(crate) fn non_routable_note(&self) -> Option<String> {
        (self.config.allow_non_routable_ips.is_none() && matches!(self.source, Source::Config(_)))
            .then(|| {
                format!(
                    "{} has [commands] (the released layout) and no allow_non_routable_ips: commands run for loopback, private and link-local client addresses too, as the released ruroco did; set allow_non_routable_ips = false to refuse them",
                    self.source.path().display()
                )
            })
    }
}

/// Loads the config and the commands; the first problem is the error.
pub(crate) fn load(origin: &Origin) -> anyhow::Result<Settings> {
    let config = Config::load(&origin.config)?;
    let source = commands::locate(origin.commands.as_deref(), &config, &origin.config)?;
    if let Some(problem) = crate::trust::problem(source.path(), &config.socket_user) {
        anyhow::bail!("{problem}");
    }
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
            problems.extend(crate::trust::problem(source.path(), &config.socket_user));
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
    // The socket directory as a start would judge it (where it exists already).
    let socket = config.socket_path();
    if let Some(dir) = socket.parent().filter(|d| d.exists()) {
        if let Err(e) = crate::socket::check_dir(dir) {
            problems.push(format!("{e:#} (config key socket_dir)"));
        }
    }
    problems
}
