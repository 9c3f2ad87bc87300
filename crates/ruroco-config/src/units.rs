//! Units the original ruroco's setup left behind. Its installer wrote `ruroco.service`
//! and friends to `/etc/systemd/system`, pointing at `/usr/local/bin`; systemd prefers
//! those to the packaged units, so after switching, `systemctl start ruroco` would still
//! run the old binary. Both daemons' `--check` and the package's post-install step report
//! them and say what to remove.

use std::path::{Path, PathBuf};

/// The unit files that would shadow ours, and the program each of ours runs.
const UNITS: [(&str, &str); 2] = [
    ("ruroco.service", "ruroco-server"),
    ("ruroco-commander.service", "ruroco-commander"),
];
/// Where the packages put our programs.
const PACKAGED_BIN: &str = "/usr/bin";

/// The program an `ExecStart=` value runs (its first word, without systemd's prefixes).
fn program(value: &str) -> Option<&str> {
    value
        .trim()
        .trim_start_matches(['-', '@', ':', '+', '!'])
        .split_whitespace()
        .next()
}

/// One line per unit under `root`/etc/systemd/system named like ours whose `ExecStart`
/// runs something other than ours (the packaged `/usr/bin/<program>` or `own_exe`), with
/// the commands that remove it. Empty when there is none.
pub fn shadowing_units(root: &Path, own_exe: Option<&Path>) -> Vec<String> {
    let dir = root.join("etc/systemd/system");
    let mut lines = Vec::new();
    for (unit, name) in UNITS {
        let path = dir.join(unit);
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let ours = |prog: &str| {
            let prog = Path::new(prog);
            prog == Path::new(PACKAGED_BIN).join(name)
                || own_exe.is_some_and(|own| {
                    own.file_name() == prog.file_name()
                        && std::fs::canonicalize(prog).ok().as_deref() == Some(own)
                })
        };
        let foreign: Vec<&str> = text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("ExecStart="))
            .filter_map(program)
            .filter(|p| !ours(p))
            .collect();
        if let Some(prog) = foreign.first() {
            let mut remove: Vec<PathBuf> = vec![path.clone()];
            if unit == "ruroco.service" && dir.join("ruroco.socket").exists() {
                remove.push(dir.join("ruroco.socket"));
            }
            // The links `systemctl enable` made for them (multi-user.target.wants/…,
            // sockets.target.wants/…): left behind, they point at nothing.
            let names: Vec<std::ffi::OsString> = remove
                .iter()
                .filter_map(|p| p.file_name())
                .map(|n| n.to_owned())
                .collect();
            remove.extend(enable_links(&dir, &names));
            let list: Vec<String> = remove.iter().map(|p| p.display().to_string()).collect();
            lines.push(format!(
                "{} runs {prog}, not this installation's {name}, and overrides the packaged unit; remove it: rm {} && systemctl daemon-reload",
                path.display(),
                list.join(" ")
            ));
        }
    }
    lines
}

/// The entries named `names` in `dir`'s `*.wants` and `*.requires` directories, sorted.
fn enable_links(dir: &Path, names: &[std::ffi::OsString]) -> Vec<PathBuf> {
    let mut links = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return links;
    };
    for entry in entries.flatten() {
        let sub = entry.file_name();
        let sub = sub.to_string_lossy();
        if !(sub.ends_with(".wants") || sub.ends_with(".requires")) {
            continue;
        }
        for name in names {
            let link = entry.path().join(name);
            if std::fs::symlink_metadata(&link).is_ok() {
                links.push(link);
            }
        }
    }
    links.sort();
    links
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_originals_units_are_named_and_ours_are_not() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("etc/systemd/system");
        std::fs::create_dir_all(&dir).unwrap();
        assert!(shadowing_units(root.path(), None).is_empty());
        std::fs::write(
            dir.join("ruroco.service"),
            "[Service]\nExecStart=/usr/local/bin/ruroco-server\n",
        )
        .unwrap();
        std::fs::write(dir.join("ruroco.socket"), "[Socket]\nListenDatagram=80\n").unwrap();
        std::fs::write(
            dir.join("ruroco-commander.service"),
            "[Service]\nExecStart=/usr/bin/ruroco-commander --config /etc/ruroco/config.toml\n",
        )
        .unwrap();
        let lines = shadowing_units(root.path(), None);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].contains("runs /usr/local/bin/ruroco-server"),
            "{}",
            lines[0]
        );
        assert!(
            lines[0].contains(&format!(
                "rm {}/ruroco.service {}/ruroco.socket",
                dir.display(),
                dir.display()
            )),
            "{}",
            lines[0]
        );
        // What `systemctl enable` made for them goes too.
        let wants = dir.join("multi-user.target.wants");
        let sockets = dir.join("sockets.target.wants");
        std::fs::create_dir_all(&wants).unwrap();
        std::fs::create_dir_all(&sockets).unwrap();
        std::os::unix::fs::symlink(dir.join("ruroco.service"), wants.join("ruroco.service"))
            .unwrap();
        std::os::unix::fs::symlink(dir.join("ruroco.socket"), sockets.join("ruroco.socket"))
            .unwrap();
        let lines = shadowing_units(root.path(), None);
        assert!(
            lines[0].contains(&format!(
                "rm {0}/ruroco.service {0}/ruroco.socket {0}/multi-user.target.wants/ruroco.service {0}/sockets.target.wants/ruroco.socket &&",
                dir.display()
            )),
            "{}",
            lines[0]
        );
        // A prefixed ExecStart of the original's commander.
        std::fs::write(
            dir.join("ruroco-commander.service"),
            "[Service]\nExecStart=-/usr/local/bin/ruroco-commander\n",
        )
        .unwrap();
        assert_eq!(shadowing_units(root.path(), None).len(), 2);
    }
}
