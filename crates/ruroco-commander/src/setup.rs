//! What a start, a reload (SIGHUP) and `--check` load, in one place: `config.toml`, the
//! commands (from `commands.toml` or the released `[commands]` table) and the pending
//! undos' state file.

use std::path::{Path, PathBuf};

use ruroco_config::Config;

use crate::commands::{self, Commands, Source};
use crate::trust::Role;
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
    /// Why the commands file was refused (anyone but root could change it): no command
    /// runs, pending undos do.
    pub(crate) commands_refused: Option<String>,
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

/// Reads `config.toml` as root may: refused (naming the server's user where it is the
/// one who could write, with the fix) when anyone but root could change it or a
/// directory on its path, since it says where root keeps and reads its state.
pub(crate) fn load_config(path: &Path) -> anyhow::Result<Config> {
    match crate::trust::read(path, "", Role::Config) {
        Ok(Some(text)) => Ok(Config::parse(&text, path)?),
        // Config::load says what is missing, as every program does.
        Ok(None) => Ok(Config::load(path)?),
        Err(refused) => {
            // The refusal names the server's user if the file says who that is (parsing
            // it acts on nothing); otherwise the owner's uid.
            let named = ruroco_fs::trust::read_bounded(path, crate::trust::MAX_FILE)
                .ok()
                .flatten()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .and_then(|text| Config::parse(&text, path).ok())
                .and_then(|config| crate::trust::problem(path, &config.socket_user, Role::Config));
            match named {
                Some(problem) => Err(anyhow::anyhow!("{problem}")),
                None => Err(refused),
            }
        }
    }
}

/// The state directory's refusal, when anyone but root could change it (it lists undos
/// root runs).
pub(crate) fn state_problem(config: &Config) -> Option<String> {
    crate::trust::problem(config.state_dir(), &config.socket_user, Role::StateDir)
}

/// Loads the config and the commands; the first problem is the error. A commands file
/// that anyone but root could change does not stop the load: the settings come back
/// with no commands and the refusal in [`Settings::commands_refused`], so that the undos
/// root scheduled itself still run.
pub(crate) fn load(origin: &Origin) -> anyhow::Result<Settings> {
    let config = load_config(&origin.config)?;
    if let Some(problem) = state_problem(&config) {
        anyhow::bail!("{problem}");
    }
    let source = commands::locate(origin.commands.as_deref(), &config, &origin.config)?;
    if let Some(problem) = crate::trust::problem(source.path(), &config.socket_user, Role::Commands)
    {
        return Ok(Settings {
            config,
            commands: Commands::default(),
            source,
            commands_refused: Some(problem),
        });
    }
    let commands = Commands::load_from(&source, &config)?;
    Ok(Settings {
        config,
        commands,
        source,
        commands_refused: None,
    })
}

/// `ruroco-commander --check`: every problem a start would stop at, one line each, without
/// binding the socket or writing any file.
pub(crate) fn check(origin: &Origin) -> Vec<String> {
    let config = match load_config(&origin.config) {
        Ok(config) => config,
        Err(e) => return vec![format!("{e:#}")],
    };
    let mut problems = Vec::new();
    match commands::locate(origin.commands.as_deref(), &config, &origin.config) {
        Ok(source) => {
            match crate::trust::problem(source.path(), &config.socket_user, Role::Commands) {
                Some(problem) => problems.push(format!(
                    "{problem} (a start runs no command until this is fixed; pending undos still run)"
                )),
                None => {
                    if let Err(e) = Commands::load_from(&source, &config) {
                        problems.push(e.to_string());
                    }
                }
            }
        }
        Err(e) => problems.push(e.to_string()),
    }
    problems.extend(state_problem(&config));
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
