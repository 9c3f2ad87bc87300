//! `cargo run -p xtask -- dist DIR`: the release tarball (see [`dist`]).
//!
//! `cargo run -p xtask -- assets DIR`: writes man pages (`DIR/man/*.1`, and `*.5` for the
//! three files people edit) and shell completions (`DIR/completions/{bash,zsh,fish}/…`)
//! for the three programs.
//!
//! `cargo run -p xtask -- reference DIR`: the documentation site's reference pages
//! (`commands.md` and one page per file people edit), as committed in `docs/reference/`;
//! a test fails when the committed pages differ from what this writes.
//!
//! The programs' `cli.rs` files are compiled in here by path, so what is generated is the
//! very definition the binaries parse with: the documentation cannot drift from the code.
#![forbid(unsafe_code)]

#[allow(dead_code, unreachable_pub)]
#[path = "../../crates/ruroco-client/src/cli.rs"]
mod client_cli;
#[allow(dead_code, unreachable_pub)]
#[path = "../../crates/ruroco-commander/src/cli.rs"]
mod commander_cli;
#[allow(dead_code, unreachable_pub)]
#[path = "../../crates/ruroco-server/src/cli.rs"]
mod server_cli;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::CommandFactory;
use ruroco_config::Shell;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [task, dir] if task == "assets" => {
            let written = write_assets(Path::new(dir))?;
            for path in written {
                println!("{}", path.display());
            }
            Ok(())
        }
        [task, dir] if task == "reference" => {
            for path in write_reference(Path::new(dir))? {
                println!("{}", path.display());
            }
            Ok(())
        }
        [task, dir] if task == "dist" => {
            let tarball = dist(Path::new(dir))?;
            println!("{}", tarball.display());
            Ok(())
        }
        _ => bail!("usage: cargo run -p xtask -- assets DIR | dist DIR | reference DIR"),
    }
}

/// The workspace's root (xtask's parent directory).
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Runs `cmd`, failing with its name if it does not succeed; its standard output.
fn run(cmd: &mut std::process::Command) -> anyhow::Result<String> {
    let out = cmd
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed ({})", out.status);
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Files of the repository that go into the tarball: (source, place in the tarball, mode).
const DIST_FILES: &[(&str, &str, u32)] = &[
    (
        "packaging/systemd/ruroco.socket",
        "systemd/ruroco.socket",
        0o644,
    ),
    (
        "packaging/systemd/ruroco.service",
        "systemd/ruroco.service",
        0o644,
    ),
    (
        "packaging/systemd/ruroco-commander.socket",
        "systemd/ruroco-commander.socket",
        0o644,
    ),
    (
        "packaging/systemd/ruroco-commander.service",
        "systemd/ruroco-commander.service",
        0o644,
    ),
    (
        "packaging/sysusers.d/ruroco.conf",
        "sysusers.d/ruroco.conf",
        0o644,
    ),
    (
        "packaging/tmpfiles.d/ruroco.conf",
        "tmpfiles.d/ruroco.conf",
        0o644,
    ),
    ("packaging/config/config.toml", "config/config.toml", 0o644),
    (
        "packaging/config/commands.toml",
        "config/commands.toml",
        0o600,
    ),
    (
        "packaging/fail2ban/filter.d/ruroco.conf",
        "fail2ban/filter.d/ruroco.conf",
        0o644,
    ),
    (
        "packaging/fail2ban/jail.d/ruroco.conf",
        "fail2ban/jail.d/ruroco.conf",
        0o644,
    ),
    ("packaging/dist/install.sh", "install.sh", 0o755),
    ("scripts/demo.sh", "demo.sh", 0o755),
    ("README.md", "doc/README.md", 0o644),
    ("CHANGELOG.md", "doc/CHANGELOG.md", 0o644),
    ("LICENSE", "doc/LICENSE", 0o644),
];

/// The release tarball `DIR/ruroco-VERSION-TARGET.tar.gz`: the three programs built
/// dynamically linked (see scripts/release-build.sh), the systemd units, sysusers.d and tmpfiles.d files, example configuration,
/// the fail2ban filter, man pages, shell completions, documentation (and the site built by
/// mdbook, under `doc/site/`), `install.sh`,
/// `demo.sh` and `SHA256SUMS` of every file; beside it `DIR/SHA256SUMS` of the tarball.
/// Reproducible: sorted, owned by root, every time stamp that of the last commit.
fn dist(out: &Path) -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let root = workspace();
    let bins = run(std::process::Command::new("bash")
        .arg("scripts/release-build.sh")
        .current_dir(&root))?;
    let name = format!(
        "ruroco-{}-{}",
        ruroco_config::VERSION,
        ruroco_config::TARGET
    );
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let out = std::fs::canonicalize(out)?;
    let stage = out.join(&name);
    if stage.exists() {
        std::fs::remove_dir_all(&stage)
            .with_context(|| format!("cannot remove {}", stage.display()))?;
    }
    let place = |from: &Path, to: &str, mode: u32| -> anyhow::Result<()> {
        let dest = stage.join(to);
        if let Some(dir) = dest.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::copy(from, &dest)
            .with_context(|| format!("cannot copy {} to {}", from.display(), dest.display()))?;
        std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(mode))?;
        Ok(())
    };
    for program in ["ruroco-server", "ruroco-commander", "ruroco-client"] {
        place(
            &root.join(&bins).join(program),
            &format!("bin/{program}"),
            0o755,
        )?;
    }
    for (from, to, mode) in DIST_FILES {
        place(&root.join(from), to, *mode)?;
    }
    // The documentation's pages as Markdown (doc/operators.md and its neighbours, doc/reference/).
    for sub in ["", "reference"] {
        let dir = root.join("docs").join(sub);
        let mut pages: Vec<PathBuf> = std::fs::read_dir(&dir)
            .with_context(|| format!("cannot read {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "md"))
            .collect();
        pages.sort();
        for page in pages {
            let name = page
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let to = if sub.is_empty() {
                format!("doc/{name}")
            } else {
                format!("doc/{sub}/{name}")
            };
            place(&page, &to, 0o644)?;
        }
    }
    write_assets(&stage)?;
    // The documentation site, built from docs/ by mdbook into target/book.
    let site = root.join("target/book");
    run(std::process::Command::new("mdbook")
        .arg("build")
        .current_dir(&root))
    .context(
        "the tarball carries the documentation site: install mdbook (cargo install mdbook --locked --no-default-features --features search)",
    )?;
    let mut pages = Vec::new();
    collect_files(&site, &site, &mut pages)?;
    for page in pages {
        place(
            &site.join(&page),
            &format!("doc/site/{}", page.display()),
            0o644,
        )?;
    }
    // Checksums of every file, as `sha256sum -c SHA256SUMS` reads them.
    let mut files = Vec::new();
    collect_files(&stage, &stage, &mut files)?;
    files.sort();
    let sums = run(std::process::Command::new("sha256sum")
        .arg("--")
        .args(&files)
        .current_dir(&stage))?;
    std::fs::write(stage.join("SHA256SUMS"), format!("{sums}\n"))?;
    let epoch = run(std::process::Command::new("git")
        .args(["log", "-1", "--format=%ct"])
        .current_dir(&root))
    .unwrap_or_else(|_| "0".to_owned());
    let tarball = format!("{name}.tar.gz");
    run(std::process::Command::new("tar")
        .args([
            "--sort=name",
            "--owner=0",
            "--group=0",
            "--numeric-owner",
            &format!("--mtime=@{epoch}"),
            "--use-compress-program=gzip -n",
            "-cf",
            &tarball,
            &name,
        ])
        .current_dir(&out))?;
    let sums = run(std::process::Command::new("sha256sum")
        .arg(&tarball)
        .current_dir(&out))?;
    std::fs::write(out.join("SHA256SUMS"), format!("{sums}\n"))?;
    std::fs::remove_dir_all(&stage)?;
    Ok(out.join(tarball))
}

/// Every file under `dir`, relative to `base`.
fn collect_files(base: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_files(base, &path, out)?;
        } else if let Ok(rel) = path.strip_prefix(base) {
            out.push(rel.to_path_buf());
        }
    }
    Ok(())
}

/// Every program's clap command, with its binary name.
fn commands() -> Vec<clap::Command> {
    vec![
        client_cli::Cli::command(),
        server_cli::Cli::command(),
        commander_cli::Cli::command(),
    ]
}

/// Writes man pages and completions under `dir`; returns the files written.
fn write_assets(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let man_dir = dir.join("man");
    std::fs::create_dir_all(&man_dir)
        .with_context(|| format!("cannot create {}", man_dir.display()))?;
    for file in &ruroco_config::fields::FILES {
        let path = man_dir.join(format!("{}.5", file.name));
        render_file_page(file, &path)?;
        written.push(path);
    }
    for cmd in commands() {
        let name = cmd.get_name().to_owned();
        let path = man_dir.join(format!("{name}.1"));
        render_man(cmd.clone(), &path)?;
        written.push(path);
        // One page per subcommand too (ruroco-client-send(1), …), so every flag is documented.
        for sub in cmd.get_subcommands() {
            let sub_name = format!("{name}-{}", sub.get_name());
            let path = man_dir.join(format!("{sub_name}.1"));
            render_man(sub.clone().name(sub_name), &path)?;
            written.push(path);
        }
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let shell_dir = dir.join("completions").join(shell.to_string());
            std::fs::create_dir_all(&shell_dir)
                .with_context(|| format!("cannot create {}", shell_dir.display()))?;
            let path = shell_dir.join(ruroco_config::completion_file_name(shell, &name));
            let mut script = Vec::new();
            ruroco_config::write_completions(shell, &mut cmd.clone(), &mut script)?;
            std::fs::write(&path, script)
                .with_context(|| format!("cannot write {}", path.display()))?;
            written.push(path);
        }
    }
    Ok(written)
}

/// The reference pages, in Markdown, from the same definitions as the man pages: the
/// programs' `--help` (every command and subcommand) and each file's key lists. Returns
/// the files written.
fn write_reference(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut written = Vec::new();
    let mut page = String::from(
        "# Commands\n\n<!-- Generated by `cargo run -p xtask -- reference docs/reference` from the programs' own definitions; do not edit. -->\n\nEvery program and subcommand, as its `--help` prints it (also `man ruroco-client-send` and the like once installed).\n",
    );
    for cmd in commands() {
        let name = cmd.get_name().to_owned();
        let mut cmd = cmd.term_width(100);
        cmd.build();
        page.push_str(&format!(
            "\n## {name}\n\n```text\n{}\n```\n",
            help(&mut cmd)
        ));
        for sub in cmd.get_subcommands_mut() {
            let title = format!("{name} {}", sub.get_name());
            let mut sub = sub.clone().name(title.clone()).term_width(100);
            page.push_str(&format!(
                "\n### {title}\n\n```text\n{}\n```\n",
                help(&mut sub)
            ));
        }
    }
    let path = dir.join("commands.md");
    std::fs::write(&path, page).with_context(|| format!("cannot write {}", path.display()))?;
    written.push(path);
    for file in &ruroco_config::fields::FILES {
        let path = dir.join(format!("{}.md", file.name.replace('.', "-")));
        std::fs::write(&path, file_markdown(file))
            .with_context(|| format!("cannot write {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// `cmd --help` as text, without trailing blanks.
fn help(cmd: &mut clap::Command) -> String {
    let text = cmd.render_long_help().to_string();
    text.lines()
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n")
        .trim_end()
        .to_owned()
}

/// One file's reference page: its tables and every key with its type, default and meaning.
fn file_markdown(file: &ruroco_config::fields::FileDoc) -> String {
    let mut page = format!(
        "# {}\n\n<!-- Generated by `cargo run -p xtask -- reference docs/reference` from the key lists the parser checks against; do not edit. -->\n\n{}: {}\n\n{}\n",
        file.name, file.name, file.summary, file.description
    );
    for table in file.tables {
        let title = if table.header.is_empty() {
            "Top-level keys".to_owned()
        } else {
            format!("`{}`", table.header)
        };
        page.push_str(&format!("\n## {title}\n\n{}\n\n", table.doc));
        page.push_str("| key | type | default | meaning |\n| --- | --- | --- | --- |\n");
        for field in table.fields {
            page.push_str(&format!(
                "| `{}` | {} | {} | {} |\n",
                field.name,
                field.kind.replace('|', "\\|"),
                field.default.replace('|', "\\|"),
                field.doc.replace('|', "\\|").replace('\n', " ")
            ));
        }
    }
    page.push_str(&format!(
        "\n## Example\n\n```toml\n{}\n```\n\nSee also: {}.\n",
        file.example.trim_end(),
        file.see_also.join(", ")
    ));
    page
}

/// A section-5 page for one file, from the key lists its parser checks against.
fn render_file_page(file: &ruroco_config::fields::FileDoc, path: &Path) -> anyhow::Result<()> {
    use roff::{bold, italic, roman, Roff};
    let version = env!("CARGO_PKG_VERSION");
    let mut page = Roff::new();
    page.control(
        "TH",
        [
            file.name.to_uppercase().as_str(),
            "5",
            "",
            &format!("ruroco {version}"),
            "File Formats",
        ],
    );
    page.control("SH", ["NAME"]);
    page.text([roman(format!("{} - {}", file.name, file.summary))]);
    page.control("SH", ["DESCRIPTION"]);
    page.text([roman(file.description)]);
    for table in file.tables {
        let title = if table.header.is_empty() {
            "KEYS".to_owned()
        } else {
            table.header.to_owned()
        };
        page.control("SH", [title.as_str()]);
        page.text([roman(table.doc)]);
        for field in table.fields {
            page.control("TP", []);
            page.text([
                bold(field.name),
                roman(" ("),
                italic(field.kind),
                roman(format!("; default: {})", field.default)),
            ]);
            page.text([roman(field.doc)]);
        }
    }
    page.control("SH", ["EXAMPLE"]);
    page.control("nf", []);
    for line in file.example.lines() {
        page.text([roman(line)]);
    }
    page.control("fi", []);
    page.control("SH", ["SEE ALSO"]);
    page.text([roman(file.see_also.join(", "))]);
    std::fs::write(path, page.render()).with_context(|| format!("cannot write {}", path.display()))
}

fn render_man(cmd: clap::Command, path: &Path) -> anyhow::Result<()> {
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd).render(&mut page)?;
    std::fs::write(path, page).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn man_pages_and_completions_cover_every_program_and_flag() {
        let dir = tempfile::tempdir().unwrap();
        let written = write_assets(dir.path()).unwrap();
        let read = |rel: &str| std::fs::read_to_string(dir.path().join(rel)).unwrap();
        // 3 programs x (man page + 3 shells) + the client's 9 subcommand pages + the
        // commander's `pending`, `run-pending` and `completions` + the server's
        // `write-original-floors` and `completions`. And a section-5 page for each of the
        // three files.
        assert_eq!(written.len(), 3 * 4 + 9 + 3 + 2 + 3);
        assert!(read("man/ruroco-server-completions.1").contains("SHELL"));
        assert!(read("man/ruroco-server-write-original-floors.1").contains("blocklist.msgpck"));
        assert!(read("man/ruroco-commander-pending.1").contains("undo"));
        // Every page's NAME is its own program, with that program's description, and every
        // page it refers to exists.
        let pages: Vec<String> = written
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "1"))
            .filter(|p| !p.to_string_lossy().ends_with(".toml.1"))
            .map(|p| p.file_stem().unwrap().to_str().unwrap().to_owned())
            .collect();
        let about = |name: &str| -> String {
            let cmd = commands()
                .into_iter()
                .find(|c| name.starts_with(c.get_name()))
                .unwrap();
            let cmd = if name == cmd.get_name() {
                cmd
            } else {
                let sub = &name[cmd.get_name().len() + 1..];
                cmd.find_subcommand(sub).unwrap().clone()
            };
            cmd.get_about().unwrap().to_string()
        };
        for page in &pages {
            let text = read(&format!("man/{page}.1"));
            let lines: Vec<&str> = text.lines().collect();
            let at = lines.iter().position(|l| *l == ".SH NAME").unwrap();
            let name_line = lines[at + 1].replace("\\-", "-").replace("\\*(Aq", "'");
            let (name, description) = name_line.split_once(" - ").unwrap();
            assert_eq!(name, page, "{page}: NAME says {name_line}");
            let want = about(page);
            assert_eq!(description.trim(), want.trim(), "{page}");
            assert!(
                !description.contains("Build helpers"),
                "{page}: {description}"
            );
            for (i, _) in text.match_indices("(1)") {
                let start = text[..i]
                    .rfind(|c: char| c.is_whitespace() || c == ',')
                    .map_or(0, |s| s + 1);
                let referred = text[start..i]
                    .replace("\\-", "-")
                    .replace("\\fB", "")
                    .replace("\\fR", "");
                assert!(
                    pages.contains(&referred),
                    "{page} refers to {referred}(1), which does not exist"
                );
            }
        }
        let read = |rel: &str| std::fs::read_to_string(dir.path().join(rel)).unwrap();
        let client = read("man/ruroco-client.1");
        for flag in ["send", "gen", "reseed", "list", "add", "import", "proxy"] {
            assert!(client.contains(flag), "{flag} missing in ruroco-client.1");
        }
        let send = read("man/ruroco-client-send.1");
        for flag in ["key\\-file", "permissive", "send\\-delay\\-ms", "Examples"] {
            assert!(
                send.contains(flag),
                "{flag} missing in ruroco-client-send.1"
            );
        }
        assert!(read("man/ruroco-server.1").contains("address"));
        assert!(read("man/ruroco-commander.1").contains("commands"));
        assert!(read("completions/bash/ruroco-client.bash").contains("--send-delay-ms"));
        assert!(read("completions/zsh/_ruroco-client").contains("--permissive"));
        assert!(read("completions/fish/ruroco-client.fish").contains("key-file"));
        assert!(read("completions/bash/ruroco-server.bash").contains("--config"));
    }

    /// The section-5 pages as `man` shows them: every documented key, with its default,
    /// and every page they refer to exists.
    #[test]
    fn file_pages_show_every_key_in_man() {
        let dir = tempfile::tempdir().unwrap();
        let written = write_assets(dir.path()).unwrap();
        let names: Vec<String> = written
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        // Like the other tests that need a tool: skipped where it is missing, never in CI
        // (.ci/run installs man-db).
        let have_man = std::process::Command::new("man")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !have_man {
            assert!(std::env::var_os("CI").is_none(), "CI installs man-db");
            eprintln!("man is not installed: skipped");
            return;
        }
        for file in &ruroco_config::fields::FILES {
            let page = dir.path().join("man").join(format!("{}.5", file.name));
            let out = std::process::Command::new("man")
                .arg("-l")
                .arg(&page)
                .env("MANWIDTH", "200")
                .env("MAN_KEEP_FORMATTING", "")
                .output()
                .expect("man runs");
            assert!(out.status.success(), "man -l {}", page.display());
            let shown = String::from_utf8_lossy(&out.stdout);
            assert!(
                shown.contains(&format!("{} - {}", file.name, file.summary)),
                "{shown}"
            );
            for table in file.tables {
                for field in table.fields {
                    let line = format!(
                        "{} ({}; default: {})",
                        field.name, field.kind, field.default
                    );
                    assert!(
                        shown.contains(&line),
                        "{}: {line} not shown:\n{shown}",
                        file.name
                    );
                }
            }
            for referred in file.see_also {
                let (name, section) = referred.trim_end_matches(')').split_once('(').unwrap();
                assert!(
                    names.contains(&format!("{name}.{section}")),
                    "{} refers to {referred}, which is not generated",
                    file.name
                );
            }
        }
    }

    /// The committed reference pages of the documentation site are what the code
    /// generates today: a new flag, key or default shows there, or this fails.
    #[test]
    fn committed_reference_pages_are_current() {
        let dir = tempfile::tempdir().unwrap();
        let committed = workspace().join("docs/reference");
        for path in write_reference(dir.path()).unwrap() {
            let name = path.file_name().unwrap();
            let fresh = std::fs::read_to_string(&path).unwrap();
            let old = std::fs::read_to_string(committed.join(name)).unwrap_or_default();
            assert!(
                fresh == old,
                "docs/reference/{} is stale: run `cargo run -p xtask -- reference docs/reference`",
                name.to_string_lossy()
            );
        }
    }

    #[test]
    fn cli_definitions_are_consistent() {
        for cmd in commands() {
            cmd.debug_assert();
        }
    }
}
