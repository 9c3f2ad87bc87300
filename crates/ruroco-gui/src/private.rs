//! The app's own files stay the user's alone: eframe keeps the window's state (server
//! names, addresses, commands, last results and errors) in `app.ron` under
//! `$XDG_DATA_HOME/ruroco-gui`, created with the process's umask (0644 under the usual
//! 022). The app runs with umask 077, so everything it or eframe creates is 0600 in a
//! 0700 directory, and [`tighten`] narrows what an earlier version left wider.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

/// The umask the app runs with: what it creates is never readable by others.
pub const UMASK: u32 = 0o077;

/// Makes `dir` (eframe's storage directory) 0700 and its `app.ron` 0600 where they are
/// this user's and wider; creates `dir` 0700 when missing. What could not be done, for
/// a warning (the window opens anyway).
pub fn tighten(dir: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    if let Err(e) = ruroco_fs::create_private_dir(dir) {
        problems.push(format!("cannot create {}: {e}", dir.display()));
        return problems;
    }
    let own = nix::unistd::geteuid().as_raw();
    for (path, mode) in [(dir.to_owned(), 0o700), (dir.join("app.ron"), 0o600)] {
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let kind_ok = if mode == 0o700 {
            meta.is_dir()
        } else {
            meta.is_file()
        };
        if !kind_ok || meta.uid() != own || meta.mode() & 0o077 == 0 {
            continue;
        }
        if let Err(e) = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)) {
            problems.push(format!(
                "cannot make {} private (chmod {mode:o}): {e}",
                path.display()
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn an_earlier_wide_directory_and_file_are_narrowed_and_a_missing_one_made_private() {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("ruroco-gui");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(dir.join("app.ron"), "{}").unwrap();
        std::fs::set_permissions(dir.join("app.ron"), std::fs::Permissions::from_mode(0o644))
            .unwrap();
        assert!(tighten(&dir).is_empty());
        let mode = |p: &Path| std::fs::metadata(p).unwrap().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("app.ron")), 0o600);
        let fresh = base.path().join("data").join("ruroco-gui");
        assert!(tighten(&fresh).is_empty());
        assert_eq!(mode(&fresh), 0o700);
    }
}
