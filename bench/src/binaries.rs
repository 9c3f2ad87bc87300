//! The programs under test: ruroco's release binaries (built here, so a run never measures
//! a stale or debug build) and the external tools found on this machine.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};

/// Paths of the binaries a run uses.
pub(crate) struct Binaries {
    /// `ruroco-server`, release build.
    pub(crate) server: PathBuf,
    /// `ruroco-commander`, release build.
    pub(crate) commander: PathBuf,
    /// The bare `recvmmsg` loop.
    pub(crate) udp_floor: PathBuf,
    /// `ruroco-client` as the Debian package ships it (static-pie on glibc).
    pub(crate) client: PathBuf,
    /// `ruroco-client` as `cargo install` builds it (dynamically linked).
    pub(crate) client_dynamic: PathBuf,
}

impl Binaries {
    /// Builds the release binaries and the packaged client.
    pub(crate) fn build() -> anyhow::Result<Binaries> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .context("the benchmark crate has no parent directory")?
            .to_path_buf();
        eprintln!("building release binaries …");
        run(Command::new(env!("CARGO")).current_dir(&root).args([
            "build",
            "--release",
            "--locked",
            "--quiet",
            "-p",
            "ruroco-server",
            "-p",
            "ruroco-commander",
            "-p",
            "ruroco-client",
            "-p",
            "ruroco-bench",
            "--bins",
        ]))?;
        let out = run(Command::new("bash")
            .current_dir(&root)
            .arg("scripts/static-client.sh"))?;
        let release = root.join("target/release");
        Ok(Binaries {
            client: root.join(out.trim()),
            client_dynamic: release.join("ruroco-client"),
            server: release.join("ruroco-server"),
            commander: release.join("ruroco-commander"),
            udp_floor: release.join("udp-floor"),
        })
    }
}

/// Runs a command to completion; its stdout, or an error with its stderr.
pub(crate) fn run(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
