//! A commander in a temp dir, and a way to send it raw messages as the server would.

use std::io::Write;
use std::net::IpAddr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use ruroco_ipc::{command_hash, CommanderMessage};
pub use ruroco_testkit::{tool, Daemon};
use tempfile::TempDir;

pub const BIN: &str = env!("CARGO_BIN_EXE_ruroco-commander");

pub struct Fixture {
    pub dir: TempDir,
    pub config: PathBuf,
    pub commands: PathBuf,
}

impl Fixture {
    /// `commands` is the body of `[commands]`; `{dir}` in it becomes the temp dir.
    /// `extra` is appended to config.toml (socket owner left unchanged unless set there).
    pub fn new(commands: &str, extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        let config = dir.path().join("config.toml");
        let owner = if extra.contains("socket_user") {
            ""
        } else {
            "socket_user = \"\"\nsocket_group = \"\"\n"
        };
        let state = if extra.contains("state_dir") {
            String::new()
        } else {
            format!("state_dir = \"{d}/state\"\n")
        };
        std::fs::write(
            &config,
            format!("config_dir = \"{d}\"\n{owner}{state}{extra}\n"),
        )
        .unwrap();
        let commands_path = dir.path().join("commands.toml");
        std::fs::write(
            &commands_path,
            format!("[commands]\n{}\n", commands.replace("{dir}", &d)),
        )
        .unwrap();
        std::fs::set_permissions(
            &commands_path,
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();
        Self {
            dir,
            config,
            commands: commands_path,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn socket(&self) -> PathBuf {
        self.path().join("ruroco.socket")
    }

    pub fn command(&self) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.arg("--config")
            .arg(&self.config)
            .arg("--commands")
            .arg(&self.commands)
            .env_remove("RUROCO_LOG");
        cmd
    }

    pub fn start(&self) -> Daemon {
        Daemon::spawn(self.command(), "listening on")
    }

    /// `ruroco-commander pending`'s output.
    pub fn pending(&self) -> String {
        let out = Command::new(BIN)
            .arg("--config")
            .arg(&self.config)
            .arg("pending")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Lines of a file in the temp dir (empty if it does not exist).
    pub fn lines(&self, name: &str) -> Vec<String> {
        std::fs::read_to_string(self.path().join(name))
            .map(|t| t.lines().map(str::to_owned).collect())
            .unwrap_or_default()
    }

    /// Waits until the file has `n` lines (up to `timeout`); its lines.
    pub fn wait_lines(&self, name: &str, n: usize, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let lines = self.lines(name);
            if lines.len() >= n || Instant::now() >= deadline {
                return lines;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends raw bytes as one connection, the way the server does.
    pub fn send_raw(&self, bytes: &[u8]) {
        let mut stream = UnixStream::connect(self.socket()).unwrap();
        stream.write_all(bytes).unwrap();
        stream.shutdown(std::net::Shutdown::Write).unwrap();
    }

    pub fn send(&self, name: &str, ip: &str) {
        let ip: IpAddr = ip.parse().unwrap();
        self.send_raw(
            &CommanderMessage {
                cmd_hash: command_hash(name),
                ip,
            }
            .encode(),
        );
    }

    /// Contents of a file in the temp dir once it exists (up to `timeout`).
    pub fn wait_file(&self, name: &str, timeout: Duration) -> Option<String> {
        let path = self.path().join(name);
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(text) = std::fs::read_to_string(&path) {
                if !text.is_empty() {
                    return Some(text);
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }
}

/// Config line letting the documentation addresses (192.0.2.0/24, 203.0.113.0/24, …) run.
pub const ALLOW: &str = "allow_non_routable_ips = true";
