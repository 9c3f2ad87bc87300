//! A complete local installation in a temp dir: key, config, commands, commander, server.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

pub use ruroco_testkit::{tool, Daemon};
use tempfile::TempDir;

pub const CLIENT: &str = env!("CARGO_BIN_EXE_ruroco-client");

/// A sibling binary of this workspace, built by `cargo test --workspace`.
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap();
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} not built; run the tests with `cargo test --workspace`",
        path.display()
    );
    path
}

/// Where the commands are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `config.toml` plus `commands.toml`, passed with `--commands`.
    Current,
    /// Released 0.14.x: a `[commands]` table at the end of `config.toml`, no `--commands`.
    Released,
}

/// Server and commander running in a temp dir, unprivileged, on loopback.
pub struct Stack {
    pub dir: TempDir,
    pub client_dir: PathBuf,
    pub key_file: PathBuf,
    pub server: Daemon,
    pub commander: Daemon,
    pub addr: SocketAddr,
}

impl Stack {
    /// `config_extra` is appended to config.toml.
    pub fn start(config_extra: &str) -> Stack {
        Self::start_on(config_extra, "127.0.0.1:0")
    }

    /// Like [`Stack::start`], with the server listening on `listen`.
    pub fn start_on(config_extra: &str, listen: &str) -> Stack {
        Self::start_layout(config_extra, listen, Layout::Current)
    }

    /// Like [`Stack::start`], with the files laid out as in `layout`.
    pub fn start_layout(config_extra: &str, listen: &str, layout: Layout) -> Stack {
        Self::start_full(config_extra, listen, layout, None)
    }

    /// Like [`Stack::start`], with a given key string (several stacks sharing one key).
    pub fn start_with_key(config_extra: &str, key_text: &str) -> Stack {
        Self::start_full(config_extra, "127.0.0.1:0", Layout::Current, Some(key_text))
    }

    fn start_full(config_extra: &str, listen: &str, layout: Layout, key: Option<&str>) -> Stack {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        let server_dir = dir.path().join("server");
        std::fs::create_dir(&server_dir).unwrap();
        let key_text = match key {
            Some(key) => key.to_owned(),
            None => {
                let key = client(&["gen"], dir.path());
                assert!(key.status.success());
                String::from_utf8(key.stdout).unwrap()
            }
        };
        let key_file = dir.path().join("client.key");
        std::fs::write(&key_file, &key_text).unwrap();
        // As `add` and `gen` advise: the client's key is private.
        std::fs::set_permissions(
            &key_file,
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();
        std::fs::write(server_dir.join("client.key"), &key_text).unwrap();
        let config = format!(
            "ips = [\"127.0.0.1\", \"::1\"]\nconfig_dir = \"{}\"\nsocket_user = \"\"\nsocket_group = \"\"\nallow_non_routable_ips = true\nstate_dir = \"{d}/state\"\n{config_extra}\n",
            server_dir.display()
        );
        let commands = format!(
            "[commands]\ndefault = \"echo \\\"$RUROCO_IP\\\" >> {d}/default.out\"\nother = \"echo \\\"$RUROCO_IP\\\" >> {d}/other.out\"\n"
        );
        let mut cmd = Command::new(workspace_bin("ruroco-commander"));
        cmd.arg("--config").arg(server_dir.join("config.toml"));
        match layout {
            Layout::Current => {
                std::fs::write(server_dir.join("config.toml"), config).unwrap();
                let path = server_dir.join("commands.toml");
                std::fs::write(&path, commands).unwrap();
                cmd.arg("--commands").arg(&path);
            }
            Layout::Released => {
                std::fs::write(server_dir.join("config.toml"), config + &commands).unwrap();
            }
        }
        let commander = Daemon::spawn(cmd, "listening on");
        let mut cmd = Command::new(workspace_bin("ruroco-server"));
        cmd.arg("--config")
            .arg(server_dir.join("config.toml"))
            .args(["--address", listen])
            .env_remove("LISTEN_PID")
            .env_remove("LISTEN_FDS");
        let server = Daemon::spawn(cmd, "listening on");
        let addr = server.listening_addr().unwrap();
        let client_dir = dir.path().join("client-conf");
        Stack {
            dir,
            client_dir,
            key_file,
            server,
            commander,
            addr,
        }
    }

    /// Stops the commander (SIGTERM, as systemd would for a restart), waits `down`, and
    /// starts a new one on the same files.
    pub fn restart_commander(&mut self, down: Duration) {
        self.stop_commander();
        std::thread::sleep(down);
        self.start_commander();
    }

    /// SIGTERM to the commander, and waits until it is gone.
    pub fn stop_commander(&mut self) {
        self.commander.signal(nix::sys::signal::Signal::SIGTERM);
        self.commander.wait_exit(Duration::from_secs(10)).unwrap();
    }

    /// Starts a new commander on the stack's files.
    pub fn start_commander(&mut self) {
        let server_dir = self.dir.path().join("server");
        let mut cmd = Command::new(workspace_bin("ruroco-commander"));
        cmd.arg("--config")
            .arg(server_dir.join("config.toml"))
            .arg("--commands")
            .arg(server_dir.join("commands.toml"));
        self.commander = Daemon::spawn(cmd, "listening on");
    }

    /// Runs `ruroco-client send` against the server with extra arguments.
    pub fn send(&self, extra: &[&str]) -> Output {
        self.send_to(&self.addr.to_string(), extra)
    }

    /// Runs `send` and asserts the client succeeded (a dropped datagram is still success).
    pub fn send_ok(&self, extra: &[&str]) {
        let out = self.send(extra);
        assert!(out.status.success(), "{}", stderr(&out));
    }

    /// Asserts that the `name` command has run exactly for `ips`, in order.
    pub fn expect_runs(&self, name: &str, ips: &[&str]) {
        let runs = self.wait_runs(name, ips.len(), Duration::from_secs(5));
        assert_eq!(runs, ips, "{}", self.logs());
    }

    pub fn send_to(&self, address: &str, extra: &[&str]) -> Output {
        let mut args = vec!["send", "-a", address, "-k", self.key_file.to_str().unwrap()];
        args.extend_from_slice(extra);
        client(&args, &self.client_dir)
    }

    /// Runs `send` with `key` as the `-k` value.
    pub fn send_with_key(&self, key: &str, extra: &[&str]) -> Output {
        let address = self.addr.to_string();
        let mut args = vec!["send", "-a", &address, "-k", key];
        args.extend_from_slice(extra);
        client(&args, &self.client_dir)
    }

    /// Sends raw datagram bytes to the server from a loopback socket of its own.
    pub fn send_datagram(&self, datagram: &[u8]) {
        std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .send_to(datagram, self.addr)
            .unwrap();
    }

    /// How many times the `name` command has run so far.
    pub fn runs(&self, name: &str) -> usize {
        self.wait_runs(name, usize::MAX, Duration::ZERO).len()
    }

    /// Lines the `name` command wrote, once there are `n` of them (up to `timeout`).
    pub fn wait_runs(&self, name: &str, n: usize, timeout: Duration) -> Vec<String> {
        let path = self.dir.path().join(format!("{name}.out"));
        let deadline = Instant::now() + timeout;
        loop {
            let lines: Vec<String> = std::fs::read_to_string(&path)
                .map(|t| t.lines().map(str::to_owned).collect())
                .unwrap_or_default();
            if lines.len() >= n || Instant::now() >= deadline {
                return lines;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn logs(&self) -> String {
        format!(
            "--- server\n{}\n--- commander\n{}",
            self.server.log_text(),
            self.commander.log_text()
        )
    }
}

/// Runs the client with `RUROCO_CONF_DIR` = `conf`.
pub fn client(args: &[&str], conf: &Path) -> Output {
    Command::new(CLIENT)
        .args(args)
        .env("RUROCO_CONF_DIR", conf)
        .output()
        .unwrap()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}
