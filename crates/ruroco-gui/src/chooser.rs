//! The desktop's file chooser, for the fields that take a path (a key file, the original
//! GUI's `commands_list.toml`). `rfd` asks the desktop's portal
//! (`org.freedesktop.portal.FileChooser`, through `libdbus-1` opened at run time, so the
//! build links nothing) and falls back to `zenity` where no portal answers. The dialog runs
//! in a thread of its own: the window keeps drawing, and a second click while one is open
//! does nothing. Typing the path stays possible everywhere: a desktop without either
//! simply shows no dialog.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver, Sender};

/// The field a chosen path goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// The add / edit form's key file.
    KeyFile,
    /// Import: the original GUI's `commands_list.toml`.
    ImportList,
    /// Import: the key file its commands were sent with.
    ImportKey,
}

/// Whether a dialog is open, and where its answer (with the field it is for) arrives.
pub struct Chooser {
    tx: Sender<(Field, Option<PathBuf>)>,
    rx: Receiver<(Field, Option<PathBuf>)>,
    open: bool,
}

impl Default for Chooser {
    fn default() -> Self {
        let (tx, rx) = channel();
        Self {
            tx,
            rx,
            open: false,
        }
    }
}

impl Chooser {
    /// Whether a dialog is open.
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// Opens the desktop's chooser for `field`, titled `title`, starting in `start`; `wake`
    /// is called once it is closed. Does nothing while a dialog is open.
    pub fn open(
        &mut self,
        field: Field,
        title: &str,
        start: &Path,
        wake: impl FnOnce() + Send + 'static,
    ) {
        if self.open {
            return;
        }
        self.open = true;
        let tx = self.tx.clone();
        let dialog = rfd::FileDialog::new().set_title(title).set_directory(start);
        std::thread::spawn(move || {
            let _ = tx.send((field, dialog.pick_file()));
            wake();
        });
    }

    /// The path chosen since the last call, with its field; `None` as the path when the
    /// dialog was cancelled or none could be shown.
    pub fn answer(&mut self) -> Option<(Field, Option<PathBuf>)> {
        let answer = self.rx.try_recv().ok()?;
        self.open = false;
        Some(answer)
    }
}

/// How a chosen key file is written in `client.toml`: relative to the configuration
/// directory `dir` when it lies inside it (as `ruroco-client add` writes it), else whole.
pub fn as_written(dir: &Path, chosen: &Path) -> String {
    chosen
        .strip_prefix(dir)
        .ok()
        .filter(|rest| !rest.as_os_str().is_empty())
        .unwrap_or(chosen)
        .display()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_inside_the_config_directory_is_written_relative_to_it() {
        let dir = Path::new("/home/ann/.config/ruroco");
        assert_eq!(
            as_written(dir, Path::new("/home/ann/.config/ruroco/web.key")),
            "web.key"
        );
        assert_eq!(
            as_written(dir, Path::new("/home/ann/.config/ruroco/keys/web.key")),
            "keys/web.key"
        );
        assert_eq!(
            as_written(dir, Path::new("/home/ann/keys/web.key")),
            "/home/ann/keys/web.key"
        );
        // A directory that merely starts with the same letters is not inside.
        assert_eq!(
            as_written(dir, Path::new("/home/ann/.config/ruroco2/web.key")),
            "/home/ann/.config/ruroco2/web.key"
        );
    }
}
