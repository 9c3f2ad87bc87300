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
pub(crate) const FILE_NAME: &str = "client.toml";

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
}

/// One saved server, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Server {
    pub(crate) name: String,
    pub(crate) address: String,
    /// Absolute, or relative to the conf dir as written.
    pub(crate) key: PathBuf,
    pub(crate) command: Option<String>,
    pub(crate) groups: Vec<String>,
    pub(crate) ip: Option<IpAddr>,
    pub(crate) permissive: bool,
    pub(crate) ipv4: bool,
    pub(crate) ipv6: bool,
    pub(crate) wire: Option<Wire>,
    pub(crate) send_delay_ms: Option<u64>,
}

/// The saved servers, by name.
#[derive(Debug, Default)]
pub(crate) struct Profile {
    pub(crate) path: PathBuf,
    pub(crate) servers: BTreeMap<String, Server>,
    /// Entries that could not be used, with why (file, line, field): one bad entry does
    /// not stop sends to the others; using it by name is the error.
    pub(crate) broken: BTreeMap<String, String>,
}

/// Whether `name` can name a server, group or key file: letters, digits, `-`, `_`.
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl Profile {
    /// Reads `<dir>/client.toml`; a missing file is an empty profile.
    pub(crate) fn load(dir: &Path) -> anyhow::Result<Self> {
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
    pub(crate) fn parse(text: &str, path: &Path) -> anyhow::Result<Self> {
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
    pub(crate) fn server(&self, name: &str) -> anyhow::Result<&Server> {
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
    pub(crate) fn group(&self, group: &str) -> anyhow::Result<Vec<&Server>> {
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
    pub(crate) fn listing(&self, key_path: impl Fn(&Path) -> PathBuf) -> String {
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
    })
}

/// The `[servers.NAME]` block `add` appends.
pub(crate) fn entry_text(
    name: &str,
    address: &str,
    key: &str,
    command: Option<&str>,
    groups: &[String],
    wire: Option<Wire>,
) -> String {
    let quote = |s: &str| toml::Value::String(s.to_owned()).to_string();
    let mut text = format!(
        "\n[servers.{name}]\naddress = {}\nkey = {}\n",
        quote(address),
        quote(key)
    );
    if let Some(command) = command {
        let _ = writeln!(text, "command = {}", quote(command));
    }
    if !groups.is_empty() {
        let list: Vec<String> = groups.iter().map(|g| quote(g)).collect();
        let _ = writeln!(text, "groups = [{}]", list.join(", "));
    }
    if let Some(wire) = wire {
        let _ = writeln!(text, "wire = {}", quote(wire.as_str()));
    }
    text
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

    #[test]
    fn added_entries_parse_back() {
        let text = entry_text(
            "web-1",
            "[2001:db8::1]:34020",
            "web-1.key",
            Some("open \"ssh\""),
            &["prod".into()],
            Some(Wire::V0),
        );
        let p = parse(&text).unwrap();
        let s = p.server("web-1").unwrap();
        assert_eq!(s.address, "[2001:db8::1]:34020");
        assert_eq!(s.command.as_deref(), Some("open \"ssh\""));
        assert_eq!(s.groups, ["prod"]);
        assert_eq!(s.wire, Some(Wire::V0));
    }
}
