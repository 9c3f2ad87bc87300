//! `proxy NAME HOST PORT`, for OpenSSH's `ProxyCommand`: knock, then connect and relay.
//!
//! It sends the saved server's command, connects to HOST:PORT over TCP — retrying for a
//! bounded time while the command opens the firewall — and copies standard input to the
//! connection and the connection to standard output until the server closes it.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use ruroco_client_core::profile::Profile;
use ruroco_client_core::send;

use crate::cli::ProxyArgs;

pub(crate) fn proxy(args: &ProxyArgs, dir: &Path) -> anyhow::Result<ExitCode> {
    let profile = Profile::load(dir)?;
    let saved = profile.server(&args.name)?;
    let plan = send::plan(
        Some(saved),
        None,
        None,
        args.command.as_deref(),
        &send::Overrides::default(),
        dir,
    )?;
    let prepared = send::prepare(plan)?;
    for warning in &prepared.warnings {
        say!("ruroco-client: warning: {warning}");
    }
    for result in send::transmit(&[prepared], dir)? {
        result?;
    }
    let host = connect_host(&profile, &args.host);
    let (stream, _) = ruroco_client_core::wait::connect_within(
        &host,
        args.port,
        Duration::from_secs(args.wait_secs),
    )
    .context("after sending the command")?;
    relay(stream)?;
    Ok(ExitCode::SUCCESS)
}

/// The host to connect to: ssh passes the `Host` alias as `%h` when there is no
/// `HostName`, so a `%h` that is a saved server's name means that server's address.
fn connect_host(profile: &Profile, host: &str) -> String {
    match profile.servers.get(host) {
        Some(saved) => ruroco_client_core::target::split_host_port(&saved.address)
            .map(|(h, _)| h)
            .unwrap_or_else(|_| host.to_owned()),
        None => host.to_owned(),
    }
}

/// Standard input to the connection (then a half-close), the connection to standard
/// output; done when the server closes its side.
fn relay(stream: TcpStream) -> anyhow::Result<()> {
    let mut upstream = stream.try_clone().context("cannot clone the connection")?;
    // Not joined: it may sit in a read of standard input after the server has gone.
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buf = [0u8; 16 * 1024];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let chunk = buf.get(..n).unwrap_or_default();
                    if upstream.write_all(chunk).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = upstream.shutdown(Shutdown::Write);
    });
    let mut downstream = stream;
    let mut stdout = std::io::stdout().lock();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match downstream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).context("connection failed"),
        };
        stdout
            .write_all(buf.get(..n).unwrap_or_default())
            .and_then(|()| stdout.flush())
            .context("cannot write to standard output")?;
    }
    Ok(())
}
