//! The command line of `ruroco-client`. Kept free of other modules so the man page and
//! shell completions are generated from this very definition.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Trigger a pre-configured command on a ruroco server with one encrypted UDP datagram.
#[derive(Debug, Parser)]
#[command(name = "ruroco-client", version = ruroco_config::LONG_VERSION, long_about = None, disable_help_subcommand = true)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Cmd,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Cmd {
    /// Print a new key (40 random bytes from the OS, base64).
    #[command(
        after_help = "Examples:\n  (umask 077; mkdir -p ~/.config/ruroco && ruroco-client gen > ~/.config/ruroco/server.key)\n  ruroco-client gen | ssh root@server 'set -C; umask 027; cat > /etc/ruroco/laptop.key && chgrp ruroco /etc/ruroco/laptop.key'\n\nOn the server a key file is mode 0640, owner root, group ruroco (the server's group)."
    )]
    Gen,
    /// Send one command to a saved server, every server of a group, or the server given
    /// with -a and -k.
    #[command(
        after_help = "Examples:\n  ruroco-client send web1\n  ruroco-client send web1 -c deploy\n  ruroco-client send @prod -c deploy\n  ruroco-client send -a example.com -k ~/.config/ruroco/server.key -c open_ssh\n  ruroco-client send -a [2001:db8::1]:80 -k server.key -c deploy -6\n  ruroco-client send -a example.com -k server.key -c open_ssh -i 203.0.113.7 --permissive\n\nSaved servers live in <conf dir>/client.toml (conf dir: RUROCO_CONF_DIR, else ~/.config/ruroco); flags override their saved values."
    )]
    Send(SendArgs),
    /// List the saved servers of client.toml.
    #[command(after_help = "Example:\n  ruroco-client list")]
    List,
    /// Save a new server: make its key (mode 600), add it to client.toml, and print the
    /// commands that install the key on the server.
    #[command(
        after_help = "Examples:\n  ruroco-client add web1 --address web1.example.com --command open_ssh\n  ruroco-client add db --address db.example.com:8080 --group prod --group db   # a server on port 8080\n  ruroco-client add phone-server --address example.com --qr"
    )]
    Add(AddArgs),
    /// Add the saved commands of the original ruroco GUI (its commands_list.toml) as saved
    /// servers, all with the key given.
    #[command(
        after_help = "Example:\n  ruroco-client import ~/.config/ruroco/commands_list.toml --key-file ~/ruroco.key --dry-run\n\nEntries already in client.toml are never changed; names are made unique."
    )]
    Import(ImportArgs),
    /// For OpenSSH's ProxyCommand: send the saved server's command, connect to HOST:PORT
    /// over TCP (retrying while the firewall opens) and relay standard input and output.
    #[command(
        after_help = "Example, in ~/.ssh/config:\n  Host web1\n      ProxyCommand ruroco-client proxy web1 %h %p\n\nthen a plain `ssh web1` knocks and connects. No HostName line is needed: a %h that is a saved server's name connects to that server's address."
    )]
    Proxy(ProxyArgs),
    /// Set the counter back to the current time after a clock that ran ahead (the server
    /// logs `future` for this key). Says what it would cost first; --yes does it.
    #[command(
        after_help = "Each send uses the current time in nanoseconds, or one more than the last value sent if that is larger, so the counter never falls behind the clock. It only needs setting back when a wrong clock pushed it ahead and the server refused those datagrams as `future`. If the server accepted any of them, it refuses this key as `replay` until the clock passes the last one: then wait instead.\n\nExamples:\n  ruroco-client reseed          # shows the counter and what reseeding would do\n  ruroco-client reseed --yes"
    )]
    Reseed(ReseedArgs),
    /// Show a saved server's key again as a QR code, for a phone app.
    #[command(after_help = "Example:\n  ruroco-client qr web1")]
    Qr(QrArgs),
    /// Print the shell completion script for SHELL.
    #[command(
        after_help = "Examples:\n  ruroco-client completions bash > ~/.local/share/bash-completion/completions/ruroco-client\n  ruroco-client completions zsh > ~/.zfunc/_ruroco-client\n  ruroco-client completions fish > ~/.config/fish/completions/ruroco-client.fish"
    )]
    Completions(CompletionsArgs),
}

/// `completions SHELL`.
#[derive(Debug, Args)]
pub(crate) struct CompletionsArgs {
    /// The shell to write the script for.
    #[arg(value_name = "SHELL")]
    pub(crate) shell: ruroco_config::Shell,
}

#[derive(Debug, Args)]
pub(crate) struct SendArgs {
    /// A saved server (NAME) or every server of a group (@GROUP), from client.toml.
    #[arg(value_name = "NAME|@GROUP")]
    pub(crate) target: Option<String>,
    #[arg(
        short,
        long,
        value_name = "HOST[:PORT]",
        help = "Server to send to: HOST[:PORT] (port 80, where the packaged server listens, if omitted; [IPv6]:PORT)"
    )]
    pub(crate) address: Option<String>,
    #[arg(
        short,
        long,
        visible_alias = "key",
        value_name = "PATH",
        help = "File holding the key (from `ruroco-client gen`). A key string is accepted too, as released clients do, but other local users can see it in `ps`"
    )]
    pub(crate) key_file: Option<PathBuf>,
    /// Name of the command to run, as in the server's commands.toml [default: the saved
    /// server's command, else "default"]
    #[arg(short, long, value_name = "NAME")]
    pub(crate) command: Option<String>,
    #[command(flatten)]
    pub(crate) options: SendOptions,
    /// Knock, then know: after sending, try a TCP connection to PORT of the server for up
    /// to --wait-secs; if it stays closed, send once more and try again. Says "port PORT
    /// open after N ms" (exit 0) or that it stayed closed (exit 1). Not for @GROUP. A saved
    /// server's wait_port does the same without the flag.
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub(crate) wait_port: Option<u16>,
    /// How long each wait for --wait-port (or a saved wait_port) lasts, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 5)]
    pub(crate) wait_secs: u64,
}

/// Flags that override what a saved server says.
#[derive(Debug, Args, Clone, Default)]
pub(crate) struct SendOptions {
    /// Let the server act for the --ip address even if the datagram comes from elsewhere.
    #[arg(short = 'e', long)]
    pub(crate) permissive: bool,
    /// The IP address the command should act for (default: the address the server sees).
    #[arg(short, long, value_name = "IP")]
    pub(crate) ip: Option<String>,
    /// Send over IPv4 only (-4 and -6 together: both families, as the released client
    /// took them).
    #[arg(short = '4', long)]
    pub(crate) ipv4: bool,
    /// Send over IPv6 only.
    #[arg(short = '6', long)]
    pub(crate) ipv6: bool,
    /// Pause between the IPv4 and the IPv6 datagram, in milliseconds [default: 50]
    #[arg(short = 'd', long, value_name = "MS")]
    pub(crate) send_delay_ms: Option<u64>,
    /// Datagram format: v1, or v0 for a server that still runs released ruroco 0.14.x
    /// [default: v1]
    #[arg(long, value_name = "FORMAT", value_enum)]
    pub(crate) wire: Option<WireArg>,
}

#[derive(Debug, Args)]
pub(crate) struct AddArgs {
    /// Name for the server in client.toml (letters, digits, `-`, `_`).
    pub(crate) name: String,
    #[arg(
        short,
        long,
        value_name = "HOST[:PORT]",
        help = "The server's address: HOST[:PORT] (port 80 if omitted; [IPv6]:PORT)"
    )]
    pub(crate) address: String,
    /// The command `send NAME` runs when none is given.
    #[arg(short, long, value_name = "NAME")]
    pub(crate) command: Option<String>,
    /// A group the server belongs to (`send @GROUP`); repeat for several.
    #[arg(short, long = "group", value_name = "GROUP")]
    pub(crate) groups: Vec<String>,
    /// Datagram format the server understands [default: v1]
    #[arg(long, value_name = "FORMAT", value_enum)]
    pub(crate) wire: Option<WireArg>,
    /// Name of the key file on the server, without `.key` [default: HOST-SERVER, this
    /// machine's host name and the saved server's name, e.g. laptop-web1]
    #[arg(long, value_name = "NAME")]
    pub(crate) key_name: Option<String>,
    /// Also print the key string as a QR code, for a phone app.
    #[arg(long)]
    pub(crate) qr: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ReseedArgs {
    /// Set the counter back even though it is ahead of the clock.
    #[arg(long)]
    pub(crate) yes: bool,
}

#[derive(Debug, Args)]
pub(crate) struct QrArgs {
    /// The saved server whose key to show.
    pub(crate) name: String,
}

#[derive(Debug, Args)]
pub(crate) struct ImportArgs {
    /// The original GUI's commands_list.toml.
    pub(crate) file: PathBuf,
    /// File holding the key those commands were sent with (copied to the config
    /// directory, mode 0600).
    #[arg(long, value_name = "PATH")]
    pub(crate) key_file: PathBuf,
    /// Say what would be added; write nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ProxyArgs {
    /// The saved server to send the command to.
    pub(crate) name: String,
    /// Host to connect to over TCP (ssh's %h).
    pub(crate) host: String,
    /// Port to connect to (ssh's %p).
    pub(crate) port: u16,
    /// Command to send [default: the saved server's command, else "default"]
    #[arg(short, long, value_name = "NAME")]
    pub(crate) command: Option<String>,
    /// How long to keep trying to connect while the firewall opens, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 5)]
    pub(crate) wait_secs: u64,
}

/// The datagram formats, as named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum WireArg {
    /// Released ruroco 0.14.x: 93 bytes, AES-256-GCM.
    V0,
    /// Protocol v1: 94 bytes, AES-256-GCM-SIV.
    V1,
}
