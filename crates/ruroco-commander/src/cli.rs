//! The command line of `ruroco-commander`. Kept free of other modules so the man page and
//! shell completions are generated from this very definition.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use ruroco_config::DEFAULT_CONFIG_PATH;

/// Run the configured command for each message ruroco-server sends over the local Unix
/// socket. Runs as root; has no keys and no network access.
#[derive(Debug, Parser)]
#[command(name = "ruroco-commander", version = ruroco_config::LONG_VERSION, long_about = None, disable_help_subcommand = true)]
pub(crate) struct Cli {
    /// Path of config.toml (shared with ruroco-server).
    #[arg(short, long, value_name = "PATH", default_value = DEFAULT_CONFIG_PATH, global = true)]
    pub(crate) config: PathBuf,
    #[arg(
        long,
        value_name = "PATH",
        global = true,
        help = "Path of commands.toml [default: commands.toml next to config.toml; if there is none, the [commands] table of config.toml, as released ruroco 0.14.x keeps them]"
    )]
    pub(crate) commands: Option<PathBuf>,
    /// Check config.toml, the commands, the state file and the socket owner as a start
    /// would, print one line per problem (or one summary line) and exit 0 or 1 without
    /// binding anything.
    #[arg(long)]
    pub(crate) check: bool,
    /// Form of the log lines on stderr: text, or json (one object per line with every
    /// field) [default: log_format of config.toml, else text]
    #[arg(long, value_name = "FORMAT", global = true)]
    pub(crate) log_format: Option<ruroco_config::LogFormat>,
    /// With --check: look for systemd units left by the original ruroco under DIR
    /// instead of / (an image or a chroot).
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub(crate) root: PathBuf,
    #[command(subcommand)]
    pub(crate) action: Option<Action>,
}

/// What to do instead of serving.
#[derive(Debug, Subcommand)]
pub(crate) enum Action {
    /// List the pending undos (command, IP, due time) from the state directory.
    #[command(
        after_help = "Example:\n  ruroco-commander pending\n  ruroco-commander pending --config /etc/ruroco/config.toml"
    )]
    Pending,
    /// Run every pending undo now and remove it from the state file (for uninstalling: no
    /// firewall hole stays open with nothing left to close it). Refuses while a commander
    /// runs. Exit 1 if any undo failed (it stays pending and is printed).
    #[command(
        after_help = "Example (the socket unit first: it would start a commander again at the next knock):\n  systemctl stop ruroco-commander.socket ruroco-commander && ruroco-commander run-pending"
    )]
    RunPending,
    /// Print the shell completion script for SHELL.
    #[command(
        after_help = "Example:\n  ruroco-commander completions bash > /etc/bash_completion.d/ruroco-commander"
    )]
    Completions {
        /// The shell to write the script for.
        #[arg(value_name = "SHELL")]
        shell: ruroco_config::Shell,
    },
}
