//! The boundary between `ruroco-server` and `ruroco-commander`.
//!
//! This crate owns the fixed-size message the server writes into the commander's Unix
//! socket, the rule for where that socket lives, and IP normalisation shared by both sides.
//! It must never depend on cryptography or open a network socket: the commander links it,
//! and the commander's dependency tree stays free of both.
#![forbid(unsafe_code)]

mod hash;
mod ip;
mod message;

pub use hash::command_hash;
pub use ip::{from_mapped_bytes, is_routable, normalize_ip, to_mapped_bytes};
pub use message::{CommanderMessage, MessageError, MESSAGE_LEN};

use std::path::{Path, PathBuf};

/// File name of the commander's socket inside its directory.
pub const SOCKET_FILE_NAME: &str = "ruroco.socket";

/// Where the commander listens: `<socket_dir or config_dir>/ruroco.socket`.
pub fn socket_path(socket_dir: Option<&Path>, config_dir: &Path) -> PathBuf {
    socket_dir.unwrap_or(config_dir).join(SOCKET_FILE_NAME)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_dir_wins_over_config_dir() {
        let p = socket_path(Some(Path::new("/run/ruroco")), Path::new("/etc/ruroco"));
        assert_eq!(p, Path::new("/run/ruroco/ruroco.socket"));
        let p = socket_path(None, Path::new("/etc/ruroco"));
        assert_eq!(p, Path::new("/etc/ruroco/ruroco.socket"));
    }
}
