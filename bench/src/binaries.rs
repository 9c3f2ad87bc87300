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
    /// `ruroco-client` as the packages ship it (its `client` profile, stripped; see
    /// scripts/release-build.sh).
    pub(crate) client: PathBuf,
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
            "ruroco-bench",
            "--bins",
        ]))?;
        // The client with the profile it ships with (scripts/release-build.sh).
        run(Command::new(env!("CARGO")).current_dir(&root).args([
            "build",
            "--profile",
            "client",
            "--locked",
            "--quiet",
            "-p",
            "ruroco-client",
        ]))?;
        let release = root.join("target/release");
        // Stripped, as the packages ship it (packaging/assets.sh).
        let client = root.join("target/bench-client");
        std::fs::copy(root.join("target/client/ruroco-client"), &client)
            .with_context(|| format!("cannot copy the client to {}", client.display()))?;
        run(Command::new("strip").arg("--strip-all").arg(&client))?;
        Ok(Binaries {
            client,
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
