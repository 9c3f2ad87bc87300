//! Who may change what root runs. The commander runs, as root, the lines of its commands
//! file (`commands.toml`, or `config.toml` in the released layout, where `[commands]` lives
//! there); anyone who can replace that file, or rename or replace a directory on its path,
//! decides what root runs. In the released layout the server's state once lived in the
//! same directory, so advice to let the server write there would hand it root's commands.
//!
//! A start, a reload and `--check` refuse such a file: every path component must belong to
//! root (or the commander's own user, for a commander run unprivileged) and be writable by
//! no one else — a sticky directory such as `/tmp` excepted for what lies in it, since
//! others cannot rename or replace root's entries there. The error names the server's
//! user when it is the one who could write.
//!
//! The decision ([`writable_by_others`]) is pure; [`problem`] reads the file system, and
//! names the server's user when `ruroco_fs::access` says it may write the entry.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use ruroco_fs::access::{self, Want, Who};

/// What the check needs of a path: its owner, group and mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stat {
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) mode: u32,
}

/// Whether someone besides root and `own` (the commander's user) could change an entry
/// with `stat`: another owner, or group or other write permission.
pub(crate) fn writable_by_others(stat: Stat, own: u32) -> bool {
    (stat.uid != 0 && stat.uid != own) || stat.mode & 0o022 != 0
}

/// The entry's owner and mode; `None` for a link (its own bits mean nothing: what counts
/// is the directory it lies in, and where it leads, both checked on their own).
fn stat(path: &Path) -> Option<Stat> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    if meta.file_type().is_symlink() {
        return None;
    }
    Some(Stat {
        uid: meta.uid(),
        gid: meta.gid(),
        mode: meta.mode() & 0o7777,
    })
}

/// The first component of `file`'s path (the file, then each directory up to `/`) that
/// someone other than root could change, as an error line with the fix; `None` when root
/// alone decides what the file says.
pub(crate) fn problem(file: &Path, server_user_name: &str) -> Option<String> {
    let own = nix::unistd::geteuid().as_raw();
    let server = (!server_user_name.is_empty())
        .then(|| Who::lookup(server_user_name))
        .flatten()
        .filter(|who| who.uid != own && who.uid != 0);
    // The path as named (a link in a directory others may write can be swapped), then
    // where it leads.
    let named = std::path::absolute(file).unwrap_or_else(|_| file.to_owned());
    let target = std::fs::canonicalize(file).unwrap_or_else(|_| named.clone());
    std::iter::once(&named)
        .chain((target != named).then_some(&target))
        .find_map(|path| first_problem(file, path, own, server.as_ref()))
}

/// The first entry of `path` (itself, then each directory up to `/`) that someone other
/// than root could change, for [`problem`].
fn first_problem(file: &Path, path: &Path, own: u32, server: Option<&Who>) -> Option<String> {
    let mut entry: Option<&Path> = Some(path);
    while let Some(at) = entry {
        entry = at.parent();
        let Some(st) = stat(at) else {
            continue;
        };
        // A sticky directory's own o+w is what makes it sticky; what counts is whether
        // others can change the entry below it, which the entry's own check covers.
        let sticky_dir = at != path && st.mode & 0o1000 != 0 && st.uid == 0;
        if sticky_dir || !writable_by_others(st, own) {
            continue;
        }
        let what = if at == path {
            "the file"
        } else {
            "a directory on its path"
        };
        let who = match server {
            Some(who) if access::may(who, st.mode, st.uid, st.gid, Want::Write) => {
                format!("the server's user `{}`", who.name)
            }
            _ if st.uid != 0 && st.uid != own => format!("its owner (uid {})", st.uid),
            _ => "users other than root".to_owned(),
        };
        let fix = if at == path {
            format!("chown root:root {0} && chmod 0600 {0}", at.display())
        } else {
            format!(
                "chown root {0} && chmod go-w {0}; the server's replay floors belong in a directory of its own (config key blocklist_dir, e.g. /var/lib/ruroco)",
                at.display()
            )
        };
        return Some(format!(
            "commands file {}: {what}, {} (mode {:04o}, owner uid {}), can be changed by {who}, and root runs what it says; {fix}",
            file.display(),
            at.display(),
            st.mode,
            st.uid
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT_FILE: Stat = Stat {
        uid: 0,
        gid: 0,
        mode: 0o600,
    };

    #[test]
    fn only_root_or_the_commanders_user_may_write() {
        assert!(!writable_by_others(ROOT_FILE, 0));
        assert!(!writable_by_others(
            Stat {
                mode: 0o644,
                ..ROOT_FILE
            },
            0
        ));
        assert!(writable_by_others(
            Stat {
                mode: 0o664,
                ..ROOT_FILE
            },
            0
        ));
        assert!(writable_by_others(
            Stat {
                mode: 0o602,
                ..ROOT_FILE
            },
            0
        ));
        // Owned by another user: that user may chmod it at will.
        assert!(writable_by_others(
            Stat {
                uid: 105,
                ..ROOT_FILE
            },
            0
        ));
        // A commander run as uid 1000 owns its own files.
        assert!(!writable_by_others(
            Stat {
                uid: 1000,
                ..ROOT_FILE
            },
            1000
        ));
    }

    #[test]
    fn a_private_file_passes_and_a_group_writable_directory_is_named() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("commands.toml");
        std::fs::write(&file, "[commands]\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        assert_eq!(problem(&file, ""), None);
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o770)).unwrap();
        let p = problem(&file, "").unwrap();
        assert!(
            p.contains("a directory on its path")
                && p.contains("chmod go-w")
                && p.contains("blocklist_dir"),
            "{p}"
        );
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o660)).unwrap();
        let p = problem(&file, "").unwrap();
        assert!(p.contains("the file") && p.contains("chmod 0600"), "{p}");
    }

    /// A link to a private file, lying in a directory others may write, is refused: the
    /// link can be swapped for one to a file of theirs.
    #[test]
    fn a_link_in_a_directory_others_may_write_is_named() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let private = dir.path().join("private");
        let open = dir.path().join("open");
        std::fs::create_dir(&private).unwrap();
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let file = private.join("commands.toml");
        std::fs::write(&file, "[commands]\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(problem(&file, ""), None);
        let link = open.join("commands.toml");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        let p = problem(&link, "").unwrap();
        assert!(
            p.contains("a directory on its path") && p.contains(&open.display().to_string()),
            "{p}"
        );
        // The same link in a private directory is fine: its own 0777 bits mean nothing.
        let safe = private.join("link.toml");
        std::os::unix::fs::symlink(&file, &safe).unwrap();
        assert_eq!(problem(&safe, ""), None);
    }
}
