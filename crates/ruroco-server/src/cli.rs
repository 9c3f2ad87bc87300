//! The command line of `ruroco-server`. Kept free of other modules so the man page and
//! shell completions are generated from this very definition.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use ruroco_config::DEFAULT_CONFIG_PATH;

/// Receive one encrypted UDP datagram per command, authenticate and validate it, and hand
/// the command to ruroco-commander. Never replies.
#[derive(Debug, Parser)]
#[command(name = "ruroco-server", version = ruroco_config::LONG_VERSION, long_about = None, disable_help_subcommand = true)]
pub(crate) struct Cli {
    /// Path of config.toml.
    #[arg(short, long, value_name = "PATH", default_value = DEFAULT_CONFIG_PATH)]
    pub(crate) config: PathBuf,
    /// UDP address to listen on (wins over RUROCO_LISTEN_ADDRESS, socket activation and
    /// the config file).
    #[arg(long, value_name = "ADDR")]
    pub(crate) address: Option<String>,
    /// Check config.toml, the key files, `[key_commands]`, the floor file and the address as
    /// a start would, print one line per problem (or one summary line) and exit 0 or 1
    /// without binding anything.
    #[arg(long)]
    pub(crate) check: bool,
    /// Form of the log lines on stderr: text, or json (one object per line with every
    /// field) [default: log_format of config.toml, else text]
    #[arg(long, value_name = "FORMAT")]
    pub(crate) log_format: Option<ruroco_config::LogFormat>,
    /// With --check: look for systemd units left by the original ruroco under DIR
    /// instead of / (an image or a chroot).
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub(crate) root: PathBuf,
    /// Only report units of the original ruroco that override the packaged ones (the
    /// package's post-install step runs this); exit 1 if there are any.
    #[arg(long)]
    pub(crate) check_units: bool,
    #[command(subcommand)]
    pub(crate) action: Option<Action>,
}

/// What to do instead of serving.
#[derive(Debug, Subcommand)]
pub(crate) enum Action {
    /// Going back to the original ruroco: write this server's replay floors into the
    /// original's blocklist.msgpck (per key the larger of both, in the layout the file has),
    /// so the original refuses everything this server accepted. Stop this server first
    /// (what it accepts afterwards is not in the file); run as a user who may write it.
    #[command(
        after_help = "Example:\n  systemctl stop ruroco.socket ruroco && ruroco-server write-original-floors"
    )]
    WriteOriginalFloors {
        /// The file to write [default: the original's file where a start finds it, else
        /// <config_dir>/blocklist.msgpck].
        #[arg(long, value_name = "PATH")]
        to: Option<PathBuf>,
        /// The original's layout: released (0.14.x, with `path`) or current (without)
        /// [default: the existing file's, else released].
        #[arg(long, value_name = "LAYOUT")]
        layout: Option<Layout>,
    },
    /// Print the shell completion script for SHELL.
    #[command(
        after_help = "Example:\n  ruroco-server completions bash > /etc/bash_completion.d/ruroco-server"
    )]
    Completions {
        /// The shell to write the script for.
        #[arg(value_name = "SHELL")]
        shell: ruroco_config::Shell,
    },
}

/// The layouts of the original's `blocklist.msgpck`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Layout {
    /// Released 0.14.x: `{ map, path }`.
    Released,
    /// Its current version: `{ map }`.
    Current,
}
