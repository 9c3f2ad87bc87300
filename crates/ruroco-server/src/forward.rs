//! Handing an accepted command to the commander over its Unix socket.

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ruroco_proto::CommanderMessage;

/// Bound on how long a write to the commander may block the receive loop.
const WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// Sends commander messages, one connection each.
#[derive(Debug)]
pub(crate) struct Forwarder {
    socket: PathBuf,
}

impl Forwarder {
    pub(crate) fn new(socket: PathBuf) -> Self {
        Self { socket }
    }

    pub(crate) fn socket(&self) -> &Path {
        &self.socket
    }

    pub(crate) fn send(&self, message: &CommanderMessage) -> std::io::Result<()> {
        let mut stream = UnixStream::connect(&self.socket)?;
        stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
        stream.write_all(&message.encode())?;
        stream.shutdown(std::net::Shutdown::Write)
    }
}
