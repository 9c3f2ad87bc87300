//! `add`: a new saved server in one step — its key (mode 600 from the start), its
//! `client.toml` entry, and the commands that install the key on the server.

use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context};
use ruroco_proto::{Key, Wire};

use crate::cli::{AddArgs, WireArg};
use crate::profile::{self, Profile};
use crate::target::{split_host_port, valid_host};

pub(crate) fn add(args: &AddArgs, dir: &Path) -> anyhow::Result<ExitCode> {
    let name = &args.name;
    if !profile::valid_name(name) {
        bail!("server name `{name}` may only hold letters, digits, `-` and `_`");
    }
    let (host, _) = split_host_port(&args.address)?;
    if !valid_host(&host) {
        bail!(
            "invalid address `{}`: `{host}` is neither an IP address nor a DNS name",
            args.address
        );
    }
    if let Some(group) = args.groups.iter().find(|g| !profile::valid_name(g)) {
        bail!("group `{group}` may only hold letters, digits, `-` and `_`");
    }
    // This machine and this entry: two adds on one laptop for one server (a phone's key
    // and the laptop's) never print the same file name for the server.
    let key_name = match &args.key_name {
        Some(n) => n.clone(),
        None => format!("{}-{name}", default_key_name()),
    };
    if !profile::valid_name(&key_name) {
        bail!("--key-name `{key_name}` may only hold letters, digits, `-` and `_`");
    }
    ruroco_fs::create_private_dir(dir)
        .with_context(|| format!("cannot create config directory {}", dir.display()))?;
    let existing = Profile::load(dir)?;
    if existing.servers.contains_key(name) {
        bail!(
            "server `{name}` is already in {}; pick another name or edit the file",
            existing.path.display()
        );
    }
    let same_host: Vec<&str> = existing
        .servers
        .values()
        .filter(|s| split_host_port(&s.address).is_ok_and(|(h, _)| h.eq_ignore_ascii_case(&host)))
        .map(|s| s.name.as_str())
        .collect();
    let key_file = format!("{name}.key");
    let key_path = dir.join(&key_file);
    let key = Key::generate().context("cannot get random bytes from the operating system")?;
    let key_string = key.to_key_string();
    write_new_secret(&key_path, format!("{}\n", key_string.as_str()).as_bytes())?;
    let wire = args.wire.map(|w| match w {
        WireArg::V0 => Wire::V0,
        WireArg::V1 => Wire::V1,
    });
    let entry = profile::entry_text(
        name,
        &args.address,
        &key_file,
        args.command.as_deref(),
        &args.groups,
        wire,
    );
    append(&existing.path, &entry)?;

    let mut out = String::new();
    let _ = writeln!(
        out,
        "Saved server `{name}` in {} with a new key in {} (id {}).\n",
        existing.path.display(),
        key_path.display(),
        key.id()
    );
    let _ = writeln!(
        out,
        "Install the key on the server (as root there; the key travels on standard input, never on a command line):\n"
    );
    let _ = writeln!(out, "  {}\n", install_line(&host, &key_name, &key_path)?);
    let _ = writeln!(
        out,
        "Without a root login there: hand {} to the server's admin, who runs (as root):\n\n  {}\n",
        key_path.display(),
        admin_line(&key_name)?
    );
    if !same_host.is_empty() {
        eprintln!(
            "warning: {} already saved with host {host}: this is a second key for that server, to be installed as {key_name}.key beside the other",
            same_host.join(", ")
        );
    }
    let _ = writeln!(out, "Then: ruroco-client send {name}");
    print!("{out}");
    if args.qr {
        println!("\nThe key for a phone app (it is the secret: show it to nobody else):\n");
        match crate::qr::for_terminal(key_string.as_str(), crate::qr::terminal_columns()) {
            Ok(code) => print!("{code}"),
            // The server is saved; the code can be shown again later.
            Err(e) => println!("{e:#}; `ruroco-client qr {name}` shows it again"),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The command that installs the key on the server: every interpolated value quoted for
/// the local shell, and the remote part for the server's; `set -C` makes the redirection
/// refuse to replace an existing key file there (another client's key of the same name);
/// the key is 0640 root:ruroco, as the server expects; the server reloads if it runs.
pub(crate) fn install_line(host: &str, key_name: &str, key_path: &Path) -> anyhow::Result<String> {
    let quote = |s: &str| {
        shlex::try_quote(s)
            .map(|q| q.into_owned())
            .map_err(|e| anyhow::anyhow!("cannot quote `{s}` for a shell: {e}"))
    };
    let server_key = quote(&format!("/etc/ruroco/{key_name}.key"))?;
    let remote = format!(
        "set -C && umask 027 && cat > {server_key} && chgrp ruroco {server_key} && systemctl try-reload-or-restart ruroco"
    );
    let local_key = key_path
        .to_str()
        .with_context(|| format!("key path {} is not UTF-8", key_path.display()))?;
    Ok(format!(
        "ssh {} {} < {}",
        quote(&format!("root@{host}"))?,
        quote(&remote)?,
        quote(local_key)?
    ))
}

/// What the server's admin runs with the key file handed to them (as FILE).
pub(crate) fn admin_line(key_name: &str) -> anyhow::Result<String> {
    let target = shlex::try_quote(&format!("/etc/ruroco/{key_name}.key"))
        .map(|q| q.into_owned())
        .map_err(|e| anyhow::anyhow!("cannot quote the key name: {e}"))?;
    Ok(format!(
        "(set -C && umask 027 && cat > {target} && chgrp ruroco {target} && systemctl try-reload-or-restart ruroco) < FILE"
    ))
}

/// This machine's host name, made fit for a file name; "client" if there is none.
fn default_key_name() -> String {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let name: String = raw
        .trim()
        .split('.')
        .next()
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if profile::valid_name(&c.to_string()) {
                c
            } else {
                '-'
            }
        })
        .collect();
    if name.is_empty() {
        "client".to_owned()
    } else {
        name
    }
}

/// Creates `path` with mode 600 from the start (never wider, even for a moment); an
/// existing file is an error, never overwritten.
pub(crate) fn write_new_secret(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create key file {}", path.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write key file {}", path.display()))
}

pub(crate) fn append(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}
