//! The command line's side of `add` and `import`: flags in, the library's result printed.

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

use ruroco_client_core::add::{self, KeyChoice, NewServer};
use ruroco_client_core::{import, qr, send};
use ruroco_proto::Wire;

use crate::cli::{AddArgs, ImportArgs, SendOptions, WireArg};

/// The library's datagram format for the flag's.
pub(crate) fn wire(arg: WireArg) -> Wire {
    match arg {
        WireArg::V0 => Wire::V0,
        WireArg::V1 => Wire::V1,
    }
}

/// The send flags as the library takes them.
pub(crate) fn overrides(o: &SendOptions) -> send::Overrides {
    send::Overrides {
        permissive: o.permissive,
        ip: o.ip.clone(),
        ipv4: o.ipv4,
        ipv6: o.ipv6,
        send_delay_ms: o.send_delay_ms,
        wire: o.wire.map(wire),
    }
}

/// `add`: saves the server with a new key and prints how to install the key.
pub(crate) fn add(args: &AddArgs, dir: &Path) -> anyhow::Result<ExitCode> {
    let new = NewServer {
        name: args.name.clone(),
        address: args.address.clone(),
        command: args.command.clone(),
        groups: args.groups.clone(),
        ip: None,
        permissive: false,
        ipv4: false,
        ipv6: false,
        wire: args.wire.map(wire),
        key_name: args.key_name.clone(),
        key: KeyChoice::Generate,
    };
    let added = add::add(&new, dir)?;
    let name = &args.name;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Saved server `{name}` in {} with a new key in {} (id {}).\n",
        added.profile_path.display(),
        added.key_path.display(),
        added.key_id
    );
    let _ = writeln!(
        out,
        "Install the key on the server (as root there; the key travels on standard input, never on a command line):\n"
    );
    let _ = writeln!(out, "  {}\n", added.install_line);
    let _ = writeln!(
        out,
        "Without a root login there: hand {} to the server's admin, who runs (as root):\n\n  {}\n",
        added.key_path.display(),
        added.admin_line
    );
    if !added.same_host.is_empty() {
        say!(
            "warning: {} already saved with host {}: this is a second key for that server, to be installed as {}.key beside the other",
            added.same_host.join(", "),
            added.host,
            added.key_name
        );
    }
    let _ = writeln!(out, "Then: ruroco-client send {name}");
    print!("{out}");
    if args.qr {
        println!("\nThe key for a phone app (it is the secret: show it to nobody else):\n");
        match qr::for_terminal(added.key_text.as_str(), qr::terminal_columns()) {
            Ok(code) => print!("{code}"),
            // The server is saved; the code can be shown again later.
            Err(e) => println!("{e:#}; `ruroco-client qr {name}` shows it again"),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `import`: adds the original GUI's saved commands and prints each.
pub(crate) fn import(args: &ImportArgs, dir: &Path) -> anyhow::Result<ExitCode> {
    let done = import::import(&args.file, &args.key_file, args.dry_run, dir)?;
    let verb = if done.dry_run { "would add" } else { "added" };
    for s in &done.servers {
        println!(
            "{verb} `{}`: {} -c {}; {}",
            s.name, s.address, s.command, s.flags
        );
    }
    for (entry, name) in &done.skipped {
        println!("already saved as `{name}`: {entry} (not added again)");
    }
    println!(
        "{verb} {} server(s) to {} with key {}{}",
        done.servers.len(),
        done.profile_path.display(),
        done.key_path.display(),
        if done.dry_run {
            " (dry run: nothing written)"
        } else {
            ""
        }
    );
    Ok(ExitCode::SUCCESS)
}

/// The line for [`say!`]: formatted first, then written at once (a failed write to
/// standard error has nowhere to be reported).
pub(crate) fn say(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut text = line.to_string();
    text.push('\n');
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}
