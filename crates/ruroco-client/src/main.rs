//! `ruroco-client`: makes keys and sends the one encrypted datagram.
//!
//! It owns the key file (read, never taken on the command line), the counter in the
//! conf dir with its lock, and the UDP send. It never waits for an answer: the server
//! gives none.
#![forbid(unsafe_code)]

mod cli;
mod counter;
mod target;

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use ruroco_proto::{command_hash, seal, Key, Plaintext, Wire, PROTOCOL_VERSION};
use zeroize::Zeroizing;

use crate::cli::{Cli, Cmd, SendArgs, WireArg};
use crate::counter::{now_nanos, Counter};
use crate::target::Family;

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

/// `-k`: a readable file is a key file; anything else may be a key string, as released
/// clients take it. A value that could be a key string is never echoed: it may be a
/// secret. One with a character base64 never has (`.`, `~`, `-`, …) can only be a path.
fn read_key(value: &Path) -> anyhow::Result<Key> {
    let read_error = match std::fs::read_to_string(value) {
        Ok(text) => {
            let text = Zeroizing::new(text);
            return Key::parse(&text)
                .with_context(|| format!("invalid key file {}", value.display()));
        }
        Err(e) => e,
    };
    let as_string = Zeroizing::new(value.to_string_lossy().into_owned());
    let base64_only = as_string
        .trim()
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '='));
    if !base64_only {
        return Err(read_error)
            .with_context(|| format!("cannot read key file {}", value.display()));
    }
    match Key::parse(&as_string) {
        Ok(key) => {
            eprintln!(
                "warning: the key was given on the command line, where other local users can see it (ps); put it in a file (mode 600) and pass its path with -k"
            );
            Ok(key)
        }
        Err(parse_error) => anyhow::bail!(
            "-k/--key-file is neither a readable key file ({read_error}) nor a valid key string ({parse_error})"
        ),
    }
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
        eprintln!("note: --permissive has no effect without --ip");
    }
    let family = match (args.ipv4, args.ipv6) {
        (true, _) => Family::V4,
        (_, true) => Family::V6,
        _ => Family::Both,
    };
    let targets = target::resolve(&args.address, family)?;
    let cmd_hash = command_hash(&args.command);
    let wire = match args.wire {
        WireArg::V0 => Wire::V0,
        WireArg::V1 => Wire::V1,
    };
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
        let datagram = seal(&key, wire, &plaintext)
            .context("cannot get random bytes from the operating system")?;
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
