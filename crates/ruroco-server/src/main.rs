//! `ruroco-server`: the internet-facing daemon.
//!
//! It owns the UDP socket (see `socket`), the keys, the replay floors and the rate limits,
//! and does only I/O around `ruroco_proto::decide`. It never sends a byte back to the
//! network, never runs a command itself, and only talks to the commander through its Unix
//! socket. `unsafe` is confined to `signal`, `activation`, `socket_drops` and `heap`.
#![deny(unsafe_code)]

mod activation;
mod allow;
mod batch;
mod cli;
mod floor_format;
mod floors;
mod forward;
mod handoff;
mod heap;
mod kernel_filter;
mod keys;
mod logbook;
mod metrics;
mod original_floors;
mod quorum;
mod redis;
mod reload;
mod server;
mod setup;
mod shared_floors;
mod signal;
mod socket;
mod socket_drops;

use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use ruroco_proto::RateLimiter;

use crate::cli::Cli;
use crate::floors::FloorStore;
use crate::forward::Forwarder;
use crate::logbook::Logbook;
use crate::metrics::ServerMetrics;
use crate::server::{now_nanos, Server};

fn main() -> ExitCode {
    heap::fix_large_blocks();
    let cli = Cli::parse();
    ruroco_config::init_logging(ruroco_config::log_format(cli.log_format, &cli.config));
    if let Some(cli::Action::WriteOriginalFloors { to, layout }) = &cli.action {
        return match write_original_floors(&cli.config, to.as_deref(), *layout) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{e:#}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(cli::Action::Completions { shell }) = cli.action {
        use clap::CommandFactory;
        return match ruroco_config::write_completions(
            shell,
            &mut Cli::command(),
            &mut std::io::stdout(),
        ) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("ruroco-server: cannot write the completion script: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if cli.check_units {
        let lines = ruroco_config::shadowing_units(&cli.root, own_exe().as_deref());
        for line in &lines {
            println!("warning: {line}");
        }
        return if lines.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    if cli.check {
        return check(&cli);
    }
    match start(cli).and_then(|mut server| server.run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `write-original-floors`: our floors into the original's `blocklist.msgpck`, for going
/// back to the original ruroco.
fn write_original_floors(
    config_path: &std::path::Path,
    to: Option<&std::path::Path>,
    layout: Option<original_floors::Layout>,
) -> anyhow::Result<()> {
    let config = ruroco_config::Config::load(config_path)?;
    let floors = FloorStore::load(config.blocklist_dir())?;
    let dirs = original_floors::dirs(config.blocklist_dir(), &config.config_dir);
    let to = match to {
        Some(to) => to.to_owned(),
        None => original_floors::located(&dirs)
            .unwrap_or_else(|| config.config_dir.join(original_floors::FILE)),
    };
    let done = original_floors::write_back(floors.table(), &to, layout)?;
    // Ours are in the original's file now: a later switch carries them back (the record
    // names the file before this write, by size and hash).
    println!(
        "wrote the replay floors of {} key(s) to {} ({:?} layout; {} raised from ours): the original ruroco refuses everything this server accepted",
        done.keys,
        done.path.display(),
        done.layout,
        done.raised
    );
    Ok(())
}

/// This program's own path, resolved.
fn own_exe() -> Option<std::path::PathBuf> {
    std::env::current_exe()
        .ok()
        .and_then(|p| std::fs::canonicalize(p).ok())
}

/// `--check`: one line per problem, or one summary line; nothing is bound or written.
fn check(cli: &Cli) -> ExitCode {
    for line in ruroco_config::shadowing_units(&cli.root, own_exe().as_deref()) {
        println!("warning: {line}");
    }
    let problems = setup::check(&cli.config, cli.address.clone());
    if problems.is_empty() {
        // Without the floor store: its name is checked above and warned about below.
        match setup::load_for_reload(&cli.config) {
            Ok(s) => {
                for warning in &s.config.warnings {
                    println!("warning: {warning}");
                }
                if let Some(warning) = setup::placeholder_ips(&s.config) {
                    println!("warning: {warning}");
                }
                for line in setup::check_notes(&s.config) {
                    println!("{line}");
                }
                if let Some(line) = setup::filter_note(&s.config, &s.keys) {
                    println!("{line}");
                }
                if let Some(line) = setup::store_note(&s.config) {
                    println!("{line}");
                }
                println!(
                    "{}: OK ({} key(s), {} with an allow-list)",
                    cli.config.display(),
                    s.keys.len(),
                    s.allow.len()
                );
                return ExitCode::SUCCESS;
            }
            Err(e) => println!("{e:#}"),
        }
    }
    for problem in problems {
        println!("{problem}");
    }
    ExitCode::FAILURE
}

fn start(cli: Cli) -> anyhow::Result<Server> {
    let settings = setup::load(&cli.config)?;
    let config = settings.config;
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    if let Some(warning) = setup::placeholder_ips(&config) {
        tracing::warn!("{warning}");
    }
    let keys = settings.keys;
    // The first few by id, the rest counted (the start line says how many).
    keys::log_ids("loaded key", &keys.ids().collect::<Vec<_>>());
    let allow = settings.allow;
    let shared = settings.shared;
    if let Some(problem) = setup::floor_dir_problem(&config) {
        anyhow::bail!("{problem}");
    }
    let mut floors = FloorStore::load(config.blocklist_dir())?;
    // Before seeding: a key the original server knew keeps its floor, not "now".
    let dirs = original_floors::dirs(config.blocklist_dir(), &config.config_dir);
    if let Some(carried) = original_floors::find(&dirs)? {
        if original_floors::due(&carried, config.blocklist_dir()) {
            let changed = floors.carry_over(&carried.floors)?;
            original_floors::record(config.blocklist_dir(), &carried)?;
            tracing::info!(
                "carried over the replay floors of {} key(s) from the original ruroco's {} ({changed} raised or added ours), once: recorded in {}",
                carried.floors.len(),
                carried.path.display(),
                original_floors::record_path(config.blocklist_dir()).display()
            );
        } else {
            tracing::warn!(
                "{}",
                original_floors::stale_warning(&carried.path, config.blocklist_dir())
            );
        }
    }
    floors.seed(keys.ids(), ruroco_proto::seed_floor(now_nanos()))?;

    let source = socket::resolve(
        cli.address,
        socket::SocketEnv::from_process(),
        std::process::id(),
        config.address.clone(),
    )?;
    let socket = socket::open(&source)?;
    let filter_mode = kernel_filter::apply(
        &socket,
        config.kernel_filter,
        &kernel_filter::sorted_ids(&keys),
        config.accept_v0,
    );
    signal::install_signal_handlers().context("cannot install signal handlers")?;
    // What reading the keys and seeding their floors freed goes back to the kernel.
    heap::give_back();
    let local = socket
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| "?".into());
    let forwarder = Forwarder::new(config.socket_path());
    tracing::info!(
        "ruroco-server {} listening on {local} ({source}), {} key(s) ({} with an allow-list), formats {}, floors in {}{}, commander at {}",
        ruroco_config::VERSION,
        keys.len(),
        allow.len(),
        if config.accept_v0 { "v1 and v0" } else { "v1 only" },
        floors.path().display(),
        shared
            .as_ref()
            .map(|s| format!(" and shared through {}", s.endpoint()))
            .unwrap_or_default(),
        forwarder.socket().display(),
        source = match &source {
            socket::SocketSource::Bind { origin, .. } => origin,
            socket::SocketSource::Activation => &"socket activation",
        },
    );
    let start_time = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let metrics_file = config.metrics_dir.as_deref().map(setup::metrics_file);
    let drop_counter = socket_drops::DropCounter::new(&socket);
    Ok(Server {
        socket,
        metrics: ServerMetrics {
            kernel_filter: filter_mode,
            ..ServerMetrics::new(keys.len(), start_time, drop_counter)
        },
        keys,
        floors,
        policy: settings.policy,
        limiter: RateLimiter::new(
            config.max_requests_per_second,
            config.max_requests_per_second_global,
        ),
        forwarder,
        allow,
        shared,
        started: Instant::now(),
        logbook: Logbook::new(0),
        config_path: cli.config,
        config,
        metrics_file,
        handoff: handoff::Handoff::default(),
        service: ruroco_config::ServiceManager::new(),
        status_at: None,
        reload_pending: None,
        reload_again: false,
    })
}
