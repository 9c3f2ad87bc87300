//! Shared test harness: temp dirs, the real server binary, a commander-side inbox, and
//! datagrams sealed with the real protocol crate.

use std::io::{BufRead, BufReader, Read};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use ruroco_proto::{command_hash, seal, CommanderMessage, Key, Plaintext};
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
            .env_remove("RUROCO_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        cmd
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
    pub fn packet(&self, command: &str, counter: u128) -> [u8; 94] {
        self.packet_with(Plaintext {
            version: 1,
            cmd_hash: command_hash(command),
            counter,
            strict: true,
            src_ip: None,
            dst_ip: "127.0.0.1".parse().unwrap(),
        })
    }

    pub fn packet_with(&self, pt: Plaintext) -> [u8; 94] {
        seal(&self.key, &pt).unwrap()
    }
}

/// A running server process with its captured log.
pub struct Running {
    pub child: Child,
    pub addr: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
    reader: Option<JoinHandle<()>>,
}

impl Running {
    pub fn spawn(cmd: Command) -> Running {
        Self::try_spawn(cmd)
            .unwrap_or_else(|(log, status)| panic!("server did not start ({status:?}):\n{log}"))
    }

    /// Spawns and waits for the "listening on" line; on failure returns the log and status.
    pub fn try_spawn(mut cmd: Command) -> Result<Running, (String, Option<ExitStatus>)> {
        let mut child = cmd.spawn().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = Arc::clone(&log);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        let mut running = Running {
            child,
            addr: "0.0.0.0:0".parse().unwrap(),
            log,
            reader: Some(reader),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(addr) = running.listening_addr() {
                running.addr = addr;
                return Ok(running);
            }
            if let Ok(Some(status)) = running.child.try_wait() {
                running.join_reader();
                return Err((running.log_text(), Some(status)));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Err((running.log_text(), None))
    }

    fn listening_addr(&self) -> Option<SocketAddr> {
        let log = self.log.lock().unwrap();
        let line = log.iter().find(|l| l.contains("listening on "))?;
        let rest = line.split("listening on ").nth(1)?;
        let addr = rest.split_whitespace().next()?;
        let addr: SocketAddr = addr.parse().ok()?;
        // A wildcard bind is reached through loopback.
        Some(match addr.ip() {
            IpAddr::V6(ip) if ip.is_unspecified() => {
                SocketAddr::new("::1".parse().unwrap(), addr.port())
            }
            IpAddr::V4(ip) if ip.is_unspecified() => {
                SocketAddr::new("127.0.0.1".parse().unwrap(), addr.port())
            }
            _ => addr,
        })
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Waits until a log line contains `needle`.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.log.lock().unwrap().iter().any(|l| l.contains(needle)) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn count_log(&self, needle: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }

    pub fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), signal).unwrap();
    }

    /// Waits for exit, up to `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                self.join_reader();
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGTERM, then the full log once the server has exited cleanly.
    pub fn stop(mut self) -> String {
        self.signal(Signal::SIGTERM);
        let status = self
            .wait_exit(Duration::from_secs(5))
            .expect("server did not stop");
        assert!(
            status.success(),
            "exit status {status:?}\n{}",
            self.log_text()
        );
        self.log_text()
    }

    /// For a server already signalled: waits for a clean exit and returns the log.
    pub fn stop_after_signal(mut self) -> String {
        let status = self
            .wait_exit(Duration::from_secs(5))
            .expect("server did not stop");
        assert!(
            status.success(),
            "exit status {status:?}\n{}",
            self.log_text()
        );
        self.log_text()
    }

    fn join_reader(&mut self) {
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
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

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
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
