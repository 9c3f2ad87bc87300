//! `ruroco-commander`: the privileged executor.
//!
//! It owns the Unix socket the server writes to, the command set from `commands.toml`,
//! and running those commands with time, output and concurrency bounds, their undos and
//! hooks. It never reads keys, never opens a network socket and links no cryptography:
//! all it trusts is a fixed-size message from a socket only the server's user can write to.
#![forbid(unsafe_code)]

mod cli;
mod clock;
mod commands;
mod hooks;
mod policy;
mod runner;
mod service;
mod socket;
mod undo;
mod undo_store;

use std::process::ExitCode;

use clap::Parser;
use ruroco_config::Config;

use crate::cli::{Action, Cli};
use crate::commands::Commands;
use crate::service::Service;
use crate::socket::CommanderSocket;
use crate::undo_store::UndoStore;

fn main() -> ExitCode {
    ruroco_config::init_logging();
    let cli = Cli::parse();
    let result = match cli.action {
        Some(Action::Pending) => pending(&cli),
        None => serve(&cli),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(cli: &Cli) -> anyhow::Result<()> {
    let config = Config::load(&cli.config)?;
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    let source = commands::locate(cli.commands.as_deref(), &config, &cli.config)?;
    let commands = Commands::load_from(&source, &config)?;
    let store = UndoStore::new(config.state_dir());
    let pending = store.load(clock::now_unix_ms())?;
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
    let mut service = Service::new(
        socket,
        commands,
        config.allow_non_routable_ips,
        store,
        pending,
    )?;
    service.run();
    Ok(())
}

/// `ruroco-commander pending`: one line per pending undo, earliest first.
fn pending(cli: &Cli) -> anyhow::Result<()> {
    let config = Config::load(&cli.config)?;
    let store = UndoStore::new(config.state_dir());
    let mut undos = store.read()?;
    undos.sort_by_key(|u| u.due_unix_ms);
    if undos.is_empty() {
        println!("no pending undos ({})", store.path().display());
    }
    let now = clock::now_unix_ms();
    for u in undos {
        let when = if u.due_unix_ms <= now {
            "overdue".to_owned()
        } else {
            format!("in {} s", (u.due_unix_ms - now).div_ceil(1000))
        };
        println!(
            "{}\t{}\t{}\t{when}",
            u.command,
            u.ip,
            clock::utc(u.due_unix_ms)
        );
    }
    Ok(())
}
