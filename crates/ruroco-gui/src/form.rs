//! The add / edit form: what the user typed, checked and turned into a saved server. The
//! checks themselves are the library's (the same as `ruroco-client add`'s); this only
//! reads the fields.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ruroco_client_core::add::{self, KeyChoice, NewServer};
use ruroco_client_core::profile::{self, Server};
use ruroco_client_core::send;
use ruroco_proto::Wire;
use zeroize::Zeroizing;

/// Which address families a server is sent to over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Family {
    /// Every address the name has.
    #[default]
    Both,
    /// IPv4 only.
    V4,
    /// IPv6 only.
    V6,
}

/// Where the key comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeySource {
    /// A new random key (new servers), or the current one (edits).
    #[default]
    Keep,
    /// A new random key in place of the current one.
    Generate,
    /// A key file.
    File,
    /// A pasted key string.
    Paste,
}

/// The fields of the form.
#[derive(Default)]
pub struct Form {
    /// The saved server being edited; `None` for a new one.
    pub editing: Option<String>,
    /// Name.
    pub name: String,
    /// `HOST` or `HOST:PORT`.
    pub address: String,
    /// Command sent by default.
    pub command: String,
    /// Groups, comma-separated.
    pub groups: String,
    /// Claimed client IP.
    pub ip: String,
    /// Permissive.
    pub permissive: bool,
    /// Address families.
    pub family: Family,
    /// Datagram format: true for v0 (released 0.14.x servers).
    pub v0: bool,
    /// Where the key comes from.
    pub key_source: KeySource,
    /// The key file, for [`KeySource::File`].
    pub key_file: String,
    /// The pasted key, for [`KeySource::Paste`] (cleared from memory on drop).
    pub key_text: Zeroizing<String>,
}

impl Form {
    /// The form filled with a saved server's values, for editing.
    pub fn edit(server: &Server) -> Self {
        Self {
            editing: Some(server.name.clone()),
            name: server.name.clone(),
            address: server.address.clone(),
            command: server.command.clone().unwrap_or_default(),
            groups: server.groups.join(", "),
            ip: server.ip.map(|ip| ip.to_string()).unwrap_or_default(),
            permissive: server.permissive,
            family: match (server.ipv4, server.ipv6) {
                (true, _) => Family::V4,
                (_, true) => Family::V6,
                _ => Family::Both,
            },
            v0: server.wire == Some(Wire::V0),
            ..Self::default()
        }
    }

    fn groups(&self) -> Vec<String> {
        self.groups
            .split([',', ' '])
            .map(str::trim)
            .filter(|g| !g.is_empty())
            .map(str::to_owned)
            .collect()
    }

    fn ip(&self) -> anyhow::Result<Option<IpAddr>> {
        let text = self.ip.trim();
        if text.is_empty() {
            return Ok(None);
        }
        text.parse()
            .map(Some)
            .map_err(|_| anyhow::anyhow!("claimed IP `{text}` is not an IP address"))
    }

    fn command(&self) -> Option<String> {
        Some(self.command.trim().to_owned()).filter(|c| !c.is_empty())
    }

    /// The key chosen; a file path that is relative (or starts with `~`) is taken from
    /// the config directory `dir`, as `key =` in client.toml is — never from wherever the
    /// window happened to be started.
    fn key_choice(&self, dir: &Path) -> anyhow::Result<KeyChoice> {
        Ok(match self.key_source {
            KeySource::Keep | KeySource::Generate => KeyChoice::Generate,
            KeySource::File => {
                let path = self.key_file.trim();
                if path.is_empty() {
                    anyhow::bail!("choose the key file");
                }
                KeyChoice::File(send::key_path(dir, Path::new(path)))
            }
            KeySource::Paste => {
                if self.key_text.trim().is_empty() {
                    anyhow::bail!("paste the key");
                }
                KeyChoice::Text(Zeroizing::new(self.key_text.trim().to_owned()))
            }
        })
    }

    /// Saves a new server: key and entry, as `ruroco-client add` does.
    pub fn add(&self, dir: &Path) -> anyhow::Result<add::Added> {
        let new = NewServer {
            name: self.name.trim().to_owned(),
            address: self.address.trim().to_owned(),
            command: self.command(),
            groups: self.groups(),
            ip: self.ip()?,
            permissive: self.permissive,
            ipv4: self.family == Family::V4,
            ipv6: self.family == Family::V6,
            wire: self.v0.then_some(Wire::V0),
            key_name: None,
            key: self.key_choice(dir)?,
        };
        add::add(&new, dir)
    }

    /// Saves the edited server in place of `old`; a new key, if one was chosen, goes to a
    /// new file (the old one is left for the user to remove), whose path is returned: the
    /// server does not have that key until it is installed there.
    pub fn save_edit(&self, old: &Server, dir: &Path) -> anyhow::Result<Option<PathBuf>> {
        let name = self.name.trim().to_owned();
        let new_key = match self.key_source {
            KeySource::Keep => None,
            _ => Some(PathBuf::from(write_key(
                dir,
                &name,
                &self.key_choice(dir)?,
            )?)),
        };
        let key = new_key.clone().unwrap_or_else(|| old.key.clone());
        let server = Server {
            name,
            address: self.address.trim().to_owned(),
            key,
            command: self.command(),
            groups: self.groups(),
            ip: self.ip()?,
            permissive: self.permissive,
            ipv4: self.family == Family::V4,
            ipv6: self.family == Family::V6,
            wire: if self.v0 {
                Some(Wire::V0)
            } else {
                old.wire.filter(|w| *w != Wire::V0)
            },
            send_delay_ms: old.send_delay_ms,
            wait_port: old.wait_port,
        };
        ruroco_client_core::target::split_host_port(&server.address)?;
        profile::save(dir, &server, Some(&old.name))?;
        Ok(new_key.map(|k| send::key_path(dir, &k)))
    }
}

/// Writes the chosen key to a new file `NAME.key` (or `NAME-2.key`, …) in `dir`, mode 600;
/// its file name.
fn write_key(dir: &Path, name: &str, choice: &KeyChoice) -> anyhow::Result<String> {
    let text = choice.key()?.to_key_string();
    for n in 1..1000 {
        let file = if n == 1 {
            format!("{name}.key")
        } else {
            format!("{name}-{n}.key")
        };
        let path = dir.join(&file);
        if path.exists() {
            continue;
        }
        add::write_new_secret(&path, format!("{}\n", text.as_str()).as_bytes())?;
        return Ok(file);
    }
    anyhow::bail!("no free key file name for `{name}` in {}", dir.display())
}
