//! `import`: the original ruroco GUI's saved commands (`commands_list.toml`) become saved
//! servers in `client.toml`, with the key given copied into the config directory (0600),
//! so that someone switching keeps every button they had.
//!
//! Both of the GUI's formats are read: `[[list]]` tables (`address`, `command`, `ip`,
//! `ipv4`, `ipv6`, `permissive`, `name`) and the older `list = ["send --address … --command
//! …", …]` command lines (split as a shell would, flags as the released client takes
//! them). Existing entries are never touched; names are derived from the entry and made
//! unique.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use ruroco_proto::Key;
use zeroize::Zeroizing;

use crate::add::{append, write_new_secret};
use crate::profile::{self, Profile};
use crate::target::{split_host_port, valid_host};

/// One saved command of the original GUI.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Entry {
    /// Its name there, if it had one.
    pub name: Option<String>,
    /// `HOST` or `HOST:PORT`.
    pub address: String,
    /// The command it sent.
    pub command: String,
    /// The client address it claimed.
    pub ip: Option<IpAddr>,
    /// Whether it was permissive.
    pub permissive: bool,
    /// IPv4 only.
    pub ipv4: bool,
    /// IPv6 only.
    pub ipv6: bool,
}

/// The entries of a `commands_list.toml` text; errors name the file and the entry.
pub fn parse(text: &str, path: &Path) -> anyhow::Result<Vec<Entry>> {
    let table: toml::Table = toml::from_str(text).map_err(|e| {
        anyhow::anyhow!(
            "invalid commands list {}: {}",
            path.display(),
            ruroco_config::describe_toml_error(text, &e)
        )
    })?;
    let Some(list) = table.get("list") else {
        bail!(
            "{} has no `list`: not a commands list of the ruroco GUI",
            path.display()
        );
    };
    let toml::Value::Array(items) = list else {
        bail!("{}: `list` must be an array", path.display());
    };
    let mut entries = Vec::with_capacity(items.len());
    for (n, item) in items.iter().enumerate() {
        let entry = match item {
            toml::Value::Table(t) => from_table(t),
            toml::Value::String(line) => from_line(line),
            _ => Err("must be a table or a `send …` line".to_owned()),
        }
        .map_err(|e| anyhow::anyhow!("{}: list entry {}: {e}", path.display(), n + 1))?;
        let (host, _) = split_host_port(&entry.address)
            .map_err(|e| anyhow::anyhow!("{}: list entry {}: {e}", path.display(), n + 1))?;
        if !valid_host(&host) {
            bail!(
                "{}: list entry {}: `{host}` is neither an IP address nor a DNS name",
                path.display(),
                n + 1
            );
        }
        entries.push(entry);
    }
    Ok(entries)
}

fn from_table(t: &toml::Table) -> Result<Entry, String> {
    let text = |key: &str| -> Result<Option<String>, String> {
        match t.get(key) {
            None => Ok(None),
            Some(toml::Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(toml::Value::String(s)) => Ok(Some(s.trim().to_owned())),
            Some(_) => Err(format!("`{key}` must be a string")),
        }
    };
    let flag = |key: &str| -> Result<bool, String> {
        match t.get(key) {
            None => Ok(false),
            Some(toml::Value::Boolean(b)) => Ok(*b),
            Some(_) => Err(format!("`{key}` must be true or false")),
        }
    };
    Ok(Entry {
        name: text("name")?,
        address: text("address")?.ok_or("missing `address`")?,
        command: text("command")?.unwrap_or_else(|| "default".to_owned()),
        ip: text("ip")?
            .map(|ip| {
                ip.parse()
                    .map_err(|_| format!("`ip` = `{ip}` is not an IP address"))
            })
            .transpose()?,
        permissive: flag("permissive")?,
        ipv4: flag("ipv4")?,
        ipv6: flag("ipv6")?,
    })
}

/// A `send --address … --command …` line, as the released client reads its flags.
fn from_line(line: &str) -> Result<Entry, String> {
    let words = shlex::split(line).ok_or("unbalanced quotes")?;
    let mut words = words.into_iter().peekable();
    while words
        .peek()
        .is_some_and(|w| w == "ruroco-client" || w.ends_with("/ruroco-client") || w == "send")
    {
        words.next();
    }
    let mut entry = Entry {
        command: "default".to_owned(),
        ..Entry::default()
    };
    let mut address = None;
    while let Some(word) = words.next() {
        let (flag, inline) = match word.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (word.clone(), None),
        };
        let mut value = |name: &str| -> Result<String, String> {
            inline
                .clone()
                .or_else(|| words.next())
                .ok_or(format!("`{name}` needs a value"))
        };
        match flag.as_str() {
            "-a" | "--address" => address = Some(value("--address")?),
            "-c" | "--command" => entry.command = value("--command")?,
            "-i" | "--ip" => {
                let ip = value("--ip")?;
                entry.ip = Some(
                    ip.parse()
                        .map_err(|_| format!("`{ip}` is not an IP address"))?,
                );
            }
            "-e" | "--permissive" => entry.permissive = true,
            "-4" | "--ipv4" => entry.ipv4 = true,
            "-6" | "--ipv6" => entry.ipv6 = true,
            // The key is given to `import`, never taken from this file.
            "-k" | "--key" | "--key-file" | "-d" | "--send-delay-ms" | "-p"
            | "--private-pem-path" => {
                value(&flag)?;
            }
            other => return Err(format!("unknown flag `{other}`")),
        }
    }
    entry.address = address.ok_or("missing --address")?;
    Ok(entry)
}

/// A valid, unique name for each entry: its own name, else host and command, with
/// anything but letters, digits, `-` and `_` turned into `-`; `-2`, `-3`, … on clashes.
pub fn names(entries: &[Entry], taken: &BTreeSet<String>) -> Vec<String> {
    let mut taken = taken.clone();
    entries
        .iter()
        .map(|e| {
            let raw = match &e.name {
                Some(n) => n.clone(),
                None => {
                    let host = split_host_port(&e.address)
                        .map(|(h, _)| h)
                        .unwrap_or_else(|_| e.address.clone());
                    format!("{host}-{}", e.command)
                }
            };
            let mut base: String = raw
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '_' {
                        c
                    } else {
                        '-'
                    }
                })
                .collect();
            base = base.trim_matches('-').to_owned();
            while base.contains("--") {
                base = base.replace("--", "-");
            }
            if base.is_empty() {
                base = "imported".to_owned();
            }
            let mut name = base.clone();
            let mut n = 2;
            while taken.contains(&name) {
                name = format!("{base}-{n}");
                n += 1;
            }
            taken.insert(name.clone());
            name
        })
        .collect()
}

/// The `client.toml` text of one imported entry.
fn entry_text(name: &str, e: &Entry, key_file: &str) -> String {
    profile::entry_text(&profile::Server {
        name: name.to_owned(),
        address: e.address.clone(),
        key: PathBuf::from(key_file),
        command: Some(e.command.clone()),
        groups: Vec::new(),
        ip: e.ip,
        permissive: e.permissive,
        ipv4: e.ipv4,
        ipv6: e.ipv6,
        // The original GUI talked to servers of the original: released 0.14.x reads only
        // the 93-byte format (ours reads it too while accept_v0 is on).
        wire: Some(ruroco_proto::Wire::V0),
        send_delay_ms: None,
        wait_port: None,
    })
}

/// What an entry carries besides address and command, as the preview shows it.
fn flags(e: &Entry) -> String {
    let mut parts = Vec::new();
    if let Some(ip) = e.ip {
        parts.push(format!("claims ip {ip}"));
    }
    if e.permissive {
        parts.push("permissive".to_owned());
    }
    if e.ipv4 {
        parts.push("IPv4 only".to_owned());
    }
    if e.ipv6 {
        parts.push("IPv6 only".to_owned());
    }
    parts.push("wire v0 (released servers' format)".to_owned());
    parts.join(", ")
}

/// One entry [`import`] added (or would add).
#[derive(Debug)]
pub struct ImportedServer {
    /// Its new name.
    pub name: String,
    /// Where it sends.
    pub address: String,
    /// The command it sends.
    pub command: String,
    /// What else it carries (the address it claims, permissive, one family, the wire
    /// format), for the preview: a shared file could knock for someone else's address.
    pub flags: String,
}

/// What [`import`] added (or, in a dry run, would add).
#[derive(Debug)]
pub struct Imported {
    /// Each entry added.
    pub servers: Vec<ImportedServer>,
    /// `client.toml`.
    pub profile_path: PathBuf,
    /// The key file they all use.
    pub key_path: PathBuf,
    /// Nothing was written.
    pub dry_run: bool,
    /// Entries not added because they are saved already: the entry, and the saved name.
    pub skipped: Vec<(String, String)>,
}

/// The name under which `e` is saved already among `with_key` (the saved servers whose
/// key is the one imported), if it is.
fn saved_as(with_key: &[&profile::Server], e: &Entry) -> Option<String> {
    with_key
        .iter()
        .find(|s| {
            s.address == e.address
                && s.command.as_deref() == Some(e.command.as_str())
                && s.ip == e.ip
                && s.permissive == e.permissive
                && s.ipv4 == e.ipv4
                && s.ipv6 == e.ipv6
        })
        .map(|s| s.name.clone())
}

/// Adds the original GUI's saved commands (`file`, its `commands_list.toml`) as saved
/// servers, all with the key in `key_file` (copied into `dir`, mode 600). Entries already
/// saved are never changed; names are made unique.
pub fn import(file: &Path, key_file: &Path, dry_run: bool, dir: &Path) -> anyhow::Result<Imported> {
    import_with(
        file,
        &crate::add::KeyChoice::File(key_file.to_owned()),
        dry_run,
        dir,
    )
}

/// [`import`] with the key as a file or as the key string itself (users of the original
/// may have only the string, as its GUI kept it); a new key is not an import's to make.
pub fn import_with(
    file: &Path,
    key: &crate::add::KeyChoice,
    dry_run: bool,
    dir: &Path,
) -> anyhow::Result<Imported> {
    if file.as_os_str().is_empty() {
        bail!("name the original GUI's commands_list.toml to import");
    }
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let entries = parse(&text, file)?;
    let (key_text, key_file) = match key {
        crate::add::KeyChoice::File(path) if path.as_os_str().is_empty() => {
            bail!("give the key they were sent with: its file, or the key string itself")
        }
        crate::add::KeyChoice::File(path) => (
            Zeroizing::new(
                std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read key file {}", path.display()))?,
            ),
            path.clone(),
        ),
        crate::add::KeyChoice::Text(text) => (text.clone(), PathBuf::from("imported.key")),
        crate::add::KeyChoice::Generate => {
            bail!("give the key they were sent with: its file, or the key string itself")
        }
    };
    let key_file = key_file.as_path();
    Key::parse(&key_text).with_context(|| match key {
        crate::add::KeyChoice::Text(_) => "invalid key string".to_owned(),
        _ => format!("invalid key file {}", key_file.display()),
    })?;
    if !dry_run {
        ruroco_fs::create_private_dir(dir)
            .with_context(|| format!("cannot create config directory {}", dir.display()))?;
    }
    let _lock = if dry_run {
        None
    } else {
        Some(profile::lock(dir)?)
    };
    let existing = if dir.join(profile::FILE_NAME).exists() {
        Profile::load(dir)?
    } else {
        Profile::default()
    };
    // An entry already saved (same address, command, claimed ip, flags and key) is not
    // added again: importing the same file twice changes nothing.
    let with_key: Vec<&profile::Server> = existing
        .servers
        .values()
        .filter(|s| {
            std::fs::read_to_string(crate::send::key_path(dir, &s.key))
                .is_ok_and(|k| k.trim() == key_text.trim())
        })
        .collect();
    let mut skipped = Vec::new();
    let entries: Vec<Entry> = entries
        .into_iter()
        .filter(|e| match saved_as(&with_key, e) {
            Some(name) => {
                skipped.push((format!("{} -c {}", e.address, e.command), name));
                false
            }
            None => true,
        })
        .collect();
    let taken: BTreeSet<String> = existing
        .servers
        .keys()
        .chain(existing.broken.keys())
        .cloned()
        .collect();
    let names = names(&entries, &taken);
    let key_name = key_file_name(dir, key_file, key_text.trim())?;
    let mut body = String::new();
    for (name, e) in names.iter().zip(&entries) {
        body.push_str(&entry_text(name, e, &key_name));
    }
    let key_path = dir.join(&key_name);
    if !dry_run && !entries.is_empty() {
        if !key_path.exists() {
            write_new_secret(&key_path, format!("{}\n", key_text.trim()).as_bytes())?;
        }
        append(&dir.join(profile::FILE_NAME), &body)?;
    }
    Ok(Imported {
        servers: names
            .into_iter()
            .zip(&entries)
            .map(|(name, e)| ImportedServer {
                name,
                address: e.address.clone(),
                command: e.command.clone(),
                flags: flags(e),
            })
            .collect(),
        profile_path: dir.join(profile::FILE_NAME),
        key_path,
        dry_run,
        skipped,
    })
}

/// The key's file name in the config directory: the given file's name, or with `-2`, …
/// when a different key already has it (the same key is reused, never overwritten).
fn key_file_name(dir: &Path, given: &Path, key: &str) -> anyhow::Result<String> {
    let stem = given
        .file_stem()
        .and_then(|s| s.to_str())
        .filter(|s| profile::valid_name(s))
        .unwrap_or("imported");
    let mut n = 1;
    loop {
        let name = if n == 1 {
            format!("{stem}.key")
        } else {
            format!("{stem}-{n}.key")
        };
        match std::fs::read_to_string(dir.join(&name)) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(name),
            Ok(existing) if existing.trim() == key => return Ok(name),
            Ok(_) => n += 1,
            Err(e) => {
                return Err(e).with_context(|| format!("cannot read {}", dir.join(&name).display()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_formats_read_the_same() {
        let tables = r#"
[[list]]
address = "web1.example.com:8080"
command = "open_ssh"
ip = "203.0.113.7"
permissive = true
ipv4 = true
ipv6 = false
name = "web1 ssh"

[[list]]
address = "[2001:db8::1]:80"
command = "deploy"
"#;
        let lines = r#"list = [
  "send --address web1.example.com:8080 --command open_ssh --ip 203.0.113.7 --permissive -4",
  "send -a '[2001:db8::1]:80' -c deploy",
]"#;
        let a = parse(tables, Path::new("a.toml")).unwrap();
        let mut b = parse(lines, Path::new("b.toml")).unwrap();
        assert_eq!(a.len(), 2);
        assert_eq!(a[0].name.as_deref(), Some("web1 ssh"));
        b[0].name = a[0].name.clone();
        assert_eq!(a, b);
        assert!(a[0].permissive && a[0].ipv4 && !a[0].ipv6);
        assert_eq!(a[1].ip, None);
    }

    #[test]
    fn errors_name_the_file_and_the_entry() {
        for (text, want) in [
            ("list = [\"send --command x\"]", "missing --address"),
            (
                "list = [\"send --address h --bogus\"]",
                "unknown flag `--bogus`",
            ),
            ("[[list]]\ncommand = \"x\"", "missing `address`"),
            (
                "list = [\"send --address 'h;id'\"]",
                "neither an IP address nor a DNS name",
            ),
            ("list = 3", "must be an array"),
            ("other = 1", "has no `list`"),
        ] {
            let err = format!(
                "{:#}",
                parse(text, Path::new("/x/commands_list.toml")).unwrap_err()
            );
            assert!(
                err.contains("/x/commands_list.toml") && err.contains(want),
                "{err}"
            );
        }
    }

    #[test]
    fn names_are_valid_and_unique() {
        let e = |name: Option<&str>, address: &str, command: &str| Entry {
            name: name.map(str::to_owned),
            address: address.to_owned(),
            command: command.to_owned(),
            ..Entry::default()
        };
        let entries = [
            e(None, "web1.example.com:80", "open_ssh"),
            e(None, "web1.example.com:80", "open_ssh"),
            e(Some("my server!"), "h", "x"),
            e(Some("web1"), "h", "x"),
        ];
        let taken = BTreeSet::from(["web1".to_owned()]);
        let got = names(&entries, &taken);
        assert_eq!(
            got,
            [
                "web1-example-com-open_ssh",
                "web1-example-com-open_ssh-2",
                "my-server",
                "web1-2"
            ]
        );
        assert!(got.iter().all(|n| profile::valid_name(n)));
    }
}
