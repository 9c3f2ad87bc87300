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
//! The decision ([`writable_by_others`]) is pure; [`problem`] reads the file system.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

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

/// Whether the user `uid` with groups `gids` may write an entry with `stat`.
pub(crate) fn writable_by(stat: Stat, uid: u32, gids: &[u32]) -> bool {
    if uid == 0 {
        return true;
    }
    if stat.uid == uid {
        return stat.mode & 0o200 != 0;
    }
    if gids.contains(&stat.gid) {
        return stat.mode & 0o020 != 0;
    }
    stat.mode & 0o002 != 0
}

fn stat(path: &Path) -> std::io::Result<Stat> {
    let meta = std::fs::symlink_metadata(path)?;
    Ok(Stat {
        uid: meta.uid(),
        gid: meta.gid(),
        mode: meta.mode() & 0o7777,
    })
}

/// The server's user (`socket_user`) as uid and groups, if it exists.
fn server_user(name: &str) -> Option<(String, u32, Vec<u32>)> {
    if name.is_empty() {
        return None;
    }
    let user = nix::unistd::User::from_name(name).ok().flatten()?;
    let mut gids = vec![user.gid.as_raw()];
    if let Ok(cname) = std::ffi::CString::new(name) {
        if let Ok(groups) = nix::unistd::getgrouplist(&cname, user.gid) {
            gids.extend(groups.iter().map(|g| g.as_raw()));
        }
    }
    Some((name.to_owned(), user.uid.as_raw(), gids))
}

/// The first component of `file`'s path (the file, then each directory up to `/`) that
/// someone other than root could change, as an error line with the fix; `None` when root
/// alone decides what the file says.
pub(crate) fn problem(file: &Path, server_user_name: &str) -> Option<String> {
    let own = nix::unistd::geteuid().as_raw();
    let server = server_user(server_user_name).filter(|(_, uid, _)| *uid != own && *uid != 0);
    let file = std::fs::canonicalize(file).unwrap_or_else(|_| file.to_owned());
    let mut entry: Option<&Path> = Some(&file);
    while let Some(path) = entry {
        let parent = path.parent();
        let Ok(st) = stat(path) else {
            entry = parent;
            continue;
        };
        // A sticky directory's own o+w is what makes it sticky; what counts is whether
        // others can change the entry below it, which the entry's own check covers.
        let sticky_dir = path != file.as_path() && st.mode & 0o1000 != 0 && st.uid == 0;
        if !sticky_dir && writable_by_others(st, own) {
            let what = if path == file.as_path() {
                "the file"
            } else {
                "a directory on its path"
            };
            let who = match &server {
                Some((name, uid, gids)) if writable_by(st, *uid, gids) => {
                    format!("the server's user `{name}`")
                }
                _ if st.uid != 0 && st.uid != own => format!("its owner (uid {})", st.uid),
                _ => "users other than root".to_owned(),
            };
            let fix = if path == file.as_path() {
                format!("chown root:root {0} && chmod 0600 {0}", path.display())
            } else {
                format!(
                    "chown root {0} && chmod go-w {0}; the server's replay floors belong in a directory of its own (config key blocklist_dir, e.g. /var/lib/ruroco)",
                    path.display()
                )
            };
            return Some(format!(
                "commands file {}: {what}, {} (mode {:04o}, owner uid {}), can be changed by {who}, and root runs what it says; {fix}",
                file.display(),
                path.display(),
                st.mode,
                st.uid
            ));
        }
        entry = parent;
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
    fn writable_by_follows_owner_group_other() {
        let dir = Stat {
            uid: 0,
            gid: 107,
            mode: 0o770,
        };
        assert!(writable_by(dir, 105, &[107]));
        assert!(!writable_by(dir, 105, &[100]));
        assert!(writable_by(
            Stat {
                uid: 105,
                mode: 0o700,
                ..dir
            },
            105,
            &[]
        ));
        assert!(!writable_by(
            Stat {
                uid: 105,
                mode: 0o500,
                ..dir
            },
            105,
            &[]
        ));
        assert!(writable_by(Stat { mode: 0o702, ..dir }, 105, &[]));
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
}
