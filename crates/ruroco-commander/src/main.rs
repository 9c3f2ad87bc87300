//! `ruroco-commander`: the privileged executor.
//!
//! It owns the Unix socket the server writes to, the command set from `commands.toml`,
//! and running those commands with time, output and concurrency bounds. It never reads
//! keys, never opens a network socket and links no cryptography: all it trusts is a
//! fixed-size message from a socket only the server's user can write to.
#![forbid(unsafe_code)]

mod cli;
mod commands;
mod executor;
mod socket;

use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use ruroco_config::Config;
use ruroco_ipc::{is_routable, CommanderMessage, MESSAGE_LEN};

use crate::cli::Cli;
use crate::commands::Commands;
use crate::executor::Executor;
use crate::socket::CommanderSocket;

/// How long the loop waits for a connection before checking the stop flag again.
const ACCEPT_POLL_MS: u16 = 1000;
/// How long a connection may take to deliver its message.
const READ_TIMEOUT: Duration = Duration::from_secs(1);

fn main() -> ExitCode {
    ruroco_config::init_logging();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let config = Config::load(&cli.config)?;
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    let source = commands::locate(cli.commands.as_deref(), &config, &cli.config)?;
    let commands = Commands::load_from(&source, &config)?;
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .context("cannot install signal handlers")?;
    }
    let socket = CommanderSocket::bind(
        &config.socket_path(),
        &config.socket_user,
        &config.socket_group,
    )?;
    tracing::info!(
        "ruroco-commander {} listening on {} with {} command(s) from {}{}",
        env!("CARGO_PKG_VERSION"),
        socket.path.display(),
        commands.len(),
        source.path().display(),
        match source {
            commands::Source::File(_) => "",
            commands::Source::Config(_) => " ([commands] table, released 0.14.x layout)",
        }
    );
    let executor = Executor::default();
    while !stop.load(Ordering::SeqCst) {
        let mut fds = [PollFd::new(socket.listener.as_fd(), PollFlags::POLLIN)];
        // EINTR (a signal) and timeouts both just lead back to the flag check.
        if !matches!(poll(&mut fds, PollTimeout::from(ACCEPT_POLL_MS)), Ok(n) if n > 0) {
            continue;
        }
        match socket.listener.accept() {
            Ok((stream, _)) => handle(
                stream,
                &socket.path,
                &commands,
                &executor,
                config.allow_non_routable_ips,
            ),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => {
                tracing::error!("accept on {} failed: {e}", socket.path.display());
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    tracing::info!(
        "shutdown requested: no new commands; waiting for {} running",
        executor.in_flight()
    );
    socket.close();
    executor.wait_idle();
    tracing::info!("ruroco-commander stopped");
    Ok(())
}

/// Reads one message (exactly 24 bytes, then end of stream) and starts its command.
fn handle(
    stream: UnixStream,
    socket: &Path,
    commands: &Commands,
    executor: &Executor,
    allow_non_routable: bool,
) {
    let bytes = match read_message(stream) {
        Ok(bytes) => bytes,
        Err(e) => {
            tracing::warn!("could not read a message from {}: {e}", socket.display());
            return;
        }
    };
    let message = match CommanderMessage::decode(&bytes) {
        Ok(message) => message,
        Err(e) if bytes.len() > MESSAGE_LEN => {
            tracing::warn!("rejected oversized message on the socket ({e}); nothing run");
            return;
        }
        Err(e) => {
            tracing::warn!("rejected message on the socket: {e}; nothing run");
            return;
        }
    };
    let ip = message.ip;
    let Some(spec) = commands.get(message.cmd_hash) else {
        tracing::warn!(
            "unknown command hash {:016x} for {ip}: nothing run",
            message.cmd_hash
        );
        return;
    };
    if !allow_non_routable && !is_routable(ip) {
        tracing::warn!(
            "refusing command {} for non-routable ip {ip} (set allow_non_routable_ips = true to allow)",
            spec.name
        );
        return;
    }
    if !executor.submit(spec.clone(), ip) {
        tracing::error!(
            "too many commands in flight; command {} for {ip} not run",
            spec.name
        );
    }
}

/// Reads at most one byte more than a message, so an oversized one is seen as such
/// without reading an unbounded stream.
fn read_message(stream: UnixStream) -> std::io::Result<Vec<u8>> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    let mut bytes = Vec::with_capacity(MESSAGE_LEN + 1);
    stream
        .take(MESSAGE_LEN as u64 + 1)
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}
