//! The command line of `ruroco-client`. Kept free of other modules so the man page and
//! shell completions are generated from this very definition.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Trigger a pre-configured command on a ruroco server with one encrypted UDP datagram.
#[derive(Debug, Parser)]
#[command(name = "ruroco-client", version, about, long_about = None)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Cmd,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Cmd {
    /// Print a new key (40 random bytes from the OS, base64).
    #[command(
        after_help = "Examples:\n  ruroco-client gen > ~/.config/ruroco/server.key\n  ruroco-client gen | ssh root@server 'umask 077; cat > /etc/ruroco/laptop.key'"
    )]
    Gen,
    /// Send one command to a server.
    #[command(
        after_help = "Examples:\n  ruroco-client send -a example.com -k ~/.config/ruroco/server.key\n  ruroco-client send -a example.com:34020 -k server.key -c open_ssh\n  ruroco-client send -a [2001:db8::1]:80 -k server.key -c deploy -6\n  ruroco-client send -a example.com -k server.key -c open_ssh -i 203.0.113.7 --permissive"
    )]
    Send(SendArgs),
    /// Set the counter to the current time (after a corrupt counter file, or when the
    /// server rejects datagrams as replays).
    #[command(
        after_help = "Example:\n  ruroco-client reseed\n  RUROCO_CONF_DIR=/etc/ruroco-ci ruroco-client reseed"
    )]
    Reseed,
}

#[derive(Debug, Args)]
pub(crate) struct SendArgs {
    #[arg(
        short,
        long,
        value_name = "HOST[:PORT]",
        help = "Server to send to: HOST[:PORT] (port 80 if omitted; [IPv6]:PORT)"
    )]
    pub(crate) address: String,
    #[arg(
        short,
        long,
        value_name = "PATH",
        help = "File holding the key (from `ruroco-client gen`). A key string is accepted too, as released clients do, but other local users can see it in `ps`"
    )]
    pub(crate) key_file: PathBuf,
    /// Name of the command to run, as in the server's commands.toml.
    #[arg(short, long, value_name = "NAME", default_value = "default")]
    pub(crate) command: String,
    /// Let the server act for the --ip address even if the datagram comes from elsewhere.
    #[arg(short = 'e', long)]
    pub(crate) permissive: bool,
    /// The IP address the command should act for (default: the address the server sees).
    #[arg(short, long, value_name = "IP")]
    pub(crate) ip: Option<String>,
    /// Send over IPv4 only.
    #[arg(short = '4', long, conflicts_with = "ipv6")]
    pub(crate) ipv4: bool,
    /// Send over IPv6 only.
    #[arg(short = '6', long)]
    pub(crate) ipv6: bool,
    /// Pause between the IPv4 and the IPv6 datagram, in milliseconds.
    #[arg(short = 'd', long, value_name = "MS", default_value_t = 50)]
    pub(crate) send_delay_ms: u64,
    /// Datagram format: v1, or v0 for a server that still runs released ruroco 0.14.x.
    #[arg(long, value_name = "FORMAT", value_enum, default_value_t = WireArg::V1)]
    pub(crate) wire: WireArg,
}

/// The datagram formats, as named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum WireArg {
    /// Released ruroco 0.14.x: 93 bytes, AES-256-GCM.
    V0,
    /// Protocol v1: 94 bytes, AES-256-GCM-SIV.
    V1,
}
