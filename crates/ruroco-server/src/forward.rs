//! Handing an accepted command to the commander over its Unix socket.

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{connect, socket, AddressFamily, SockFlag, SockType, UnixAddr};
use ruroco_proto::CommanderMessage;

/// Bound on how long connecting to and writing to the commander may block the receive
/// loop, each. Short: a command that cannot be handed over now waits in the hand-off
/// queue and is tried again, while the loop goes on receiving.
const IO_TIMEOUT: Duration = Duration::from_millis(50);
/// Pause between connection attempts while the commander's backlog is full.
const RETRY_PAUSE: Duration = Duration::from_millis(5);

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
        let mut stream = self.connect()?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        stream.write_all(&message.encode())?;
        stream.shutdown(std::net::Shutdown::Write)
    }

    /// A blocking `connect` on a Unix socket waits without limit while the listener's
    /// backlog is full (a stalled commander). A non-blocking one fails with `EAGAIN`
    /// instead; it is retried until [`IO_TIMEOUT`].
    fn connect(&self) -> std::io::Result<UnixStream> {
        let addr = UnixAddr::new(&self.socket)?;
        let fd = socket(
            AddressFamily::Unix,
            SockType::Stream,
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            None,
        )?;
        let deadline = Instant::now() + IO_TIMEOUT;
        loop {
            match connect(std::os::fd::AsRawFd::as_raw_fd(&fd), &addr) {
                Ok(()) => break,
                Err(Errno::EAGAIN) if Instant::now() < deadline => std::thread::sleep(RETRY_PAUSE),
                Err(Errno::EAGAIN) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "commander's connection backlog stayed full",
                    ))
                }
                Err(e) => return Err(e.into()),
            }
        }
        let stream = UnixStream::from(fd);
        stream.set_nonblocking(false)?;
        Ok(stream)
    }
}
