//! What a user other than the caller may do with a file, decided from the mode bits and
//! owners (pure), the way the kernel does for a user without capabilities. The server's
//! `--check`, run as root, asks it for the server's own user (a key it cannot read, a
//! floor directory it cannot write); the commander asks whether that user could change
//! the commands root runs.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::unistd::User;

/// Read (4), write (2) or search/execute (1), as in mode bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// Read a file, list a directory.
    Read = 4,
    /// Write a file, create or remove entries of a directory.
    Write = 2,
    /// Pass through a directory.
    Search = 1,
}

/// A user without capabilities: uid and every gid it has.
#[derive(Debug, Clone)]
pub struct Who {
    /// The user's name.
    pub name: String,
    /// Its uid.
    pub uid: u32,
    /// Its primary and supplementary gids.
    pub gids: Vec<u32>,
}

impl Who {
    /// The user called `name`, with its primary and supplementary groups; `None` when
    /// there is no such user.
    pub fn lookup(name: &str) -> Option<Who> {
        let user = User::from_name(name).ok().flatten()?;
        let mut gids = vec![user.gid.as_raw()];
        // Supplementary groups: those that list the user (getgrouplist needs a C string).
        if let Ok(cname) = std::ffi::CString::new(name) {
            if let Ok(groups) = nix::unistd::getgrouplist(&cname, user.gid) {
                gids.extend(groups.iter().map(|g| g.as_raw()));
            }
        }
        Some(Who {
            name: name.to_owned(),
            uid: user.uid.as_raw(),
            gids,
        })
    }
}

/// Whether `who` may `want` a file with `mode`, owned by `uid`:`gid`.
pub fn may(who: &Who, mode: u32, uid: u32, gid: u32, want: Want) -> bool {
    let bits = if who.uid == uid {
        mode >> 6
    } else if who.gids.contains(&gid) {
        mode >> 3
    } else {
        mode
    };
    bits & (want as u32) != 0
}

/// Whether `who` may `want` the file at `path` and search every directory above it.
pub fn may_path(who: &Who, path: &Path, want: Want) -> bool {
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    if !may(who, meta.mode(), meta.uid(), meta.gid(), want) {
        return false;
    }
    path.ancestors().skip(1).all(|dir| {
        std::fs::metadata(dir).is_ok_and(|m| may(who, m.mode(), m.uid(), m.gid(), Want::Search))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ruroco() -> Who {
        Who {
            name: "ruroco".into(),
            uid: 998,
            gids: vec![998],
        }
    }

    #[test]
    fn owner_then_group_then_others() {
        let w = ruroco();
        // The packaged key: 0640 root:ruroco.
        assert!(may(&w, 0o640, 0, 998, Want::Read));
        assert!(!may(&w, 0o640, 0, 998, Want::Write));
        // What "chmod 600" made of it.
        assert!(!may(&w, 0o600, 0, 998, Want::Read));
        assert!(!may(&w, 0o600, 0, 0, Want::Read));
        // Its own state directory.
        assert!(may(&w, 0o700, 998, 998, Want::Write));
        assert!(!may(&w, 0o755, 0, 0, Want::Write));
        // Owner bits win even when group bits would allow.
        assert!(!may(&w, 0o070, 998, 998, Want::Read));
    }
}
