//! Shared test harness: temp dirs, the real server binary, a commander-side inbox, and
//! datagrams sealed with the real protocol crate.

use std::io::Read;
use std::net::{SocketAddr, UdpSocket};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ruroco_proto::{command_hash, seal, CommanderMessage, Datagram, Key, Plaintext, Wire};
pub use ruroco_testkit::{tool, Daemon};
use tempfile::TempDir;

pub const BIN: &str = env!("CARGO_BIN_EXE_ruroco-server");

pub fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// A config dir with one key and a config.toml.
pub struct Fixture {
    pub dir: TempDir,
    pub key: Key,
    pub config: PathBuf,
}

impl Fixture {
    pub fn new() -> Self {
        Self::with_config("")
    }

    /// `extra` is appended to a config naming 127.0.0.1 and ::1 as this server's ips.
    pub fn with_config(extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let key = Key::generate().unwrap();
        std::fs::write(
            dir.path().join("client.key"),
            key.to_key_string().as_bytes(),
        )
        .unwrap();
        let config = dir.path().join("config.toml");
        let text = format!(
            "ips = [\"127.0.0.1\", \"::1\"]\nconfig_dir = \"{}\"\n{extra}\n",
            dir.path().display()
        );
        std::fs::write(&config, text).unwrap();
        Self { dir, key, config }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The server command with a clean environment for the socket choice.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.arg("--config")
            .arg(&self.config)
            .env_remove("LISTEN_PID")
            .env_remove("LISTEN_FDS")
            .env_remove("RUROCO_LISTEN_ADDRESS")
            .env_remove("RUROCO_LOG");
        cmd
    }

    /// `--check`: whether it passed, and what it printed.
    pub fn check(&self) -> (bool, String) {
        let out = self.command().arg("--check").output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    /// Starts the server on an ephemeral loopback port and waits until it listens.
    pub fn start(&self) -> Running {
        let mut cmd = self.command();
        cmd.args(["--address", "127.0.0.1:0"]);
        Running::spawn(cmd)
    }

    /// Listens where the commander would, collecting every message.
    pub fn inbox(&self) -> Inbox {
        Inbox::bind(&self.path().join("ruroco.socket"))
    }

    /// A valid datagram for `command` with the given counter, for dst 127.0.0.1.
    pub fn packet(&self, command: &str, counter: u128) -> Datagram {
        self.packet_with(Plaintext {
            version: 1,
            cmd_hash: command_hash(command),
            counter,
            strict: true,
            src_ip: None,
            dst_ip: "127.0.0.1".parse().unwrap(),
        })
    }

    pub fn packet_with(&self, pt: Plaintext) -> Datagram {
        seal(&self.key, Wire::V1, &pt).unwrap()
    }
}

/// A running server: the daemon plus the address it listens on.
pub struct Running {
    pub daemon: Daemon,
    pub addr: SocketAddr,
}

impl std::ops::Deref for Running {
    type Target = Daemon;
    fn deref(&self) -> &Daemon {
        &self.daemon
    }
}

impl std::ops::DerefMut for Running {
    fn deref_mut(&mut self) -> &mut Daemon {
        &mut self.daemon
    }
}

impl Running {
    pub fn spawn(cmd: Command) -> Running {
        Self::try_spawn(cmd)
            .unwrap_or_else(|(log, status)| panic!("server did not start ({status:?}):\n{log}"))
    }

    /// Spawns and waits for the "listening on" line; on failure returns the log and status.
    pub fn try_spawn(cmd: Command) -> Result<Running, (String, Option<ExitStatus>)> {
        let daemon = Daemon::try_spawn(cmd, "listening on ")?;
        let addr = daemon
            .listening_addr()
            .unwrap_or_else(|| panic!("no address in {}", daemon.log_text()));
        Ok(Running { daemon, addr })
    }

    pub fn stop(self) -> String {
        self.daemon.stop()
    }

    pub fn stop_after_signal(self) -> String {
        self.daemon.stop_after_signal()
    }

    /// Sends raw bytes from a fresh loopback socket.
    pub fn send(&self, bytes: &[u8]) {
        let bind = if self.addr.is_ipv4() {
            "127.0.0.1:0"
        } else {
            "[::1]:0"
        };
        let sock = UdpSocket::bind(bind).unwrap();
        sock.send_to(bytes, self.addr).unwrap();
    }
}

/// The commander's side of the socket, played by the test: collects raw messages.
pub struct Inbox {
    rx: Receiver<Vec<u8>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Inbox {
    pub fn bind(path: &Path) -> Inbox {
        let listener = UnixListener::bind(path).unwrap();
        listener.set_nonblocking(true).unwrap();
        let (tx, rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((mut stream, _)) => {
                        stream.set_nonblocking(false).unwrap();
                        stream
                            .set_read_timeout(Some(Duration::from_secs(2)))
                            .unwrap();
                        let mut bytes = Vec::new();
                        let _ = stream.read_to_end(&mut bytes);
                        // A server killed between connecting and writing leaves an empty
                        // connection, which the commander drops as it does here.
                        if bytes.is_empty() {
                            continue;
                        }
                        if tx.send(bytes).is_err() {
                            break;
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Inbox {
            rx,
            stop,
            thread: Some(thread),
        }
    }

    /// The next message, decoded (the bytes must be a valid message).
    pub fn recv(&self, timeout: Duration) -> Option<CommanderMessage> {
        let bytes = self.rx.recv_timeout(timeout).ok()?;
        Some(CommanderMessage::decode(&bytes).unwrap())
    }

    /// Asserts that nothing arrives within `wait`.
    pub fn assert_empty(&self, wait: Duration, context: &str) {
        if let Ok(bytes) = self.rx.recv_timeout(wait) {
            panic!("unexpected commander message {bytes:?}: {context}");
        }
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The repository's `packaging/` directory.
pub fn packaging_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packaging")
}

/// The kernel's view of a UDP socket bound to `addr`: (bytes waiting in its receive
/// queue, datagrams dropped because the queue was full), from /proc/net/udp{,6}.
pub fn udp_queue(addr: SocketAddr) -> (u64, u64) {
    let (table, local) = match addr {
        SocketAddr::V4(a) => (
            "/proc/net/udp",
            format!(
                "{:08X}:{:04X}",
                u32::from_le_bytes(a.ip().octets()),
                a.port()
            ),
        ),
        SocketAddr::V6(a) => {
            let words: String = a
                .ip()
                .octets()
                .chunks(4)
                .map(|w| format!("{:08X}", u32::from_le_bytes(w.try_into().unwrap())))
                .collect();
            ("/proc/net/udp6", format!("{words}:{:04X}", a.port()))
        }
    };
    // The kernel prints the table a chunk at a time: while other tests open and close
    // sockets, one reading can miss a line. Read again a few times before giving up.
    let mut text = String::new();
    let mut found = None;
    for _ in 0..20 {
        text = std::fs::read_to_string(table).unwrap();
        found = text
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(local.as_str()))
            .map(str::to_owned);
        if found.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let line = found.unwrap_or_else(|| panic!("{addr} ({local}) not in {table}:\n{text}"));
    let fields: Vec<&str> = line.split_whitespace().collect();
    let rx_queue = u64::from_str_radix(fields[4].split(':').nth(1).unwrap(), 16).unwrap();
    let drops = fields.last().unwrap().parse().unwrap();
    (rx_queue, drops)
}

/// Waits until the server has read everything queued for it (flow control for floods:
/// loopback UDP drops silently when the receive buffer is full).
pub fn wait_drained(addr: SocketAddr) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while udp_queue(addr).0 > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "server stopped reading its socket"
        );
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Sets (or lifts, with `None`) the soft file size limit of the running server with
/// util-linux `prlimit`: writes past it fail with EFBIG, a real write fault.
pub fn limit_file_size(server: &Running, bytes: Option<u64>) {
    let limit = bytes.map_or("unlimited:".to_owned(), |b| format!("{b}:"));
    let status = Command::new("prlimit")
        .arg("--pid")
        .arg(server.pid().to_string())
        .arg(format!("--fsize={limit}"))
        .status()
        .unwrap();
    assert!(status.success(), "prlimit failed");
}
