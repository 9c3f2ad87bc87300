//! fwknopd 2.6 in UDP server mode, measured in the same run as ruroco. It binds every
//! address, so it runs in a network namespace the benchmark makes (and removes): its
//! traffic stays on that namespace's loopback. Needs root, `ip`, `fwknopd` and `fwknop`;
//! without them the fwknop column stays empty.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context;
use nix::sched::{setns, CloneFlags};

use ruroco_testkit::find_tool as tool;

use crate::binaries::run;

/// A running fwknopd in its own namespace.
pub(crate) struct Fwknopd {
    ns: String,
    child: Child,
    dir: tempfile::TempDir,
    key: String,
    hmac: String,
}

/// Where it listens, inside its namespace.
pub(crate) const ADDR: ([u8; 4], u16) = ([127, 0, 0, 1], 62201);

impl Fwknopd {
    /// Starts it, or says why it cannot run here.
    pub(crate) fn start() -> anyhow::Result<Result<Fwknopd, String>> {
        for t in ["fwknopd", "fwknop", "ip"] {
            if tool(t).is_none() {
                return Ok(Err(format!("{t} is not installed")));
            }
        }
        if !nix::unistd::geteuid().is_root() {
            return Ok(Err("a network namespace needs root".into()));
        }
        let ns = format!("ruroco-bench-{}", std::process::id());
        run(Command::new("ip").args(["netns", "add", &ns]))?;
        let cleanup = |e: anyhow::Error| {
            let _ = Command::new("ip").args(["netns", "del", &ns]).status();
            e
        };
        run(Command::new("ip").args(["netns", "exec", &ns, "ip", "link", "set", "lo", "up"]))
            .map_err(cleanup)?;
        let dir = tempfile::tempdir()?;
        let d = dir.path();
        let key = run(Command::new("sh")
            .arg("-c")
            .arg("head -c 32 /dev/urandom | base64 -w0"))?;
        let hmac = run(Command::new("sh")
            .arg("-c")
            .arg("head -c 32 /dev/urandom | base64 -w0"))?;
        // The same work as ruroco's `echo $(date +%s%N) >> stamps`: one shell, one
        // subshell, one date. (fwknopd's config expands `$`, so the line is a script.)
        let script = d.join("stamp.sh");
        std::fs::write(
            &script,
            format!("#!/bin/sh\necho $(date +%s%N) >> {}/stamps\n", d.display()),
        )?;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))?;
        std::fs::write(
            d.join("fwknopd.conf"),
            // Everything else as shipped, including its replay digest cache on disk.
            "ENABLE_UDP_SERVER Y;\nUDPSERV_PORT 62201;\n",
        )?;
        std::fs::write(
            d.join("access.conf"),
            format!(
                "SOURCE ANY\nKEY_BASE64 {key}\nHMAC_KEY_BASE64 {hmac}\nCMD_CYCLE_OPEN {}\nCMD_CYCLE_CLOSE NONE\nCMD_CYCLE_TIMER 1\n",
                script.display()
            ),
        )?;
        for f in ["fwknopd.conf", "access.conf"] {
            std::fs::set_permissions(d.join(f), std::fs::Permissions::from_mode(0o600))?;
        }
        std::fs::write(d.join("rc"), "")?;
        std::fs::set_permissions(d.join("rc"), std::fs::Permissions::from_mode(0o600))?;
        let p = |name: &str| d.join(name).display().to_string();
        // `ip netns exec` execs fwknopd: the child's pid is fwknopd's.
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &ns,
                "fwknopd",
                "-f",
                "--no-ipt-check-support",
            ])
            .args(["-c", &p("fwknopd.conf"), "-a", &p("access.conf")])
            .args([
                "-p",
                &p("fwknopd.pid"),
                "-r",
                &p("run"),
                "-d",
                &p("digest.cache"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start fwknopd")
            .map_err(cleanup)?;
        let f = Fwknopd {
            ns,
            child,
            dir,
            key: key.trim().to_owned(),
            hmac: hmac.trim().to_owned(),
        };
        // Listening once its socket shows in its namespace.
        for _ in 0..200 {
            if crate::procfs::udp_socket(f.pid(), f.addr()).is_ok() {
                return Ok(Ok(f));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Err("fwknopd did not start listening".into()))
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        SocketAddr::from(ADDR)
    }

    /// `n` valid SPA packets from the real client, made in advance.
    pub(crate) fn packets(&self, n: usize) -> anyhow::Result<Vec<Vec<u8>>> {
        let file = self.dir.path().join("packets");
        let _ = std::fs::remove_file(&file);
        for _ in 0..n {
            run(Command::new("fwknop")
                .args([
                    "-A",
                    "tcp/22",
                    "-a",
                    "127.0.0.1",
                    "-D",
                    "127.0.0.1",
                    "-p",
                    "62201",
                ])
                .args([
                    "--key-base64-rijndael",
                    &self.key,
                    "--key-base64-hmac",
                    &self.hmac,
                ])
                .args(["--use-hmac", "--no-save-args", "--test", "-b", "-B"])
                .arg(&file)
                .arg("--rc-file")
                .arg(self.dir.path().join("rc")))?;
        }
        Ok(std::fs::read_to_string(&file)?
            .lines()
            .map(|l| l.trim().as_bytes().to_vec())
            .collect())
    }

    /// The times its command wrote so far.
    pub(crate) fn stamps(&self) -> Vec<u128> {
        std::fs::read_to_string(self.dir.path().join("stamps"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// Runs `f` on a thread inside fwknopd's namespace (sockets it opens live there).
    pub(crate) fn inside<R: Send + 'static>(
        &self,
        f: impl FnOnce() -> anyhow::Result<R> + Send + 'static,
    ) -> anyhow::Result<R> {
        let path = format!("/var/run/netns/{}", self.ns);
        std::thread::spawn(move || {
            let ns = std::fs::File::open(&path)?;
            setns(ns, CloneFlags::CLONE_NEWNET)?;
            f()
        })
        .join()
        .map_err(|_| anyhow::anyhow!("namespace thread panicked"))?
    }
}

impl Drop for Fwknopd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}
