//! Who may change what root acts on. The commander runs, as root, the lines of its
//! commands file (`commands.toml`, or `config.toml` in the released layout, where
//! `[commands]` lives there) and the undos its state file lists, in the places
//! `config.toml` names; anyone who can replace one of these files, or rename or replace a
//! directory on its path, decides what root runs. A start, a reload and `--check` refuse
//! such a file, with the fix in the message; the error names the server's user when it is
//! the one who could write.
//!
//! The check itself is `ruroco_fs::trust` (shared with every other place root reads a
//! file); this module says what each file is for and reads the trusted ones bounded.

use std::path::Path;

use anyhow::Context;
use ruroco_fs::access::Who;
use ruroco_fs::trust::{self, Readers};

/// Largest `config.toml`, `commands.toml` or state file read.
pub(crate) const MAX_FILE: u64 = trust::MAX_TEXT_FILE;

/// What root does with a file, for the message and the fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// `config.toml`: where the socket, the state and the metrics go (and, in the
    /// released layout, the commands). The server's user must keep reading it.
    Config,
    /// `commands.toml` (or the released layout's config.toml): what root runs.
    Commands,
    /// `state_dir`: where the undos root runs are kept.
    StateDir,
    /// A file in `state_dir`.
    StateFile,
}

impl Role {
    fn noun(self) -> &'static str {
        match self {
            Role::Config => "config file",
            Role::Commands => "commands file",
            Role::StateDir => "state_dir",
            Role::StateFile => "state file",
        }
    }

    fn consequence(self) -> &'static str {
        match self {
            Role::Config => {
                "and root acts on what it says (state_dir, socket_dir, metrics_dir, hooks)"
            }
            Role::Commands => "and root runs what it says",
            Role::StateDir | Role::StateFile => "and root runs the undos written there",
        }
    }
}

/// The server's user, when it is someone else than us and root.
fn server(server_user_name: &str) -> Option<Who> {
    (!server_user_name.is_empty())
        .then(|| Who::lookup(server_user_name))
        .flatten()
}

/// The group whose members must still read `config.toml`: the server's primary group.
fn server_group(server: Option<&Who>) -> Option<String> {
    let gid = *server?.gids.first()?;
    nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid))
        .ok()
        .flatten()
        .map(|g| g.name)
}

/// The first component of `file`'s path that someone other than root could change, as
/// an error line with the fix; `None` when root alone decides what the file says.
pub(crate) fn problem(file: &Path, server_user_name: &str, role: Role) -> Option<String> {
    let server = server(server_user_name);
    let exposed = trust::exposed(file, server.as_ref())?;
    let group = server_group(server.as_ref());
    let readers = match role {
        Role::Config => group.as_deref().map_or(Readers::AsNow, Readers::Group),
        Role::Commands | Role::StateDir | Role::StateFile => Readers::RootOnly,
    };
    let mut fix = exposed.fix(readers);
    if !exposed.is_file && matches!(role, Role::Config | Role::Commands) {
        fix.push_str("; the server's replay floors belong in a directory of its own (config key blocklist_dir, e.g. /var/lib/ruroco)");
    }
    Some(format!(
        "{} {}: {}, {}; {fix}",
        role.noun(),
        file.display(),
        exposed.describe(),
        role.consequence()
    ))
}

/// Reads a file root acts on: refused (with the fix) where anyone but root could change
/// it, never through a final link's swap, never a FIFO, at most [`MAX_FILE`] bytes.
/// `Ok(None)` when it does not exist.
pub(crate) fn read(
    file: &Path,
    server_user_name: &str,
    role: Role,
) -> anyhow::Result<Option<String>> {
    if let Some(problem) = problem(file, server_user_name, role) {
        anyhow::bail!("{problem}");
    }
    // Every directory on the way is root's: where the path leads cannot change under us.
    let real = std::fs::canonicalize(file).unwrap_or_else(|_| file.to_owned());
    let Some(bytes) = trust::read_bounded(&real, MAX_FILE)? else {
        return Ok(None);
    };
    String::from_utf8(bytes)
        .map(Some)
        .with_context(|| format!("{} {} is not UTF-8 text", role.noun(), file.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_private_file_passes_and_a_group_writable_directory_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("commands.toml");
        std::fs::write(&file, "[commands]\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        assert_eq!(problem(&file, "", Role::Commands), None);
        assert_eq!(
            read(&file, "", Role::Commands).unwrap().as_deref(),
            Some("[commands]\n")
        );
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o770)).unwrap();
        let p = problem(&file, "", Role::Commands).unwrap();
        assert!(
            p.contains("a directory on its path")
                && p.contains("chmod go-w")
                && p.contains("blocklist_dir"),
            "{p}"
        );
        assert!(read(&file, "", Role::Commands).is_err());
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o660)).unwrap();
        let p = problem(&file, "", Role::Commands).unwrap();
        assert!(p.contains("the file") && p.contains("chmod 0600"), "{p}");
    }

    /// `config.toml` owned by the server's user: refused, naming that user, with a fix
    /// that leaves the server's group able to read it.
    #[test]
    fn a_config_of_the_servers_user_is_refused_with_a_fix_that_keeps_it_readable() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.toml");
        std::fs::write(&file, "").unwrap();
        nix::unistd::chown(&file, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
        let p = problem(&file, "nobody", Role::Config).unwrap();
        assert!(p.starts_with("config file "), "{p}");
        assert!(p.contains("the server's user `nobody`"), "{p}");
        let group = server_group(Who::lookup("nobody").as_ref()).unwrap();
        assert!(
            p.contains(&format!("chown root:{group} {}", file.display()))
                && p.contains("chmod 0640"),
            "{p}"
        );
    }
}
