//! `add`: a new saved server in one step — its key (mode 600 from the start), its
//! `client.toml` entry, and the commands that install the key on the server.

use std::io::Write as _;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use ruroco_proto::{Key, Wire};
use zeroize::Zeroizing;

use crate::profile::{self, Profile};
use crate::target::{split_host_port, valid_host};

/// Where a new server's key comes from.
#[derive(Debug, Clone)]
pub enum KeyChoice {
    /// A new random key.
    Generate,
    /// The key in this file (copied into the configuration directory, mode 600).
    File(PathBuf),
    /// This key string (pasted; written to the configuration directory, mode 600).
    Text(Zeroizing<String>),
}

impl KeyChoice {
    /// The key chosen: a new one, read from the file (errors name it), or parsed.
    pub fn key(&self) -> anyhow::Result<Key> {
        match self {
            KeyChoice::Generate => {
                Key::generate().context("cannot get random bytes from the operating system")
            }
            KeyChoice::File(path) => crate::send::read_key_file(path),
            KeyChoice::Text(text) => Key::parse(text).context("invalid key"),
        }
    }
}

/// A server to save, as the user describes it.
#[derive(Debug, Clone)]
pub struct NewServer {
    /// Its name in `client.toml` (letters, digits, `-`, `_`).
    pub name: String,
    /// `HOST` or `HOST:PORT`.
    pub address: String,
    /// The command sent when none is given.
    pub command: Option<String>,
    /// Groups it belongs to.
    pub groups: Vec<String>,
    /// The client address to claim in the datagram.
    pub ip: Option<IpAddr>,
    /// Let the server act on `ip` when the datagram comes from elsewhere.
    pub permissive: bool,
    /// Send over IPv4 only.
    pub ipv4: bool,
    /// Send over IPv6 only.
    pub ipv6: bool,
    /// The datagram format, when not protocol v1.
    pub wire: Option<Wire>,
    /// The key's name on the server (`/etc/ruroco/NAME.key`); default: this machine's
    /// host name and the server's name.
    pub key_name: Option<String>,
    /// Where the key comes from.
    pub key: KeyChoice,
}

/// What [`add`] did, for the front end to show.
#[derive(Debug)]
pub struct Added {
    /// The server as saved.
    pub server: profile::Server,
    /// `client.toml`.
    pub profile_path: PathBuf,
    /// The key file, mode 600.
    pub key_path: PathBuf,
    /// The key's id (its first 8 bytes in hex, as the server logs it).
    pub key_id: String,
    /// The key as text (the secret: for a QR code, never for a log).
    pub key_text: Zeroizing<String>,
    /// The server's host.
    pub host: String,
    /// The key's name on the server.
    pub key_name: String,
    /// The one line that installs the key on the server over ssh.
    pub install_line: String,
    /// What the server's admin runs with the key file (as FILE) instead.
    pub admin_line: String,
    /// Saved servers with the same host (this key is a second one for that server).
    pub same_host: Vec<String>,
}

/// Saves a new server: checks every value, writes its key (mode 600 from the start, never
/// over an existing file) and appends its `client.toml` entry.
pub fn add(new: &NewServer, dir: &Path) -> anyhow::Result<Added> {
    let name = &new.name;
    if let Some(problem) = profile::name_problem("server name", name) {
        bail!("{problem}");
    }
    let (host, _) = split_host_port(&new.address)?;
    if !valid_host(&host) {
        bail!(
            "invalid address `{}`: `{host}` is neither an IP address nor a DNS name",
            new.address
        );
    }
    if let Some(group) = new.groups.iter().find(|g| !profile::valid_name(g)) {
        bail!("group `{group}` may only hold letters, digits, `-` and `_`");
    }
    if new.ipv4 && new.ipv6 {
        bail!("IPv4 only and IPv6 only cannot both be set");
    }
    if new.command.as_deref().is_some_and(|c| c.trim().is_empty()) {
        bail!("the command is empty");
    }
    // This machine and this entry: two adds on one laptop for one server (a phone's key
    // and the laptop's) never print the same file name for the server.
    let key_name = match &new.key_name {
        Some(n) => n.clone(),
        None => server_key_name(name),
    };
    if !profile::valid_name(&key_name) {
        bail!("key name `{key_name}` may only hold letters, digits, `-` and `_`");
    }
    let key = new.key.key()?;
    ruroco_fs::create_private_dir(dir)
        .with_context(|| format!("cannot create config directory {}", dir.display()))?;
    let _lock = profile::lock(dir)?;
    let existing = Profile::load(dir)?;
    if existing.servers.contains_key(name) || existing.broken.contains_key(name) {
        bail!(
            "server `{name}` is already in {}; pick another name or edit the file",
            existing.path.display()
        );
    }
    let same_host: Vec<String> = existing
        .servers
        .values()
        .filter(|s| split_host_port(&s.address).is_ok_and(|(h, _)| h.eq_ignore_ascii_case(&host)))
        .map(|s| s.name.clone())
        .collect();
    // A deleted server's key may still lie there (its file is never overwritten): the new
    // one takes the next free name.
    let key_file = (1..=99)
        .map(|n| {
            if n == 1 {
                format!("{name}.key")
            } else {
                format!("{name}-{n}.key")
            }
        })
        .find(|f| std::fs::symlink_metadata(dir.join(f)).is_err())
        .with_context(|| format!("no free key file name for `{name}` in {}", dir.display()))?;
    let key_path = dir.join(&key_file);
    let key_text = key.to_key_string();
    write_new_secret(&key_path, format!("{}\n", key_text.as_str()).as_bytes())?;
    let server = profile::Server {
        name: name.clone(),
        address: new.address.clone(),
        key: PathBuf::from(&key_file),
        command: new.command.clone(),
        groups: new.groups.clone(),
        ip: new.ip,
        permissive: new.permissive,
        ipv4: new.ipv4,
        ipv6: new.ipv6,
        wire: new.wire,
        send_delay_ms: None,
        wait_port: None,
    };
    append(&existing.path, &profile::entry_text(&server))?;
    Ok(Added {
        install_line: install_line(&host, &key_name, &key_path)?,
        admin_line: admin_line(&key_name)?,
        server,
        profile_path: existing.path,
        key_path,
        key_id: key.id().to_string(),
        key_text: Zeroizing::new(key_text.as_str().to_owned()),
        host,
        key_name,
        same_host,
    })
}

/// The command that installs the key on the server: every interpolated value quoted for
/// the local shell, and the remote part for the server's; `set -C` makes the redirection
/// refuse to replace an existing key file there (another client's key of the same name);
/// the key is 0640 root:ruroco, as the server expects; the server reloads if it runs.
pub fn install_line(host: &str, key_name: &str, key_path: &Path) -> anyhow::Result<String> {
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
pub fn admin_line(key_name: &str) -> anyhow::Result<String> {
    let target = shlex::try_quote(&format!("/etc/ruroco/{key_name}.key"))
        .map(|q| q.into_owned())
        .map_err(|e| anyhow::anyhow!("cannot quote the key name: {e}"))?;
    Ok(format!(
        "(set -C && umask 027 && cat > {target} && chgrp ruroco {target} && systemctl try-reload-or-restart ruroco) < FILE"
    ))
}

/// The default name of a key on the server for the saved server `server`: this
/// machine's host name and the server's name (`laptop-web1`), as `add` names it.
pub fn server_key_name(server: &str) -> String {
    format!("{}-{server}", default_key_name())
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
pub fn write_new_secret(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
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

/// Appends `text` to the file at `path` (created if missing, mode 600 from the start:
/// `client.toml` names servers, addresses and key files).
pub fn append(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}
