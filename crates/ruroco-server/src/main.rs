//! `ruroco-server`: the internet-facing daemon.
//!
//! It owns the UDP socket (see `socket`), the keys, the replay floors and the rate limits,
//! and does only I/O around `ruroco_proto::decide`. It never sends a byte back to the
//! network, never runs a command itself, and only talks to the commander through its Unix
//! socket. `unsafe` is confined to `signal` and `activation`.
#![deny(unsafe_code)]

mod activation;
mod allow;
mod cli;
mod floors;
mod forward;
mod keys;
mod logbook;
mod server;
mod signal;
mod socket;

use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use ruroco_config::Config;
use ruroco_proto::{Policy, RateLimiter};

use crate::cli::Cli;
use crate::floors::FloorStore;
use crate::forward::Forwarder;
use crate::logbook::Logbook;
use crate::server::{now_nanos, Server};

fn main() -> ExitCode {
    ruroco_config::init_logging();
    let cli = Cli::parse();
    match start(cli).and_then(|mut server| server.run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

fn start(cli: Cli) -> anyhow::Result<Server> {
    let config = Config::load(&cli.config)?;
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    let ips = config.required_ips(&cli.config)?.to_vec();
    let loaded = keys::load_keys(&config.config_dir)?;
    let allow = allow::AllowList::build(&config.key_commands, &loaded.names, &cli.config)?;
    let keys = loaded.ring;
    let mut floors = FloorStore::load(config.blocklist_dir())?;
    floors.seed(keys.ids(), now_nanos())?;

    let source = socket::resolve(
        cli.address,
        socket::SocketEnv::from_process(),
        std::process::id(),
        config.address.clone(),
    )?;
    let socket = socket::open(&source)?;
    signal::install_signal_handlers().context("cannot install signal handlers")?;
    let local = socket
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| "?".into());
    let forwarder = Forwarder::new(config.socket_path());
    tracing::info!(
        "ruroco-server {} listening on {local} ({source}), {} key(s) ({} with an allow-list), formats {}, floors in {}, commander at {}",
        env!("CARGO_PKG_VERSION"),
        keys.len(),
        allow.len(),
        if config.accept_v0 { "v1 and v0" } else { "v1 only" },
        floors.path().display(),
        forwarder.socket().display(),
        source = match &source {
            socket::SocketSource::Bind { origin, .. } => origin,
            socket::SocketSource::Activation => &"socket activation",
        },
    );
    Ok(Server {
        socket,
        keys,
        floors,
        policy: Policy {
            ips,
            max_clock_skew_secs: config.max_clock_skew_seconds,
            accept_v0: config.accept_v0,
        },
        limiter: RateLimiter::new(
            config.max_requests_per_second,
            config.max_requests_per_second_global,
        ),
        forwarder,
        allow,
        started: Instant::now(),
        logbook: Logbook::new(0),
    })
}
