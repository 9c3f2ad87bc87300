//! `ruroco-client`: makes keys and sends the one encrypted datagram.
//!
//! It owns the key files (read from files; a key string on `-k` only for released
//! clients' habits), the saved servers of `client.toml`, the counter in the conf dir with
//! its lock, the UDP send, and the `proxy` that lets `ssh` knock before it connects. It
//! never waits for an answer: the server gives none.
//!
//! On Linux it starts without Rust's runtime set-up (`no_main`): that set-up reads
//! `/proc/self/maps` to place a stack-overflow guard and installs signal handlers, about
//! 0.1 ms of a command that lives for one. What is given up: a stack overflow ends the
//! client with a plain SIGSEGV instead of a message, and SIGPIPE keeps its default (a
//! closed standard output ends the client silently, as it does `cat`).
#![deny(unsafe_code)]
#![cfg_attr(all(target_os = "linux", not(test)), no_main)]

/// Writes one line to standard error with a single `write`. Standard error is unbuffered,
/// and `eprintln!` writes each formatted piece on its own: the line a send prints took
/// 14 system calls.
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::output::say(format_args!($($arg)*))
    };
}

mod cli;
mod output;
mod proxy;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use ruroco_proto::Key;

use ruroco_client_core::counter::{now_nanos, Counter};
use ruroco_client_core::profile::Profile;
use ruroco_client_core::{qr, send, wait};

use crate::cli::{Cli, Cmd, SendArgs};

/// The C `main` the C library calls; `process::exit` flushes standard output. The client
/// exits with `SUCCESS` or `FAILURE` only (the values of `ExitCode` cannot be read back).
#[cfg(all(target_os = "linux", not(test)))]
#[allow(unsafe_code)] // `no_mangle` names the symbol the C start-up code calls.
#[no_mangle]
extern "C" fn main(
    _argc: std::ffi::c_int,
    _argv: *const *const std::ffi::c_char,
) -> std::ffi::c_int {
    std::process::exit(if run() == ExitCode::SUCCESS { 0 } else { 1 })
}

#[cfg(any(not(target_os = "linux"), test))]
fn main() -> ExitCode {
    run()
}

fn run() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Gen => gen(),
        Cmd::Send(args) => conf_dir().and_then(|dir| send(&args, &dir)),
        Cmd::List => conf_dir().and_then(|dir| list(&dir)),
        Cmd::Add(args) => conf_dir().and_then(|dir| output::add(&args, &dir)),
        Cmd::Import(args) => conf_dir().and_then(|dir| output::import(&args, &dir)),
        Cmd::Proxy(args) => conf_dir().and_then(|dir| proxy::proxy(&args, &dir)),
        Cmd::Reseed(args) => conf_dir().and_then(|dir| reseed(args.yes, &dir)),
        Cmd::Qr(args) => conf_dir().and_then(|dir| show_qr(&args.name, &dir)),
        Cmd::Completions(args) => print_completions(args.shell),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            say!("ruroco-client: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `completions SHELL`: the script for the shell, on standard output.
fn print_completions(shell: ruroco_config::Shell) -> anyhow::Result<ExitCode> {
    use clap::CommandFactory;
    ruroco_config::write_completions(shell, &mut Cli::command(), &mut std::io::stdout())
        .context("cannot write the completion script")?;
    Ok(ExitCode::SUCCESS)
}

/// `RUROCO_CONF_DIR`, else `$HOME/.config/ruroco`.
fn conf_dir() -> anyhow::Result<PathBuf> {
    ruroco_client_core::conf_dir()
}

fn gen() -> anyhow::Result<ExitCode> {
    let key = Key::generate().context("cannot get random bytes from the operating system")?;
    println!("{}", key.to_key_string().as_str());
    Ok(ExitCode::SUCCESS)
}

fn reseed(yes: bool, dir: &Path) -> anyhow::Result<ExitCode> {
    let counter = Counter::lock(dir)?;
    let now = now_nanos();
    let stored = counter.read()?;
    let date = |ns: u128| ruroco_config::utc(u64::try_from(ns / 1_000_000).unwrap_or(u64::MAX));
    let Some(last) = stored.filter(|last| *last > now) else {
        let last = stored.map_or_else(|| "none yet".to_owned(), date);
        println!(
            "the counter (last sent: {last}) is not ahead of this clock ({}): every send already uses the current time; nothing to change",
            date(now)
        );
        return Ok(ExitCode::SUCCESS);
    };
    let ahead = (last - now) / 1_000_000_000;
    println!(
        "the counter is {ahead} s ahead of this clock: last sent {}, now {}.",
        date(last),
        date(now)
    );
    if !yes {
        println!(
            "Reseeding sets it to now. Do it only if the server refused those datagrams as `future`: if it accepted any, it will refuse every send with this key as `replay` until {} (the client cannot tell, since servers never answer). Run `ruroco-client reseed --yes` to do it.",
            date(last)
        );
        return Ok(ExitCode::FAILURE);
    }
    counter.write(now)?;
    println!(
        "counter in {} set back from {} to {}",
        dir.display(),
        date(last),
        date(now)
    );
    Ok(ExitCode::SUCCESS)
}

fn show_qr(name: &str, dir: &Path) -> anyhow::Result<ExitCode> {
    let profile = Profile::load(dir)?;
    let server = profile.server(name)?;
    let key = send::read_key_file(&send::key_path(dir, &server.key))?;
    let code = qr::for_terminal(key.to_key_string().as_str(), qr::terminal_columns())?;
    println!("The key of `{name}` for a phone app (it is the secret: show it to nobody else):\n");
    print!("{code}");
    Ok(ExitCode::SUCCESS)
}

fn list(dir: &Path) -> anyhow::Result<ExitCode> {
    let profile = Profile::load(dir)?;
    if profile.servers.is_empty() {
        say!(
            "no saved servers in {} (`ruroco-client add NAME --address HOST[:PORT]` saves one)",
            profile.path.display()
        );
    }
    print!("{}", profile.listing(|key| send::key_path(dir, key)));
    Ok(ExitCode::SUCCESS)
}

fn send(args: &SendArgs, dir: &Path) -> anyhow::Result<ExitCode> {
    let plan = |saved| {
        send::plan(
            saved,
            args.address.as_deref(),
            args.key_file.as_deref(),
            args.command.as_deref(),
            &output::overrides(&args.options),
            dir,
        )
    };
    let wait =
        |port: Option<u16>| port.map(|port| (port, std::time::Duration::from_secs(args.wait_secs)));
    let Some(target) = &args.target else {
        return send_single(plan(None)?, dir, wait(args.wait_port));
    };
    let profile = Profile::load(dir)?;
    let Some(group) = target.strip_prefix('@') else {
        let saved = profile.server(target)?;
        // The saved server's wait_port unless the flag names one.
        let port = args.wait_port.or(saved.wait_port);
        return send_single(plan(Some(saved))?, dir, wait(port));
    };
    if args.wait_port.is_some() {
        anyhow::bail!("--wait-port is for one server, not a group: send to each by name");
    }
    // A group: every member at once, one line each, failure if any failed.
    let members = profile.group(group)?;
    let plans: Vec<_> = members
        .iter()
        .map(|s| plan(Some(s)))
        .collect::<anyhow::Result<_>>()?;
    let prepared: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = plans
            .into_iter()
            .map(|p| {
                let name = p.name.clone().unwrap_or_default();
                (name, scope.spawn(move || send::prepare(p)))
            })
            .collect();
        handles
            .into_iter()
            .map(|(name, h)| {
                let result = h
                    .join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("preparing failed")));
                (name, result)
            })
            .collect()
    });
    let mut failed = 0;
    let mut ready = Vec::new();
    for (name, result) in prepared {
        match result {
            Ok(p) => {
                for warning in &p.warnings {
                    println!("{name}: warning: {warning}");
                }
                ready.push(p);
            }
            Err(e) => {
                failed += 1;
                println!("{name}: failed: {e:#}");
            }
        }
    }
    if !ready.is_empty() {
        for (p, result) in ready.iter().zip(send::transmit(&ready, dir)?) {
            let name = p.plan.name.as_deref().unwrap_or_default();
            match result {
                Ok(delivery) => {
                    println!(
                        "{name}: sent `{}` to {}",
                        p.plan.command,
                        join(&delivery.sent)
                    );
                    for (target, why) in &delivery.failed {
                        println!("{name}: not sent to {target}: {why}");
                    }
                }
                Err(e) => {
                    failed += 1;
                    println!("{name}: failed: {e:#}");
                }
            }
        }
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// One server; with `wait` (port, how long), knock then try the port, and knock once
/// more if it stays closed.
fn send_single(
    plan: send::Plan,
    dir: &Path,
    wait: Option<(u16, std::time::Duration)>,
) -> anyhow::Result<ExitCode> {
    let Some((port, how_long)) = wait else {
        return knock(plan, dir);
    };
    let host = ruroco_client_core::target::split_host_port(&plan.address)?.0;
    knock(plan.clone(), dir)?;
    let secs = how_long.as_secs();
    let watched = wait::watch(&host, port, how_long, |why| {
        say!("port {port} still closed after {secs} s ({why:#}); knocking once more");
        knock(plan, dir).map(|_| ())
    })?;
    Ok(match watched {
        wait::Watched::Open { took, second } => {
            let again = if second {
                " (after a second knock)"
            } else {
                ""
            };
            say!("port {port} open after {} ms{again}", took.as_millis());
            ExitCode::SUCCESS
        }
        wait::Watched::Closed(why) => {
            say!(
                "sent; port {port} still closed after {secs} s ({why}) — see the server's log (`reason=` says why a knock was refused)"
            );
            ExitCode::FAILURE
        }
    })
}

fn knock(plan: send::Plan, dir: &Path) -> anyhow::Result<ExitCode> {
    let command = plan.command.clone();
    let prepared = send::prepare(plan)?;
    for warning in &prepared.warnings {
        say!("warning: {warning}");
    }
    for result in send::transmit(&[prepared], dir)? {
        let delivery = result?;
        for target in &delivery.sent {
            say!("sent command `{command}` to {target} (a server never answers: see its log to know it ran)");
        }
        for (target, why) in &delivery.failed {
            say!("warning: not sent to {target}: {why}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn join(addrs: &[std::net::SocketAddr]) -> String {
    addrs
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
