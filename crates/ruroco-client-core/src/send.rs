//! `send`: from flags and saved servers to datagrams on the wire.
//!
//! [`plan`] merges the flags over a saved server (pure, so it is unit-tested); [`prepare`]
//! reads the key and resolves the address; [`transmit`] takes the counter lock once,
//! reserves one counter value per datagram and sends them all before letting go, so
//! concurrent clients still send in counter order.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use ruroco_proto::{command_hash, seal, Key, Plaintext, Wire, PROTOCOL_VERSION};
use zeroize::Zeroizing;

use crate::counter::Counter;
use crate::profile::Server;
use crate::target::{self, Family};

/// The command sent when neither a flag nor the saved server names one.
pub const DEFAULT_COMMAND: &str = "default";
/// Pause between the datagrams for two address families, unless set.
pub const DEFAULT_SEND_DELAY_MS: u64 = 50;

/// What the command line (or a form) says over a saved server's values.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// Let the server act on `ip` when the datagram comes from elsewhere.
    pub permissive: bool,
    /// The client address to claim, as typed.
    pub ip: Option<String>,
    /// Send over IPv4 only.
    pub ipv4: bool,
    /// Send over IPv6 only.
    pub ipv6: bool,
    /// Pause between the IPv4 and the IPv6 datagram.
    pub send_delay_ms: Option<u64>,
    /// The datagram format.
    pub wire: Option<Wire>,
}

/// Where the key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// The `-k` value: a key file, or else a key string.
    Arg(PathBuf),
    /// A saved server's key file.
    File(PathBuf),
}

/// Everything one server's send needs, after flags and saved values are merged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The saved server's name, if any.
    pub name: Option<String>,
    /// `HOST` or `HOST:PORT`.
    pub address: String,
    /// Where the key comes from.
    pub key: KeySource,
    /// The command to send.
    pub command: String,
    /// Which address families to send over.
    pub family: Family,
    /// The client address claimed in the datagram.
    pub claimed: Option<IpAddr>,
    /// Let the server act on `claimed` when the datagram comes from elsewhere.
    pub permissive: bool,
    /// The datagram format.
    pub wire: Wire,
    /// Pause between the datagrams of two address families.
    pub delay: Duration,
}

/// Merges the flags over `saved` (flags win). Without a saved server, `-a` and `-k` are
/// required.
pub fn plan(
    saved: Option<&Server>,
    address: Option<&str>,
    key: Option<&Path>,
    command: Option<&str>,
    opts: &Overrides,
    conf_dir: &Path,
) -> anyhow::Result<Plan> {
    let need =
        "give a saved server's name (see `ruroco-client list`), or -a/--address and -k/--key-file";
    let address = match (address, saved) {
        (Some(a), _) => a.to_owned(),
        (None, Some(s)) => s.address.clone(),
        (None, None) => anyhow::bail!("no address: {need}"),
    };
    let key = match (key, saved) {
        (Some(k), _) => KeySource::Arg(k.to_owned()),
        (None, Some(s)) => KeySource::File(key_path(conf_dir, &s.key)),
        (None, None) => anyhow::bail!("no key: {need}"),
    };
    let claimed = match &opts.ip {
        Some(text) => Some(claimed_ip(text)?),
        None => saved.and_then(|s| s.ip),
    };
    let (ipv4, ipv6) = if opts.ipv4 || opts.ipv6 {
        (opts.ipv4, opts.ipv6)
    } else {
        saved.map_or((false, false), |s| (s.ipv4, s.ipv6))
    };
    // Both flags at once mean both families, as the released client took them.
    let family = match (ipv4, ipv6) {
        (true, false) => Family::V4,
        (false, true) => Family::V6,
        _ => Family::Both,
    };
    let wire = opts
        .wire
        .or_else(|| saved.and_then(|s| s.wire))
        .unwrap_or(Wire::V1);
    let delay = opts
        .send_delay_ms
        .or(saved.and_then(|s| s.send_delay_ms))
        .unwrap_or(DEFAULT_SEND_DELAY_MS);
    let command = command
        .map(str::to_owned)
        .or_else(|| saved.and_then(|s| s.command.clone()))
        .unwrap_or_else(|| DEFAULT_COMMAND.to_owned());
    Ok(Plan {
        name: saved.map(|s| s.name.clone()),
        address,
        key,
        command,
        family,
        claimed,
        permissive: opts.permissive || saved.is_some_and(|s| s.permissive),
        wire,
        delay: Duration::from_millis(delay),
    })
}

/// Where a saved server's `key` points: `~/…` in the home directory, a relative path in
/// the config directory, an absolute one as it is.
pub fn key_path(conf_dir: &Path, key: &Path) -> PathBuf {
    if let Ok(rest) = key.strip_prefix("~") {
        if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
            return PathBuf::from(home).join(rest);
        }
    }
    conf_dir.join(key)
}

/// The key file of a server being deleted, if it may go too: only inside the config
/// directory, and only when none of `others` (the key entries of the servers that stay)
/// names the same file — imported entries all share one key, and a key elsewhere is not
/// this program's to delete. The error says why it stays.
pub fn deletable_key<'a>(
    conf_dir: &Path,
    key: &Path,
    others: impl IntoIterator<Item = (&'a str, &'a Path)>,
) -> Result<PathBuf, String> {
    // The real path: of the file, or (when it is gone) of its directory plus its name.
    let canonical = |p: &Path| {
        std::fs::canonicalize(p).unwrap_or_else(|_| {
            match (
                p.parent().and_then(|d| std::fs::canonicalize(d).ok()),
                p.file_name(),
            ) {
                (Some(dir), Some(name)) => dir.join(name),
                _ => p.to_owned(),
            }
        })
    };
    let path = key_path(conf_dir, key);
    let file = canonical(&path);
    if !file.starts_with(canonical(conf_dir)) {
        return Err(format!(
            "key file {} is outside {}; not deleted",
            path.display(),
            conf_dir.display()
        ));
    }
    let users: Vec<&str> = others
        .into_iter()
        .filter(|(_, other)| canonical(&key_path(conf_dir, other)) == file)
        .map(|(name, _)| name)
        .collect();
    if !users.is_empty() {
        return Err(format!(
            "key file {} is also the key of {}; not deleted",
            path.display(),
            users.join(", ")
        ));
    }
    Ok(path)
}

/// A plan with its key read and its address resolved.
pub struct Prepared {
    /// What is sent.
    pub plan: Plan,
    key: Key,
    targets: Vec<SocketAddr>,
    /// Things worth a word that do not stop the send (a key file others can read).
    pub warnings: Vec<String>,
}

/// Reads the key and resolves the address.
pub fn prepare(plan: Plan) -> anyhow::Result<Prepared> {
    let mut warnings = Vec::new();
    let key = match &plan.key {
        KeySource::Arg(value) => read_key_arg(value)?,
        KeySource::File(path) => read_key_file(path)?,
    };
    let (KeySource::Arg(path) | KeySource::File(path)) = &plan.key;
    warnings.extend(mode_warning(path));
    if plan.permissive && plan.claimed.is_none() {
        warnings.push("--permissive has no effect without --ip".to_owned());
    }
    let targets = target::resolve(&plan.address, plan.family)?;
    Ok(Prepared {
        plan,
        key,
        targets,
        warnings,
    })
}

/// A warning when the key file at `path` can be read or written by others.
pub fn mode_warning(path: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode();
    (mode & 0o077 != 0).then(|| {
        format!(
            "key file {} has mode {:04o}: other users of this machine can read the key; chmod 600 {0}",
            path.display(),
            mode & 0o7777
        )
    })
}

/// Sends every prepared plan's datagrams under one counter lock; one result per plan, in
/// order: the addresses sent to, or why not. Plans are sent side by side when there are
/// several, so one slow server's delay does not hold up the others.
pub fn transmit(
    prepared: &[Prepared],
    conf_dir: &Path,
) -> anyhow::Result<Vec<anyhow::Result<Delivery>>> {
    let counter = Counter::lock(conf_dir)?;
    let total: usize = prepared.iter().map(|p| p.targets.len()).sum();
    let mut next = counter.reserve(total)?;
    let mut firsts = Vec::with_capacity(prepared.len());
    for p in prepared {
        firsts.push(next);
        next = next.saturating_add(p.targets.len() as u128);
    }
    let jobs = prepared.iter().zip(firsts);
    let results = if prepared.len() == 1 {
        // The common case: no thread to start.
        jobs.map(|(p, first)| send_one(p, first)).collect()
    } else {
        std::thread::scope(|scope| {
            let handles: Vec<_> = jobs
                .map(|(p, first)| scope.spawn(move || send_one(p, first)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("sending thread failed")))
                })
                .collect()
        })
    };
    // The lock is held until here: every datagram has left.
    drop(counter);
    Ok(results)
}

/// Where one plan's datagrams went.
#[derive(Debug, Default)]
pub struct Delivery {
    /// Destinations a datagram left for.
    pub sent: Vec<SocketAddr>,
    /// Destinations that could not be sent to, and why.
    pub failed: Vec<(SocketAddr, String)>,
}

/// Sends one plan's datagrams with counters `first`, `first + 1`, …. A destination that
/// fails does not stop the others (an address with an IPv6 record on a machine without
/// IPv6 still gets its IPv4 datagram); `Err` only when none could be sent to.
fn send_one(p: &Prepared, first: u128) -> anyhow::Result<Delivery> {
    let cmd_hash = command_hash(&p.plan.command);
    let mut delivery = Delivery::default();
    for (n, target) in p.targets.iter().enumerate() {
        if n > 0 {
            std::thread::sleep(p.plan.delay);
        }
        let plaintext = Plaintext {
            version: PROTOCOL_VERSION,
            cmd_hash,
            counter: first.saturating_add(n as u128),
            strict: !p.plan.permissive,
            src_ip: p.plan.claimed,
            dst_ip: target.ip(),
        };
        let datagram = seal(&p.key, p.plan.wire, &plaintext)
            .context("cannot get random bytes from the operating system")?;
        match send_to(&datagram, *target) {
            Ok(()) => delivery.sent.push(*target),
            Err(e) => delivery.failed.push((*target, format!("{e:#}"))),
        }
    }
    if delivery.sent.is_empty() {
        let why: Vec<&str> = delivery.failed.iter().map(|(_, e)| e.as_str()).collect();
        anyhow::bail!("{}", why.join("; "));
    }
    Ok(delivery)
}

fn send_to(datagram: &[u8], target: SocketAddr) -> anyhow::Result<()> {
    let bind = if target.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    };
    let socket =
        UdpSocket::bind(bind).with_context(|| format!("cannot open a UDP socket for {target}"))?;
    socket
        .send_to(datagram, target)
        .with_context(|| format!("cannot send to {target}"))?;
    Ok(())
}

/// The key in the file at `path`; errors name the file.
pub fn read_key_file(path: &Path) -> anyhow::Result<Key> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .with_context(|| format!("cannot read key file {}", path.display()))?,
    );
    Key::parse(&text).with_context(|| format!("invalid key file {}", path.display()))
}

/// `-k`: a readable file is a key file; anything else may be a key string, as released
/// clients take it. A value that could be a key string is never echoed: it may be a
/// secret. One with a character base64 never has (`.`, `~`, `-`, …) can only be a path.
fn read_key_arg(value: &Path) -> anyhow::Result<Key> {
    let read_error = match std::fs::read_to_string(value) {
        Ok(text) => {
            let text = Zeroizing::new(text);
            return Key::parse(&text)
                .with_context(|| format!("invalid key file {}", value.display()));
        }
        Err(e) => e,
    };
    let as_string = Zeroizing::new(value.to_string_lossy().into_owned());
    let base64_only = as_string
        .trim()
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '='));
    if !base64_only {
        return Err(read_error)
            .with_context(|| format!("cannot read key file {}", value.display()));
    }
    match Key::parse(&as_string) {
        Ok(key) => {
            eprintln!(
                "warning: the key was given on the command line, where other local users can see it (ps); put it in a file (mode 600) and pass its path with -k"
            );
            Ok(key)
        }
        Err(parse_error) => anyhow::bail!(
            "-k/--key-file is neither a readable key file ({read_error}) nor a valid key string ({parse_error})"
        ),
    }
}

/// The address of `--ip`: one IP address, or one with a prefix length (`::1/64`, the form
/// the released client's help shows and sends): the datagram carries the address, so the
/// prefix is dropped.
pub fn claimed_ip(text: &str) -> anyhow::Result<IpAddr> {
    let text = text.trim();
    let (addr, prefix) = match text.split_once('/') {
        Some((addr, prefix)) => (addr, Some(prefix)),
        None => (text, None),
    };
    let ip: IpAddr = addr.parse().ok().with_context(|| {
        format!("--ip must be an IP address (optionally ADDR/PREFIX), got `{text}`")
    })?;
    if let Some(prefix) = prefix {
        let max = if ip.is_ipv4() { 32 } else { 128 };
        match prefix.parse::<u8>() {
            Ok(p) if p <= max => {}
            _ => anyhow::bail!("--ip `{text}`: the prefix length must be 0 to {max}"),
        }
    }
    Ok(ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn saved() -> Server {
        Server {
            name: "web1".into(),
            address: "web1.example.com:34020".into(),
            key: "web1.key".into(),
            command: Some("open_ssh".into()),
            groups: vec![],
            ip: Some("203.0.113.7".parse().unwrap()),
            permissive: false,
            ipv4: false,
            ipv6: true,
            wire: Some(Wire::V0),
            send_delay_ms: Some(5),
            wait_port: None,
        }
    }

    #[test]
    fn saved_values_fill_in() {
        let p = plan(
            Some(&saved()),
            None,
            None,
            None,
            &Overrides::default(),
            Path::new("/c"),
        )
        .unwrap();
        assert_eq!(p.name.as_deref(), Some("web1"));
        assert_eq!(p.address, "web1.example.com:34020");
        assert_eq!(p.key, KeySource::File("/c/web1.key".into()));
        assert_eq!(p.command, "open_ssh");
        assert_eq!(p.family, Family::V6);
        assert_eq!(p.claimed, Some("203.0.113.7".parse().unwrap()));
        assert_eq!(p.wire, Wire::V0);
        assert_eq!(p.delay, Duration::from_millis(5));
        assert!(!p.permissive);
    }

    #[test]
    fn flags_override_saved_values() {
        let opts = Overrides {
            permissive: true,
            ip: Some("198.51.100.1".into()),
            ipv4: true,
            ipv6: false,
            send_delay_ms: Some(0),
            wire: Some(Wire::V1),
        };
        let p = plan(
            Some(&saved()),
            Some("other:1"),
            Some(Path::new("/k/x.key")),
            Some("deploy"),
            &opts,
            Path::new("/c"),
        )
        .unwrap();
        assert_eq!(p.address, "other:1");
        assert_eq!(p.key, KeySource::Arg("/k/x.key".into()));
        assert_eq!(p.command, "deploy");
        assert_eq!(p.family, Family::V4);
        assert_eq!(p.claimed, Some("198.51.100.1".parse().unwrap()));
        assert_eq!(p.wire, Wire::V1);
        assert_eq!(p.delay, Duration::ZERO);
        assert!(p.permissive);
    }

    #[test]
    fn without_a_saved_server_the_original_flags_suffice() {
        let p = plan(
            None,
            Some("h"),
            Some(Path::new("k")),
            None,
            &Overrides::default(),
            Path::new("/c"),
        )
        .unwrap();
        assert_eq!(p.command, DEFAULT_COMMAND);
        assert_eq!(p.wire, Wire::V1);
        assert_eq!(p.family, Family::Both);
        assert_eq!(p.delay, Duration::from_millis(DEFAULT_SEND_DELAY_MS));
        let err = plan(
            None,
            None,
            Some(Path::new("k")),
            None,
            &Overrides::default(),
            Path::new("/c"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("no address"), "{err}");
        let err = plan(
            None,
            Some("h"),
            None,
            None,
            &Overrides::default(),
            Path::new("/c"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("no key"), "{err}");
    }

    #[test]
    fn ip_takes_the_released_clients_prefix_form() {
        assert_eq!(
            claimed_ip("::1/64").unwrap(),
            "::1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            claimed_ip(" 192.0.2.7/32 ").unwrap(),
            "192.0.2.7".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            claimed_ip("192.0.2.7").unwrap(),
            "192.0.2.7".parse::<IpAddr>().unwrap()
        );
        assert!(claimed_ip("192.0.2.7/33").is_err());
        assert!(claimed_ip("::1/129").is_err());
        assert!(claimed_ip("::1/").is_err());
        let err = claimed_ip("example.com").unwrap_err().to_string();
        assert!(err.contains("--ip must be an IP address"), "{err}");
    }

    #[test]
    fn a_shared_or_outside_key_is_not_deletable() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("shared.key"), "k").unwrap();
        std::fs::write(dir.path().join("own.key"), "k").unwrap();
        let others = [("web2", Path::new("shared.key"))];
        let err = deletable_key(dir.path(), Path::new("shared.key"), others).unwrap_err();
        assert!(err.contains("also the key of web2"), "{err}");
        assert_eq!(
            deletable_key(dir.path(), Path::new("own.key"), others).unwrap(),
            dir.path().join("own.key")
        );
        let outside = tempfile::tempdir().unwrap();
        let elsewhere = outside.path().join("x.key");
        std::fs::write(&elsewhere, "k").unwrap();
        let err = deletable_key(dir.path(), &elsewhere, []).unwrap_err();
        assert!(err.contains("outside"), "{err}");
        let err = deletable_key(dir.path(), Path::new("../x.key"), []).unwrap_err();
        assert!(err.contains("outside"), "{err}");
    }
}
