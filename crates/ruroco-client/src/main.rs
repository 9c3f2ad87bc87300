//! `ruroco-client`: makes keys and sends the one encrypted datagram.
//!
//! It owns the key file (read, never taken on the command line), the counter in the
//! conf dir with its lock, and the UDP send. It never waits for an answer: the server
//! gives none.
#![forbid(unsafe_code)]

mod counter;
mod target;

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use ruroco_proto::{command_hash, seal, Key, Plaintext, PROTOCOL_VERSION};
use zeroize::Zeroizing;

use crate::counter::{now_nanos, Counter};
use crate::target::Family;

/// Trigger a pre-configured command on a ruroco server with one encrypted UDP datagram.
#[derive(Debug, Parser)]
#[command(name = "ruroco-client", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
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
struct SendArgs {
    /// Server to send to: HOST[:PORT] (port 80 if omitted; [IPv6]:PORT).
    #[arg(short, long, value_name = "HOST[:PORT]")]
    address: String,
    /// File holding the key (from `ruroco-client gen`).
    #[arg(short, long, value_name = "PATH")]
    key_file: PathBuf,
    /// Name of the command to run, as in the server's commands.toml.
    #[arg(short, long, value_name = "NAME", default_value = "default")]
    command: String,
    /// Let the server act for the --ip address even if the datagram comes from elsewhere.
    #[arg(short = 'e', long)]
    permissive: bool,
    /// The IP address the command should act for (default: the address the server sees).
    #[arg(short, long, value_name = "IP")]
    ip: Option<String>,
    /// Send over IPv4 only.
    #[arg(short = '4', long, conflicts_with = "ipv6")]
    ipv4: bool,
    /// Send over IPv6 only.
    #[arg(short = '6', long)]
    ipv6: bool,
    /// Pause between the IPv4 and the IPv6 datagram, in milliseconds.
    #[arg(short = 'd', long, value_name = "MS", default_value_t = 50)]
    send_delay_ms: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Gen => gen(),
        Cmd::Send(args) => conf_dir().and_then(|dir| send(&args, &dir)),
        Cmd::Reseed => conf_dir().and_then(|dir| reseed(&dir)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ruroco-client: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `RUROCO_CONF_DIR`, else `$HOME/.config/ruroco`.
fn conf_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("RUROCO_CONF_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .context("neither RUROCO_CONF_DIR nor HOME is set")?;
    Ok(PathBuf::from(home).join(".config").join("ruroco"))
}

fn gen() -> anyhow::Result<()> {
    let key = Key::generate().context("cannot get random bytes from the operating system")?;
    println!("{}", key.to_key_string().as_str());
    Ok(())
}

fn reseed(dir: &Path) -> anyhow::Result<()> {
    let counter = Counter::lock(dir)?;
    let now = now_nanos();
    counter.write(now)?;
    eprintln!("counter in {} set to {now}", dir.display());
    Ok(())
}

fn read_key(path: &Path) -> anyhow::Result<Key> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .with_context(|| format!("cannot read key file {}", path.display()))?,
    );
    Key::parse(&text).with_context(|| format!("invalid key file {}", path.display()))
}

fn send(args: &SendArgs, dir: &Path) -> anyhow::Result<()> {
    let key = read_key(&args.key_file)?;
    let claimed = match &args.ip {
        Some(text) => Some(
            text.trim()
                .parse::<IpAddr>()
                .ok()
                .with_context(|| format!("--ip must be a single IP address, got `{text}`"))?,
        ),
        None => None,
    };
    if args.permissive && claimed.is_none() {
        bail!("--permissive only makes sense with --ip");
    }
    let family = match (args.ipv4, args.ipv6) {
        (true, _) => Family::V4,
        (_, true) => Family::V6,
        _ => Family::Both,
    };
    let targets = target::resolve(&args.address, family)?;
    let cmd_hash = command_hash(&args.command);
    // Held until the last datagram is sent: concurrent clients send in counter order.
    let counter = Counter::lock(dir)?;
    for (n, target) in targets.iter().enumerate() {
        if n > 0 {
            std::thread::sleep(Duration::from_millis(args.send_delay_ms));
        }
        let plaintext = Plaintext {
            version: PROTOCOL_VERSION,
            cmd_hash,
            counter: counter.next()?,
            strict: !args.permissive,
            src_ip: claimed,
            dst_ip: target.ip(),
        };
        let datagram =
            seal(&key, &plaintext).context("cannot get random bytes from the operating system")?;
        send_to(&datagram, *target)?;
        eprintln!("sent command `{}` to {target}", args.command);
    }
    Ok(())
}

fn send_to(datagram: &[u8], target: SocketAddr) -> anyhow::Result<()> {
    let bind = if target.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    };
    let socket =
        UdpSocket::bind(bind).with_context(|| format!("cannot open a UDP socket for {target}"))?;
    socket
        .send_to(datagram, target)
        .with_context(|| format!("cannot send to {target}"))?;
    Ok(())
}
