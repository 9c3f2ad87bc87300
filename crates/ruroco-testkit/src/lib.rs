//! Test support for ruroco's integration tests: a real daemon process whose log is
//! captured line by line, waited on with timeouts, signalled and stopped by its own pid.
//!
//! Test-only: panics on misuse are the point here, so the panic lints are relaxed.
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// A running daemon with its stderr captured.
pub struct Daemon {
    pub child: Child,
    log: Arc<Mutex<Vec<String>>>,
    reader: Option<JoinHandle<()>>,
}

impl Daemon {
    /// Spawns `cmd` (stderr piped) and waits until a log line contains `ready`.
    pub fn spawn(cmd: Command, ready: &str) -> Daemon {
        Self::try_spawn(cmd, ready)
            .unwrap_or_else(|(log, status)| panic!("daemon did not start ({status:?}):\n{log}"))
    }

    /// Like [`Daemon::spawn`], but a daemon that exits (or never gets ready) is returned
    /// as its log and exit status.
    pub fn try_spawn(
        mut cmd: Command,
        ready: &str,
    ) -> Result<Daemon, (String, Option<ExitStatus>)> {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
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
        let mut daemon = Daemon {
            child,
            log,
            reader: Some(reader),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if daemon.count_log(ready) > 0 {
                return Ok(daemon);
            }
            if let Ok(Some(status)) = daemon.child.try_wait() {
                daemon.join_reader();
                return Err((daemon.log_text(), Some(status)));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Err((daemon.log_text(), None))
    }

    /// The first log line containing `needle`.
    pub fn find_log(&self, needle: &str) -> Option<String> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .find(|l| l.contains(needle))
            .cloned()
    }

    /// The address of the server's "listening on ADDR" line; a wildcard bind is given as
    /// the loopback address of its family, which reaches it.
    pub fn listening_addr(&self) -> Option<SocketAddr> {
        let line = self.find_log("listening on ")?;
        let rest = line.split("listening on ").nth(1)?;
        let addr: SocketAddr = rest.split_whitespace().next()?.parse().ok()?;
        Some(match addr.ip() {
            IpAddr::V6(ip) if ip.is_unspecified() => {
                SocketAddr::new(Ipv6Addr::LOCALHOST.into(), addr.port())
            }
            IpAddr::V4(ip) if ip.is_unspecified() => {
                SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port())
            }
            _ => addr,
        })
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    pub fn count_log(&self, needle: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// Waits until a log line contains `needle`.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        self.wait_log_count(needle, 1, timeout)
    }

    /// Waits until at least `n` log lines contain `needle`.
    pub fn wait_log_count(&self, needle: &str, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.count_log(needle) >= n {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn pid(&self) -> Pid {
        Pid::from_raw(i32::try_from(self.child.id()).unwrap())
    }

    pub fn signal(&self, signal: Signal) {
        kill(self.pid(), signal).unwrap();
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

    /// SIGTERM, then the full log once the daemon has exited with status 0.
    pub fn stop(self) -> String {
        self.signal(Signal::SIGTERM);
        self.stop_after_signal()
    }

    /// For a daemon already signalled: waits for a clean exit and returns the log.
    pub fn stop_after_signal(mut self) -> String {
        let status = self
            .wait_exit(Duration::from_secs(10))
            .expect("daemon did not stop");
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
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Where the program `name` is: `PATH`, then the sbin directories (daemons such as sshd
/// live there, and a non-root `PATH` often leaves them out).
pub fn find_tool(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// An external tool a test needs. Missing: a failure under CI (`CI` set; `.ci/run`
/// installs it), a loud skip elsewhere.
pub fn tool(name: &str) -> Option<PathBuf> {
    let found = find_tool(name);
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{name} is not installed; .ci/run must install it"
        );
        eprintln!("SKIPPED: {name} is not installed");
    }
    found
}

/// The value of the sample `series` (name and labels exactly as written) in a Prometheus
/// text exposition.
pub fn metric_value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("{series} missing in:\n{text}"))
        .parse()
        .unwrap()
}

/// Runs `promtool check metrics` on `text`: `Some("")` when it has nothing to say, its
/// complaints otherwise, `None` (a loud skip, a failure under CI) without promtool.
pub fn promtool(text: &str) -> Option<String> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let promtool = tool("promtool")?;
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some(if out.status.success() && said.trim().is_empty() {
        String::new()
    } else {
        format!("exit {:?}: {said}", out.status.code())
    })
}

/// A `redis-server` on a loopback port, with no snapshots and an append-only file in its
/// own directory; stopped (by its PID) when dropped.
pub struct RedisServer {
    child: std::process::Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    dir: Option<tempfile::TempDir>,
}

impl RedisServer {
    /// Starts `redis` on `port` (a free one if `None`) keeping its files in `dir` (a new
    /// temporary one if `None`), with `args` added; waits until it accepts connections.
    pub fn start(
        redis: &std::path::Path,
        port: Option<u16>,
        dir: Option<tempfile::TempDir>,
        args: &[&str],
    ) -> Result<RedisServer, String> {
        let free = || -> std::io::Result<u16> {
            Ok(std::net::TcpListener::bind("127.0.0.1:0")?
                .local_addr()?
                .port())
        };
        let port = match port {
            Some(port) => port,
            None => free().map_err(|e| e.to_string())?,
        };
        let dir = match dir {
            Some(dir) => dir,
            None => tempfile::tempdir().map_err(|e| e.to_string())?,
        };
        let mut child = Command::new(redis)
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args(["--appendonly", "yes"])
            .args(args)
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start redis-server: {e}"))?;
        for _ in 0..250 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(RedisServer {
                    child,
                    port,
                    dir: Some(dir),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        Err(format!("redis-server did not start on port {port}"))
    }

    /// Its process id (to pause it with SIGSTOP, as a stalled host).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops it and hands back its port and directory, to start it again as it was.
    pub fn stop(mut self) -> (u16, tempfile::TempDir) {
        self.halt();
        let dir = self.dir.take().unwrap();
        (self.port, dir)
    }

    fn halt(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.halt();
    }
}

/// Receives systemd notify messages from `socket` into `got` until one (at index `from`
/// or later) contains `want`; returns its index. Panics naming what arrived when nothing
/// more does within the socket's read timeout.
pub fn notified(
    socket: &std::os::unix::net::UnixDatagram,
    got: &mut Vec<String>,
    from: usize,
    want: &str,
) -> usize {
    loop {
        if let Some(i) = got.iter().skip(from).position(|m| m.contains(want)) {
            return from + i;
        }
        let mut buf = [0u8; 4096];
        let n = socket
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("no {want} in {got:?}: {e}"));
        got.push(String::from_utf8_lossy(buf.get(..n).unwrap_or_default()).into_owned());
    }
}
