//! `<conf dir>/client.toml`: saved servers, so `send web1` and `send @prod` need no flags.
//!
//! ```toml
//! [servers.web1]
//! address = "web1.example.com:34020"
//! key = "web1.key"            # relative to the conf dir
//! command = "open_ssh"        # default command
//! groups = ["prod"]
//! # also: ip, permissive, ipv4, ipv6, wire, send_delay_ms
//! ```
//!
//! Every error names the file, and the server and field when there is one.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use ruroco_proto::Wire;
use serde::Deserialize;

/// File name inside the conf dir.
pub const FILE_NAME: &str = "client.toml";

/// One saved server as written in the file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    address: Option<String>,
    key: Option<PathBuf>,
    command: Option<String>,
    #[serde(default)]
    groups: Vec<String>,
    ip: Option<String>,
    permissive: Option<bool>,
    ipv4: Option<bool>,
    ipv6: Option<bool>,
    wire: Option<String>,
    send_delay_ms: Option<u64>,
    wait_port: Option<u16>,
}

/// One saved server, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// Its name (the `NAME` of `[servers.NAME]`).
    pub name: String,
    /// `HOST` or `HOST:PORT`.
    pub address: String,
    /// Absolute, or relative to the conf dir as written.
    pub key: PathBuf,
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
    /// The datagram format, when set.
    pub wire: Option<Wire>,
    /// Pause between the IPv4 and the IPv6 datagram, when set.
    pub send_delay_ms: Option<u64>,
    /// A TCP port to watch after each send (knock, then know), when set.
    pub wait_port: Option<u16>,
}

/// The saved servers, by name.
#[derive(Debug, Default)]
pub struct Profile {
    /// `client.toml`.
    pub path: PathBuf,
    /// The usable entries.
    pub servers: BTreeMap<String, Server>,
    /// Entries that could not be used, with why (file, line, field): one bad entry does
    /// not stop sends to the others; using it by name is the error.
    pub broken: BTreeMap<String, String>,
}

/// The longest name: server, group and key names become file names and TOML keys.
pub const MAX_NAME_LEN: usize = 64;

/// What is wrong with `name` as a `what` (e.g. "server name"), in words a person can act
/// on; `None` when it is fine.
pub fn name_problem(what: &str, name: &str) -> Option<String> {
    if name.is_empty() {
        return Some(format!("the {what} is empty"));
    }
    if name.chars().count() > MAX_NAME_LEN {
        return Some(format!(
            "the {what} is {} characters long; {MAX_NAME_LEN} at most",
            name.chars().count()
        ));
    }
    (!valid_name(name))
        .then(|| format!("{what} `{name}` may only hold letters, digits, `-` and `_`"))
}

/// Whether `name` can name a server, group or key file: letters, digits, `-`, `_`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl Profile {
    /// Reads `<dir>/client.toml`; a missing file is an empty profile.
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join(FILE_NAME);
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::parse(&text, &path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self {
                path,
                ..Self::default()
            }),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Parses and checks `text`; `path` names the file in errors and anchors relative keys.
    pub fn parse(text: &str, path: &Path) -> anyhow::Result<Self> {
        let file = path.display();
        let mut root: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            anyhow::anyhow!(
                "invalid {file}: {}",
                ruroco_config::describe_toml_error(text, &e)
            )
        })?;
        if let Some(unknown) = root.keys().find(|k| *k != "servers") {
            bail!(
                "invalid {file}: unknown key `{unknown}` (only [servers.NAME] tables are allowed)"
            );
        }
        let table = match root.remove("servers") {
            None => toml::Table::new(),
            Some(toml::Value::Table(table)) => table,
            Some(_) => bail!("invalid {file}: `servers` must be a table of [servers.NAME] tables"),
        };
        let mut servers = BTreeMap::new();
        let mut broken = BTreeMap::new();
        for (name, value) in table {
            match check(&name, value) {
                Ok(server) => {
                    servers.insert(name, server);
                }
                Err(e) => {
                    let why = format!("{e:#}");
                    let line = locate(text, &name, &why)
                        .map(|n| format!(", line {n}"))
                        .unwrap_or_default();
                    broken.insert(
                        name.clone(),
                        format!("invalid {file}{line}: server `{name}`: {why}"),
                    );
                }
            }
        }
        Ok(Self {
            path: path.to_owned(),
            servers,
            broken,
        })
    }

    /// The server called `name`.
    pub fn server(&self, name: &str) -> anyhow::Result<&Server> {
        if let Some(why) = self.broken.get(name) {
            bail!("{why}");
        }
        self.servers.get(name).with_context(|| {
            format!(
                "no server `{name}` in {} (`ruroco-client list` shows the saved ones; `ruroco-client add` saves one)",
                self.path.display()
            )
        })
    }

    /// Every server in `group`, in name order.
    pub fn group(&self, group: &str) -> anyhow::Result<Vec<&Server>> {
        let members: Vec<&Server> = self
            .servers
            .values()
            .filter(|s| s.groups.iter().any(|g| g == group))
            .collect();
        if members.is_empty() {
            bail!(
                "no server in {} belongs to group `{group}`",
                self.path.display()
            );
        }
        Ok(members)
    }

    /// One line per server, for `list`; `key_path` resolves a saved key to its file, which
    /// is flagged when it is missing. Broken entries are listed with why.
    pub fn listing(&self, key_path: impl Fn(&Path) -> PathBuf) -> String {
        let mut out = String::new();
        for s in self.servers.values() {
            let _ = write!(out, "{}\t{}\t{}", s.name, s.address, s.key.display());
            if !key_path(&s.key).exists() {
                out.push_str(" (MISSING)");
            }
            if let Some(command) = &s.command {
                let _ = write!(out, "\tcommand={command}");
            }
            if !s.groups.is_empty() {
                let _ = write!(out, "\tgroups={}", s.groups.join(","));
            }
            if let Some(wire) = s.wire {
                let _ = write!(out, "\twire={wire}");
            }
            out.push('\n');
        }
        for (name, why) in &self.broken {
            let _ = writeln!(out, "{name}\tBROKEN: {why}");
        }
        out
    }
}

/// The line of the field an error about server `name` names (its first `quoted` word),
/// else of the server's entry.
fn locate(text: &str, name: &str, why: &str) -> Option<usize> {
    ruroco_config::line_of(text, "servers", name, why.split('`').nth(1))
}

/// Checks one `[servers.NAME]` table; the error names the field.
fn check(name: &str, value: toml::Value) -> anyhow::Result<Server> {
    if !valid_name(name) {
        bail!("the name may only hold letters, digits, `-` and `_`");
    }
    let raw: RawServer = value
        .try_into()
        .map_err(|e: toml::de::Error| anyhow::anyhow!("{}", e.message().trim()))?;
    let address = raw.address.context("field `address` is missing")?;
    crate::target::split_host_port(&address).context("field `address`")?;
    let key = raw.key.context("field `key` is missing")?;
    let ip = match raw.ip {
        Some(text) => Some(
            text.trim()
                .parse::<IpAddr>()
                .ok()
                .with_context(|| format!("field `ip`: `{text}` is not an IP address"))?,
        ),
        None => None,
    };
    let wire = match raw.wire {
        Some(text) => Some(text.parse::<Wire>().context("field `wire`")?),
        None => None,
    };
    let (ipv4, ipv6) = (raw.ipv4.unwrap_or(false), raw.ipv6.unwrap_or(false));
    if ipv4 && ipv6 {
        bail!("fields `ipv4` and `ipv6` cannot both be true");
    }
    if let Some(group) = raw.groups.iter().find(|g| !valid_name(g)) {
        bail!("field `groups`: `{group}` may only hold letters, digits, `-` and `_`");
    }
    if raw.command.as_deref().is_some_and(str::is_empty) {
        bail!("field `command` is empty");
    }
    if raw.wait_port == Some(0) {
        bail!("field `wait_port`: 0 is no port (1 to 65535)");
    }
    Ok(Server {
        name: name.to_owned(),
        address,
        key,
        command: raw.command,
        groups: raw.groups,
        ip,
        permissive: raw.permissive.unwrap_or(false),
        ipv4,
        ipv6,
        wire,
        send_delay_ms: raw.send_delay_ms,
        wait_port: raw.wait_port,
    })
}

/// The `[servers.NAME]` block for `server`, as `add` appends it.
pub fn entry_text(server: &Server) -> String {
    let mut doc = toml_edit::DocumentMut::new();
    let mut servers = toml_edit::Table::new();
    servers.set_implicit(true);
    servers.insert(&server.name, toml_edit::Item::Table(entry_table(server)));
    doc.insert("servers", toml_edit::Item::Table(servers));
    format!("\n{doc}")
}

/// The fields of one entry; defaults (false, empty) are left out.
fn entry_table(server: &Server) -> toml_edit::Table {
    let mut t = toml_edit::Table::new();
    t.insert("address", toml_edit::value(&server.address));
    t.insert(
        "key",
        toml_edit::value(server.key.to_string_lossy().as_ref()),
    );
    if let Some(command) = &server.command {
        t.insert("command", toml_edit::value(command));
    }
    if !server.groups.is_empty() {
        let groups: toml_edit::Array = server.groups.iter().map(String::as_str).collect();
        t.insert("groups", toml_edit::value(groups));
    }
    if let Some(ip) = server.ip {
        t.insert("ip", toml_edit::value(ip.to_string()));
    }
    for (field, on) in [
        ("permissive", server.permissive),
        ("ipv4", server.ipv4),
        ("ipv6", server.ipv6),
    ] {
        if on {
            t.insert(field, toml_edit::value(true));
        }
    }
    if let Some(wire) = server.wire {
        t.insert("wire", toml_edit::value(wire.as_str()));
    }
    if let Some(ms) = server.send_delay_ms {
        t.insert(
            "send_delay_ms",
            toml_edit::value(i64::try_from(ms).unwrap_or(i64::MAX)),
        );
    }
    if let Some(port) = server.wait_port {
        t.insert("wait_port", toml_edit::value(i64::from(port)));
    }
    t
}

/// How long a change to `client.toml` waits for another one to finish.
const EDIT_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The lock every change to `client.toml` holds (`client.toml.lock`), so that two front
/// ends saving at once never lose each other's entry.
pub fn lock(dir: &Path) -> anyhow::Result<ruroco_fs::LockFile> {
    let path = dir.join(format!("{FILE_NAME}.lock"));
    ruroco_fs::LockFile::acquire_within(&path, EDIT_WAIT, EDIT_WAIT, || {})
        .with_context(|| format!("cannot lock {}", path.display()))?
        .with_context(|| {
            format!(
                "gave up after {} s waiting for {}: another ruroco program is changing client.toml",
                EDIT_WAIT.as_secs(),
                path.display()
            )
        })
}

/// Writes `server` into `<dir>/client.toml`: in place of the entry `replacing` names (an
/// edit, which may rename it), else as a new entry. Everything else in the file, comments
/// included, stays as it was. The result is checked before it is written, and written to
/// a new file renamed over the old one: a reader never sees half a file.
pub fn save(dir: &Path, server: &Server, replacing: Option<&str>) -> anyhow::Result<()> {
    if !valid_name(&server.name) {
        bail!(
            "server name `{}` may only hold letters, digits, `-` and `_`",
            server.name
        );
    }
    edit(dir, |servers| {
        if replacing != Some(server.name.as_str()) && servers.contains_key(&server.name) {
            bail!(
                "server `{}` is already saved; pick another name",
                server.name
            );
        }
        let mut table = entry_table(server);
        if let Some(old) = replacing {
            let Some(toml_edit::Item::Table(old_table)) = servers.remove(old) else {
                bail!("server `{old}` is not saved (any more)");
            };
            // Where it was, with the comments above it.
            if let Some(position) = old_table.position() {
                table.set_position(position);
            }
            *table.decor_mut() = old_table.decor().clone();
        }
        servers.insert(&server.name, toml_edit::Item::Table(table));
        Ok(())
    })
    .map(|_| ())
}

/// Removes the entry `name` from `<dir>/client.toml` (its key file stays); the entry as it
/// was, so the caller can remove the key too.
pub fn remove(dir: &Path, name: &str) -> anyhow::Result<Server> {
    let before = Profile::load(dir)?;
    let removed = before.server(name)?.clone();
    edit(dir, |servers| {
        servers
            .remove(name)
            .map(|_| ())
            .with_context(|| format!("server `{name}` is not saved (any more)"))
    })?;
    Ok(removed)
}

/// Reads `client.toml` under its lock, lets `change` edit its `[servers]` table, checks
/// the result and replaces the file; the file as it now is.
fn edit(
    dir: &Path,
    change: impl FnOnce(&mut toml_edit::Table) -> anyhow::Result<()>,
) -> anyhow::Result<Profile> {
    ruroco_fs::create_private_dir(dir)
        .with_context(|| format!("cannot create config directory {}", dir.display()))?;
    let _lock = lock(dir)?;
    let path = dir.join(FILE_NAME);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let mut doc: toml_edit::DocumentMut = text
        .parse()
        .map_err(|e| anyhow::anyhow!("invalid {}: {e}", path.display()))?;
    let servers = doc
        .entry("servers")
        .or_insert_with(|| {
            let mut t = toml_edit::Table::new();
            t.set_implicit(true);
            toml_edit::Item::Table(t)
        })
        .as_table_mut()
        .with_context(|| format!("invalid {}: `servers` is not a table", path.display()))?;
    change(servers)?;
    let new_text = doc.to_string();
    let profile = Profile::parse(&new_text, &path)?;
    let newly_broken = profile
        .broken
        .iter()
        .find(|(name, _)| !before_broken(&text, &path, name));
    if let Some((_, why)) = newly_broken {
        bail!("{why}");
    }
    ruroco_fs::write_atomically_mode(&path, new_text.as_bytes(), 0o600)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(profile)
}

/// Whether entry `name` was already unusable in `text` (an edit never makes one so).
fn before_broken(text: &str, path: &Path, name: &str) -> bool {
    Profile::parse(text, path).is_ok_and(|p| p.broken.contains_key(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> anyhow::Result<Profile> {
        Profile::parse(text, Path::new("/conf/client.toml"))
    }

    #[test]
    fn client_toml_documents_exactly_the_keys_the_parser_accepts() {
        let parsed = ruroco_config::fields::serde_fields::<RawServer>();
        let documented: Vec<&str> = ruroco_config::fields::SERVER_KEYS.names().collect();
        assert!(!parsed.is_empty());
        assert_eq!(parsed, documented.as_slice());
        let example = parse(ruroco_config::fields::CLIENT_TOML.example).unwrap();
        assert!(example.broken.is_empty(), "{:?}", example.broken);
        assert_eq!(example.servers.len(), 1);
    }

    #[test]
    fn full_entry() {
        let p = parse(
            r#"
            [servers.web1]
            address = "web1.example.com:34020"
            key = "web1.key"
            command = "open_ssh"
            groups = ["prod", "web"]
            ip = "203.0.113.7"
            permissive = true
            ipv4 = true
            wire = "v0"
            send_delay_ms = 10
            "#,
        )
        .unwrap();
        let s = p.server("web1").unwrap();
        assert_eq!(s.address, "web1.example.com:34020");
        assert_eq!(s.key, Path::new("web1.key"));
        assert_eq!(s.command.as_deref(), Some("open_ssh"));
        assert_eq!(s.ip, Some("203.0.113.7".parse().unwrap()));
        assert!(s.permissive && s.ipv4 && !s.ipv6);
        assert_eq!(s.wire, Some(Wire::V0));
        assert_eq!(s.send_delay_ms, Some(10));
        assert_eq!(p.group("web").unwrap().len(), 1);
    }

    #[test]
    fn errors_name_file_server_and_field() {
        for (text, field) in [
            ("[servers.a]\nkey = \"k\"\n", "`address`"),
            ("[servers.a]\naddress = \"h\"\n", "`key`"),
            (
                "[servers.a]\naddress = \"h\"\nkey = \"k\"\nwire = \"v7\"\n",
                "`wire`",
            ),
            (
                "[servers.a]\naddress = \"h\"\nkey = \"k\"\nip = \"x\"\n",
                "`ip`",
            ),
            (
                "[servers.a]\naddress = \"h\"\nkey = \"k\"\nwirre = \"v0\"\n",
                "wirre",
            ),
            (
                "[servers.a]\naddress = \"h:99999\"\nkey = \"k\"\n",
                "`address`",
            ),
            (
                "[servers.a]\naddress = \"h\"\nkey = \"k\"\nipv4 = true\nipv6 = true\n",
                "`ipv4`",
            ),
        ] {
            let profile = parse(&format!(
                "{text}[servers.b]\naddress = \"h\"\nkey = \"k\"\n"
            ))
            .unwrap();
            let err = format!("{:#}", profile.server("a").unwrap_err());
            assert!(err.contains("/conf/client.toml, line "), "{err}");
            assert!(err.contains("server `a`"), "{err}");
            assert!(err.contains(field), "{field}: {err}");
            // The other entry still works.
            assert!(profile.server("b").is_ok());
        }
        let profile = parse("[servers.a]\naddress = \"h\"\nkey = \"k\"\nip = \"x\"\n").unwrap();
        let err = format!("{:#}", profile.server("a").unwrap_err());
        assert!(err.contains("line 4"), "{err}");
        let profile = parse("\n[servers.a]\nkey = \"k\"\n").unwrap();
        let err = format!("{:#}", profile.server("a").unwrap_err());
        assert!(err.contains("line 2"), "{err}");
        let err = format!("{:#}", parse("[servers.a\n").unwrap_err());
        assert!(
            err.contains("/conf/client.toml") && err.contains("line 1"),
            "{err}"
        );
    }

    #[test]
    fn unknown_server_and_empty_group_are_named() {
        let p = parse("[servers.a]\naddress = \"h\"\nkey = \"k\"\ngroups = [\"g\"]\n").unwrap();
        let err = p.server("b").unwrap_err().to_string();
        assert!(err.contains("`b`") && err.contains("client.toml"), "{err}");
        let err = p.group("h").unwrap_err().to_string();
        assert!(err.contains("`h`"), "{err}");
    }

    fn sample() -> Server {
        Server {
            name: "web-1".into(),
            address: "[2001:db8::1]:34020".into(),
            key: PathBuf::from("web-1.key"),
            command: Some("open \"ssh\"".into()),
            groups: vec!["prod".into()],
            ip: Some("198.51.100.7".parse().unwrap()),
            permissive: true,
            ipv4: false,
            ipv6: true,
            wire: Some(Wire::V0),
            send_delay_ms: Some(10),
            wait_port: Some(22),
        }
    }

    #[test]
    fn added_entries_parse_back() {
        let text = entry_text(&sample());
        let p = parse(&text).unwrap();
        assert_eq!(p.server("web-1").unwrap(), &sample());
    }

    #[test]
    fn save_replaces_in_place_and_keeps_the_rest_of_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let original = "# my servers\n[servers.a]\naddress = \"a.example\" # the first\nkey = \"a.key\"\n\n[servers.b]\naddress = \"b.example\"\nkey = \"b.key\"\n";
        std::fs::write(dir.path().join(FILE_NAME), original).unwrap();
        let mut a = Profile::load(dir.path())
            .unwrap()
            .server("a")
            .unwrap()
            .clone();
        a.name = "a2".into();
        a.command = Some("deploy".into());
        save(dir.path(), &a, Some("a")).unwrap();
        let text = std::fs::read_to_string(dir.path().join(FILE_NAME)).unwrap();
        assert!(text.starts_with("# my servers\n"), "{text}");
        // Renamed in place: still before b.
        let (at_a2, at_b) = (
            text.find("[servers.a2]").unwrap(),
            text.find("[servers.b]").unwrap(),
        );
        assert!(at_a2 < at_b, "{text}");
        let p = Profile::load(dir.path()).unwrap();
        assert_eq!(p.servers.keys().collect::<Vec<_>>(), ["a2", "b"]);
        assert_eq!(p.server("a2").unwrap().command.as_deref(), Some("deploy"));
        // A new one is added; a name that is taken is refused, and nothing changes.
        save(dir.path(), &sample(), None).unwrap();
        let before = std::fs::read_to_string(dir.path().join(FILE_NAME)).unwrap();
        let err = save(dir.path(), &sample(), None).unwrap_err().to_string();
        assert!(err.contains("already saved"), "{err}");
        assert_eq!(
            std::fs::read_to_string(dir.path().join(FILE_NAME)).unwrap(),
            before
        );
        assert_eq!(
            Profile::load(dir.path()).unwrap().server("web-1").unwrap(),
            &sample()
        );
    }

    #[test]
    fn remove_takes_out_one_entry_and_returns_it() {
        let dir = tempfile::tempdir().unwrap();
        save(dir.path(), &sample(), None).unwrap();
        let mut other = sample();
        other.name = "other".into();
        save(dir.path(), &other, None).unwrap();
        let removed = remove(dir.path(), "web-1").unwrap();
        assert_eq!(removed, sample());
        let p = Profile::load(dir.path()).unwrap();
        assert_eq!(p.servers.keys().collect::<Vec<_>>(), ["other"]);
        assert!(remove(dir.path(), "web-1").is_err());
    }

    #[test]
    fn an_invalid_result_is_never_written() {
        let dir = tempfile::tempdir().unwrap();
        let mut bad = sample();
        bad.address = "host:notaport".into();
        assert!(save(dir.path(), &bad, None).is_err());
        assert!(!dir.path().join(FILE_NAME).exists());
    }

    #[test]
    fn changes_wait_for_each_other() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_owned();
        let held = lock(&path).unwrap();
        let writer = std::thread::spawn(move || save(&path, &sample(), None));
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(!dir.path().join(FILE_NAME).exists(), "written while locked");
        drop(held);
        writer.join().unwrap().unwrap();
        assert!(Profile::load(dir.path())
            .unwrap()
            .servers
            .contains_key("web-1"));
    }

    #[test]
    fn name_problems_say_what_is_wrong() {
        assert_eq!(name_problem("server name", "web1"), None);
        assert_eq!(
            name_problem("server name", "").as_deref(),
            Some("the server name is empty")
        );
        let long = "a".repeat(260);
        assert_eq!(
            name_problem("server name", &long).as_deref(),
            Some("the server name is 260 characters long; 64 at most")
        );
        assert!(name_problem("group", "a b")
            .unwrap()
            .contains("may only hold"));
    }
}
