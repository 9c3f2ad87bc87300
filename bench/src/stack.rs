//! ruroco's server and commander (release builds) in a temporary directory on loopback,
//! with one key and a command that appends the time it ran (ns) to a file.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;

use anyhow::Context;
use ruroco_proto::Key;
use ruroco_testkit::Daemon;

use crate::binaries::Binaries;

/// A running pair.
pub(crate) struct Stack {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) key: Key,
    pub(crate) server: Daemon,
    /// Kept to stop it (by PID) when the stack is dropped.
    pub(crate) _commander: Daemon,
    pub(crate) addr: SocketAddr,
}

impl Stack {
    /// Starts both; `stamp` runs `echo $(date +%s%N) >> stamps` (the first line a shell
    /// can print about itself), `noop` runs `true`.
    pub(crate) fn start(bins: &Binaries) -> anyhow::Result<Stack> {
        Self::start_with(bins, "")
    }

    /// [`Stack::start`] with `extra` lines appended to `config.toml`.
    pub(crate) fn start_with(bins: &Binaries, extra: &str) -> anyhow::Result<Stack> {
        let dir = tempfile::tempdir()?;
        let d = dir.path().display().to_string();
        let server_dir = dir.path().join("server");
        std::fs::create_dir(&server_dir)?;
        let key = Key::generate()?;
        std::fs::write(server_dir.join("bench.key"), key.to_key_string().as_bytes())?;
        let config = server_dir.join("config.toml");
        std::fs::write(
            &config,
            format!(
                "ips = [\"127.0.0.1\"]\nconfig_dir = \"{}\"\nstate_dir = \"{d}/state\"\n\
                 socket_user = \"\"\nsocket_group = \"\"\nallow_non_routable_ips = true\n\
                 max_requests_per_second = 100000\nmax_requests_per_second_global = 100000\n{extra}\n",
                server_dir.display()
            ),
        )?;
        std::fs::write(
            server_dir.join("commands.toml"),
            format!("[commands]\nstamp = \"echo $(date +%s%N) >> {d}/stamps\"\nnoop = \"true\"\n"),
        )?;
        // The environment a systemd service gets (PATH and little else), not this shell's:
        // commands inherit it, and fwknopd runs its commands with none at all (`strace -f
        // -e execve`: envp NULL). With a LANG from here, every `date` loaded a locale that
        // fwknopd's did not (0.3-0.5 ms a run).
        let mut cmd = Command::new(&bins.commander);
        cmd.arg("--config")
            .arg(&config)
            .env_clear()
            .env("PATH", SERVICE_PATH);
        let commander = Daemon::try_spawn(cmd, "listening on")
            .map_err(|(log, _)| anyhow::anyhow!("commander did not start: {log}"))?;
        let server = Daemon::try_spawn(server_command(bins, &config), "listening on")
            .map_err(|(log, _)| anyhow::anyhow!("server did not start: {log}"))?;
        let addr = server.listening_addr().context("server address")?;
        Ok(Stack {
            dir,
            key,
            server,
            _commander: commander,
            addr,
        })
    }

    pub(crate) fn stamps_path(&self) -> PathBuf {
        self.dir.path().join("stamps")
    }

    /// The times (ns since the epoch) the stamp command has written so far.
    pub(crate) fn stamps(&self) -> Vec<u128> {
        std::fs::read_to_string(self.stamps_path())
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    pub(crate) fn server_pid(&self) -> u32 {
        self.server.pid().as_raw().unsigned_abs()
    }
}

/// `PATH` as systemd sets it for a service.
pub(crate) const SERVICE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin";

/// The release server on an ephemeral loopback port with `config`, without anything of
/// this process's socket activation or log settings.
pub(crate) fn server_command(bins: &Binaries, config: &std::path::Path) -> Command {
    let mut cmd = Command::new(&bins.server);
    cmd.arg("--config")
        .arg(config)
        .args(["--address", "127.0.0.1:0"])
        .env_remove("LISTEN_FDS")
        .env_remove("LISTEN_PID")
        .env_remove("RUROCO_LOG");
    cmd
}

/// Nanoseconds since the Unix epoch.
pub(crate) fn now_ns() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}
