//! Records which commit and target the programs were built from, for `--version` and the
//! `build_info` metrics (`unknown` outside a git checkout, e.g. from a release tarball),
//! and the version: the package's, with `+LABEL` when `RUROCO_VERSION_LABEL` is set at
//! build time (a distribution's revision, or a test build that must differ).

fn main() {
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=RUROCO_COMMIT={commit}");
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".to_owned());
    println!("cargo:rustc-env=RUROCO_TARGET={target}");
    for path in [
        "../../.git/HEAD",
        "../../.git/refs/heads",
        "../../.git/packed-refs",
    ] {
        if std::path::Path::new(path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    let mut version = std::env::var("CARGO_PKG_VERSION").unwrap_or_default();
    if let Ok(label) = std::env::var("RUROCO_VERSION_LABEL") {
        let label = label.trim();
        if !label.is_empty() {
            version = format!("{version}+{label}");
        }
    }
    println!("cargo:rustc-env=RUROCO_VERSION={version}");
    println!("cargo:rerun-if-env-changed=RUROCO_VERSION_LABEL");
    println!("cargo:rerun-if-changed=build.rs");
}
