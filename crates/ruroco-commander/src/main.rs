//! `ruroco-commander`: the privileged executor.
//!
//! It owns the Unix socket the server writes to, the command set from `commands.toml`,
//! and running those commands with time, output and concurrency bounds, their undos and
//! hooks. It never reads keys, never opens a network socket and links no cryptography:
//! all it trusts is a fixed-size message from a socket only the server's user can write to.
#![forbid(unsafe_code)]

mod aftermath;
mod cli;
mod clock;
mod commands;
mod drain;
mod hooks;
mod intake;
mod leftovers;
mod metrics;
mod policy;
mod runner;
mod service;
mod setup;
mod socket;
mod trust;
mod undo;
mod undo_store;
mod upkeep;
mod values;
mod warm;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Action, Cli};
use crate::service::{Parts, Service};
use crate::socket::CommanderSocket;
use crate::undo_store::UndoStore;

fn main() -> ExitCode {
    let cli = Cli::parse();
    ruroco_config::init_logging(ruroco_config::log_format(cli.log_format, &cli.config));
    let origin = setup::Origin {
        config: cli.config.clone(),
        commands: cli.commands.clone(),
    };
    if cli.check {
        let own = std::env::current_exe()
            .ok()
            .and_then(|p| std::fs::canonicalize(p).ok());
        for line in ruroco_config::shadowing_units(&cli.root, own.as_deref()) {
            println!("warning: {line}");
        }
        return check(&origin);
    }
    let result = match cli.action {
        Some(Action::Pending) => pending(&cli),
        Some(Action::RunPending) => setup::load_config(&cli.config)
            .and_then(|config| match setup::state_problem(&config) {
                Some(problem) => Err(anyhow::anyhow!("{problem}")),
                None => Ok(config),
            })
            .and_then(|config| drain::run_pending(&config))
            .and_then(|all| {
                if all {
                    Ok(())
                } else {
                    anyhow::bail!("some undos failed; they stay pending")
                }
            }),
        Some(Action::Completions { shell }) => {
            use clap::CommandFactory;
            ruroco_config::write_completions(shell, &mut Cli::command(), &mut std::io::stdout())
                .map_err(|e| anyhow::anyhow!("cannot write the completion script: {e}"))
        }
        None => serve(origin),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `--check`: one line per problem, or one summary line.
fn check(origin: &setup::Origin) -> ExitCode {
    let problems = setup::check(origin);
    if problems.is_empty() {
        match setup::load(origin) {
            Ok(s) => {
                if let Some(note) = s.non_routable_note() {
                    println!("note: {note}");
                }
                println!(
                    "{}: OK ({} command(s) from {})",
                    origin.config.display(),
                    s.commands.len(),
                    s.source.path().display()
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

fn serve(origin: setup::Origin) -> anyhow::Result<()> {
    let settings = setup::load(&origin)?;
    if let Some(note) = settings.non_routable_note() {
        tracing::warn!("{note}");
    }
    let allow_non_routable = settings.allow_non_routable();
    let (config, commands, source) = (settings.config, settings.commands, settings.source);
    let commands_refused = settings.commands_refused;
    if let Some(problem) = &commands_refused {
        tracing::error!(
            "{problem}; no command runs until it is fixed (then SIGHUP or restart); pending undos still run"
        );
    }
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    // Before anything of the state directory is read: it is ours alone from here on.
    let _state_lock = leftovers::hold_state_dir(config.state_dir())?;
    let store = UndoStore::new(config.state_dir());
    let pending = store.load(clock::now_unix_ms())?;
    let socket = CommanderSocket::open(
        &config.socket_path(),
        &config.socket_user,
        &config.socket_group,
    )?;
    // The state directory's lock is ours: whatever still carries the previous start's
    // token (kept there) is a leftover of a commander that died without stopping its
    // commands.
    let state_dir = config.state_dir();
    if let Some(previous) = leftovers::previous_token(state_dir) {
        let killed = leftovers::kill_leftovers(&previous, &socket.path);
        if killed > 0 {
            tracing::warn!("killed {killed} process(es) left by a previous commander");
        }
    }
    // Everything started from now on carries the marker and this start's token
    // (inherited by its children).
    match leftovers::new_token(state_dir) {
        Ok(token) => std::env::set_var(leftovers::TOKEN_VAR, token),
        Err(e) => tracing::warn!(
            "cannot write {}: {e}; processes left running by this commander if it is killed will not be found by the next start",
            leftovers::token_path(state_dir).display()
        ),
    }
    std::env::set_var(leftovers::MARKER, &socket.path);
    // Said only once the service (with its signal handlers) stands: a SIGTERM that
    // follows this line always stops the commander cleanly.
    let ready = format!(
        "ruroco-commander {} listening on {}{} with {} command(s) from {}{}",
        ruroco_config::VERSION,
        socket.path.display(),
        if socket.adopted {
            " (socket passed by systemd)"
        } else {
            ""
        },
        commands.len(),
        source.path().display(),
        match source {
            commands::Source::File(_) => "",
            commands::Source::Config(_) => " ([commands] table, released 0.14.x layout)",
        }
    );
    let start_time = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let mut service = Service::new(Parts {
        socket,
        commands,
        commands_refused,
        commands_source: source.path().to_owned(),
        allow_non_routable,
        store,
        pending,
        metrics_file: config
            .metrics_dir
            .as_deref()
            .map(|dir| ruroco_metrics::MetricsFile::new(dir, "ruroco-commander")),
        origin,
        start_time,
    })?;
    tracing::info!("{ready}");
    service.run();
    // A clean stop waited for its commands: nothing of this start is a leftover. What
    // they started to outlive them (a daemon restarted by a command) is left alone by the
    // next start.
    if let Err(e) = leftovers::clear_token(state_dir) {
        tracing::warn!(
            "cannot remove {}: {e}; the next start may end processes this commander's commands started",
            leftovers::token_path(state_dir).display()
        );
    }
    Ok(())
}

/// `ruroco-commander pending`: one line per pending undo, earliest first.
fn pending(cli: &Cli) -> anyhow::Result<()> {
    let config = setup::load_config(&cli.config)?;
    let store = UndoStore::new(config.state_dir());
    let mut undos = store.read()?;
    undos.sort_by_key(|u| u.due_unix_ms);
    let mut text = String::new();
    if undos.is_empty() {
        text.push_str(&format!("no pending undos ({})\n", store.path().display()));
    }
    let now = clock::now_unix_ms();
    for u in undos {
        let when = if u.due_unix_ms <= now {
            "overdue".to_owned()
        } else {
            format!("in {} s", (u.due_unix_ms - now).div_ceil(1000))
        };
        text.push_str(&format!(
            "{}\t{}\t{}\t{when}\n",
            u.command,
            u.ip,
            clock::utc(u.due_unix_ms)
        ));
    }
    // A reader that stopped early (`| grep -q`, `| head`) is no error of ours, and never
    // a panic.
    use std::io::Write;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow::anyhow!("cannot write to standard output: {e}"))
        }
        _ => Ok(()),
    }
}
