//! ruroco's client as a library, under both front ends: the command-line client
//! (`ruroco-client`) and the desktop app (`ruroco-gui`). What one saves the other shows:
//! both read and write the same files in the same configuration directory
//! ([`conf_dir`]):
//!
//! - [`profile`]: `client.toml`, the saved servers (read, add, replace, remove);
//! - [`counter`]: the anti-replay counter and its lock, held only while datagrams are built
//!   and sent;
//! - [`send`]: from a saved server (or flags) to datagrams on the wire;
//! - [`add`]: a new saved server with its key (mode 600) and the line that installs the
//!   key on the server;
//! - [`import`]: the original GUI's `commands_list.toml`;
//! - [`qr`]: a key as a QR code; [`target`]: addresses and name resolution.
//!
//! Results and warnings are returned for the front end to show; the only lines it writes
//! itself are the counter's rare notices on stderr (waiting for another client's lock, a
//! corrupt counter file).
#![forbid(unsafe_code)]

use std::path::PathBuf;

use anyhow::Context;

pub mod add;
pub mod counter;
pub mod import;
pub mod profile;
pub mod qr;
pub mod send;
pub mod target;
pub mod wait;

/// The configuration directory: `RUROCO_CONF_DIR`, else `$HOME/.config/ruroco`.
pub fn conf_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("RUROCO_CONF_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .context("neither RUROCO_CONF_DIR nor HOME is set")?;
    Ok(PathBuf::from(home).join(".config").join("ruroco"))
}
