//! Documentation under test: the blocks of README.md and the pages of docs/ that a reader
//! pastes are taken from the Markdown (each marked `<!-- doc-test: NAME -->` on the line
//! before it) and run here, so a document that drifts from the software fails. The
//! nftables recipe runs against the real `nft` in a network namespace of the test's own.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::{client, stderr, stdout, workspace_bin};

/// Every marked block, by name: README's and the documentation's.
const BLOCKS: [&str; 6] = [
    "client-toml",
    "guide-config",
    "guide-commands",
    "nft-ruleset",
    "commands-open-ssh",
    // Applied to the commander under a real systemd by packaging/systemd-check.sh.
    "commander-dropin",
];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The marked blocks of a Markdown file: name → the fenced block's text.
fn blocks(file: &Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(file).unwrap();
    let mut found = BTreeMap::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let Some(name) = line
            .trim()
            .strip_prefix("<!-- doc-test: ")
            .and_then(|r| r.strip_suffix(" -->"))
        else {
            continue;
        };
        let fence = lines.next().unwrap_or_default();
        assert!(
            fence.starts_with("```"),
            "{}: no block after the {name} marker",
            file.display()
        );
        let body: Vec<&str> = lines
            .by_ref()
            .take_while(|l| !l.starts_with("```"))
            .collect();
        assert!(
            found
                .insert(name.to_owned(), body.join("\n") + "\n")
                .is_none(),
            "{}: {name} marked twice",
            file.display()
        );
    }
    found
}

/// Every Markdown file of the documentation: README and the like, and docs/ with its
/// subdirectories.
fn doc_files() -> Vec<PathBuf> {
    let root = repo();
    let mut files: Vec<PathBuf> = [
        "README.md",
        "SECURITY.md",
        "ARCHITECTURE.md",
        "CHANGELOG.md",
    ]
    .iter()
    .map(|f| root.join(f))
    .collect();
    let mut dirs = vec![root.join("docs")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn all_blocks() -> BTreeMap<String, String> {
    let mut all = BTreeMap::new();
    for file in doc_files() {
        for (name, body) in blocks(&file) {
            assert!(
                all.insert(name.clone(), body).is_none(),
                "{name} marked twice"
            );
        }
    }
    all
}

#[test]
fn every_marked_block_is_tested_and_every_tested_block_is_marked() {
    let all = all_blocks();
    let names: Vec<&str> = all.keys().map(String::as_str).collect();
    let mut want = BLOCKS.to_vec();
    want.sort_unstable();
    assert_eq!(names, want);
}

/// The `open_ssh` of a commands.toml text.
fn open_ssh(text: &str) -> toml::Table {
    let table: toml::Table = text.parse().unwrap();
    table["commands"]["open_ssh"].as_table().unwrap().clone()
}

#[test]
fn the_packaged_open_ssh_is_the_guides() {
    let all = all_blocks();
    let packaged = std::fs::read_to_string(repo().join("packaging/config/commands.toml")).unwrap();
    assert_eq!(open_ssh(&packaged), open_ssh(&all["commands-open-ssh"]));
}

/// The guide's ruleset and `open_ssh`, as pasted, in a network namespace: a knock puts
/// the address (IPv4 and IPv6) into its set with its timeout, a second knock leaves one
/// element, the undo takes it out.
#[test]
fn the_nftables_recipe_works_as_pasted() {
    let tools = ["unshare", "nft"]
        .iter()
        .all(|t| crate::util::tool(t).is_some());
    if !(nix::unistd::geteuid().is_root() && tools) {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs this as root with nftables"
        );
        eprintln!("skipped: needs root, unshare and nft");
        return;
    }
    let all = all_blocks();
    let dir = tempfile::tempdir().unwrap();
    let ruleset = dir.path().join("ruleset.nft");
    std::fs::write(&ruleset, &all["nft-ruleset"]).unwrap();
    let entry = open_ssh(&all["commands-open-ssh"]);
    let (cmd, undo) = (
        entry["cmd"].as_str().unwrap(),
        entry["undo"].as_str().unwrap(),
    );
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let script = format!(
        r#"set -e
nft -f {ruleset}
for ip in 203.0.113.7 2001:db8::7; do
  RUROCO_IP=$ip sh -c {cmd}
  RUROCO_IP=$ip sh -c {cmd}
done
echo ---knocked
nft list set inet filter ruroco_ssh
nft list set inet filter ruroco_ssh6
for ip in 203.0.113.7 2001:db8::7; do RUROCO_IP=$ip sh -c {undo}; done
echo ---undone
nft list set inet filter ruroco_ssh
nft list set inet filter ruroco_ssh6
"#,
        ruleset = ruleset.display(),
        cmd = quote(cmd),
        undo = quote(undo)
    );
    let out = Command::new("unshare")
        .args(["-n", "sh", "-c", &script])
        .output()
        .unwrap();
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    let (knocked, undone) = text.split_once("---undone").unwrap();
    for ip in ["203.0.113.7", "2001:db8::7"] {
        assert_eq!(knocked.matches(ip).count(), 1, "{knocked}");
        assert!(knocked.contains(&format!("{ip} timeout 2h")), "{knocked}");
        assert!(!undone.contains(ip), "{undone}");
    }
}

/// The guide's config.toml and commands.toml, as pasted into a root of the test's own
/// (its paths moved under it), pass both daemons' `--check`.
#[test]
fn the_guides_files_pass_both_checks() {
    let all = all_blocks();
    let root = tempfile::tempdir().unwrap();
    let r = root.path().display().to_string();
    let moved = |text: &str| {
        text.replace("\"/var/lib/", &format!("\"{r}/var/lib/"))
            .replace("\"/run/", &format!("\"{r}/run/"))
    };
    let etc = root.path().join("etc/ruroco");
    for dir in [
        "etc/ruroco",
        "var/lib/ruroco",
        "run/ruroco",
        "var/lib/ruroco-commander",
    ] {
        std::fs::create_dir_all(root.path().join(dir)).unwrap();
    }
    // What the test machine differs in: where the config is, and no `ruroco` user.
    let config = format!(
        "{}config_dir = \"{}\"\nstate_dir = \"{r}/var/lib/ruroco-commander\"\nsocket_user = \"\"\nsocket_group = \"\"\n",
        moved(&all["guide-config"]),
        etc.display()
    );
    std::fs::write(etc.join("config.toml"), config).unwrap();
    let commands = etc.join("commands.toml");
    std::fs::write(&commands, &all["guide-commands"]).unwrap();
    std::fs::set_permissions(
        &commands,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let key = client(&["gen"], root.path());
    std::fs::write(etc.join("laptop.key"), key.stdout).unwrap();
    for program in ["ruroco-server", "ruroco-commander"] {
        let out = Command::new(workspace_bin(program))
            .arg("--check")
            .arg("--config")
            .arg(etc.join("config.toml"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{program}: {}{}",
            stdout(&out),
            stderr(&out)
        );
    }
    // The guide's open_ssh added to it passes too.
    let with_open_ssh = format!("{}\n{}", all["guide-commands"], all["commands-open-ssh"]);
    std::fs::write(&commands, with_open_ssh).unwrap();
    let out = Command::new(workspace_bin("ruroco-commander"))
        .arg("--check")
        .arg("--config")
        .arg(etc.join("config.toml"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
}

/// The client guide's client.toml, saved as it is, is what `list` shows; its `add` line works.
#[test]
fn the_client_guides_setup_works_as_written() {
    let all = all_blocks();
    let conf = tempfile::tempdir().unwrap();
    std::fs::write(conf.path().join("client.toml"), &all["client-toml"]).unwrap();
    std::fs::write(
        conf.path().join("web1.key"),
        client(&["gen"], conf.path()).stdout,
    )
    .unwrap();
    let out = client(&["list"], conf.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with("web1\tweb1.example.com\tweb1.key\tcommand=open_ssh\tgroups=prod"),
        "{text}"
    );
    let fresh = tempfile::tempdir().unwrap();
    let out = client(
        &[
            "add",
            "web1",
            "--address",
            "web1.example.com",
            "-c",
            "open_ssh",
            "-g",
            "prod",
        ],
        fresh.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
}

/// The guide's "first key" line is what `add` prints, with this machine's host name as
/// `laptop` and the config directory as `/home/you/.config/ruroco`: the key's name on the
/// server (HOST-SERVER) included, and `add --help` says the same default.
#[test]
fn the_guides_install_line_is_what_add_prints() {
    let guide = std::fs::read_to_string(repo().join("docs/server-setup.md")).unwrap();
    let documented = guide
        .lines()
        .find(|l| l.starts_with("ssh root@server.example.com 'set -C"))
        .expect("the guide shows add's install line");
    let conf = tempfile::tempdir().unwrap();
    let out = client(
        &[
            "add",
            "web1",
            "--address",
            "server.example.com",
            "-c",
            "open_ssh",
        ],
        conf.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let printed = stdout(&out);
    let line = printed
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("ssh root@server.example.com"))
        .unwrap_or_else(|| panic!("no install line in: {printed}"));
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let host = host.trim().split('.').next().unwrap().to_owned();
    let normalised = line
        .replace(&format!("{host}-web1.key"), "laptop-web1.key")
        .replace(
            &conf.path().display().to_string(),
            "/home/you/.config/ruroco",
        );
    assert_eq!(normalised, documented);
    let help = stdout(&client(&["add", "--help"], conf.path()));
    assert!(help.contains("HOST-SERVER"), "{help}");
}

/// GitHub's anchor of a heading: lower case, spaces to `-`, other punctuation dropped.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The headings of a Markdown text, and the bold leads of its paragraphs (`**Title.**`),
/// which the docs refer to by name too.
fn titles(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        if let Some(h) = line.strip_prefix('#') {
            found.push(h.trim_start_matches('#').trim().to_owned());
        }
        if let Some(rest) = line.strip_prefix("**") {
            if let Some((lead, _)) = rest.split_once("**") {
                found.push(lead.trim_end_matches('.').to_owned());
            }
        }
    }
    found
}

/// Every relative link of the documentation leads to a file that exists and, with an
/// anchor, to a heading there; every `"Title" in \`file.md\`` names a heading or bold
/// lead of that file; every "section N" of the guide exists.
#[test]
fn every_link_and_section_reference_in_the_docs_resolves() {
    let root = repo();
    let files = doc_files();
    let mut broken = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
        let dir = file.parent().unwrap();
        // Links: ](target)
        for piece in flat.split("](").skip(1) {
            let Some(target) = piece.split(')').next() else {
                continue;
            };
            if target.starts_with("http://")
                || target.starts_with("https://")
                || target.starts_with("mailto:")
            {
                continue;
            }
            let (path, anchor) = target.split_once('#').unwrap_or((target, ""));
            let linked = if path.is_empty() {
                file.clone()
            } else {
                dir.join(path)
            };
            if !linked.exists() {
                broken.push(format!(
                    "{}: link to {target}: no such file",
                    file.display()
                ));
                continue;
            }
            if !anchor.is_empty() {
                let there = std::fs::read_to_string(&linked).unwrap_or_default();
                if !titles(&there).iter().any(|t| slug(t) == anchor) {
                    broken.push(format!(
                        "{}: link to {target}: no such heading",
                        file.display()
                    ));
                }
            }
        }
        // "Title" in `docs/x.md`
        for piece in flat.split("\" in `").skip(1).zip(flat.split("\" in `")) {
            let (after, before) = piece;
            let Some(target) = after.split('`').next().filter(|t| t.ends_with(".md")) else {
                continue;
            };
            let Some(title) = before.rsplit('"').next() else {
                continue;
            };
            let there = std::fs::read_to_string(root.join(target))
                .or_else(|_| std::fs::read_to_string(dir.join(target)))
                .unwrap_or_default();
            if !titles(&there).iter().any(|t| t.eq_ignore_ascii_case(title)) {
                broken.push(format!(
                    "{}: \"{title}\" is not a section of {target}",
                    file.display()
                ));
            }
        }
    }
    // The guide's sections were numbered once; a "section N" left anywhere leads nowhere.
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
        for piece in flat.split("section ").skip(1) {
            if piece.starts_with(|c: char| c.is_ascii_digit()) {
                broken.push(format!(
                    "{}: \"section {}\" names no page: link to it instead",
                    file.display(),
                    piece
                        .chars()
                        .take_while(char::is_ascii_digit)
                        .collect::<String>()
                ));
            }
        }
    }
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

/// The reference page of refusals lists every reason the server can log.
#[test]
fn the_reason_reference_lists_every_reason() {
    let page = std::fs::read_to_string(repo().join("docs/reference/logs-and-metrics.md")).unwrap();
    for reason in ruroco_proto::Reason::ALL {
        assert!(
            page.contains(&format!("| `{}` |", reason.as_str())),
            "reason={} is not in docs/reference/logs-and-metrics.md",
            reason.as_str()
        );
    }
}
