//! The window: the saved servers as a list to send from, and the views to add, edit,
//! delete, import and reseed. Everything it shows comes from the files in the
//! configuration directory, read again whenever `client.toml` changes (a change made by
//! `ruroco-client` shows at once). It repaints only when something happened: input, a
//! send's result, or a change to the file.
//!
//! This file holds the window's state and what every view shares (sending, watching the
//! file, the page frame); each view's drawing lives beside it in `app/`, one file per view
//! as egui's own demo keeps them: `list`, `edit` (add and edit), `added` (install line and
//! QR), `delete`, `import_view`, `reseed`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use eframe::egui::{self, RichText};
use ruroco_client_core::profile::{self, Profile};
use zeroize::Zeroizing;

use crate::chooser::{self, Chooser, Field};
use crate::form::Form;
use crate::jobs::{Jobs, Outcome};

mod added;
mod delete;
mod edit;
mod import_view;
mod list;
mod reseed;

/// What the window shows besides the list.
enum View {
    /// The list of saved servers.
    List,
    /// The add / edit form.
    Form(Box<Form>),
    /// A new server was saved: how to install its key.
    Added(Box<AddedView>),
    /// Delete a server: asked first.
    ConfirmDelete {
        /// Its name.
        name: String,
        /// Also delete its key file.
        delete_key: bool,
    },
    /// Import the original GUI's saved commands.
    Import {
        /// Its `commands_list.toml`.
        file: String,
        /// The key they were sent with.
        key_file: String,
        /// What the last preview or import said.
        report: Vec<String>,
    },
    /// Set the counter back: asked first, with what it does.
    ConfirmReseed,
}

/// After adding: the install line and, on request, the key as a QR code.
struct AddedView {
    name: String,
    install_line: String,
    admin_line: String,
    key_path: PathBuf,
    key_text: Zeroizing<String>,
    show_key: bool,
}

/// The desktop app's state.
pub struct App {
    dir: PathBuf,
    profile: Result<Profile, String>,
    filter: String,
    selected: Option<String>,
    outcomes: BTreeMap<String, Outcome>,
    /// When each server was last sent to from this window (a double click sends once).
    sent_at: BTreeMap<String, std::time::Instant>,
    /// When the key copied to the clipboard is to be wiped from it.
    clear_clipboard_at: Option<std::time::Instant>,
    jobs: Jobs,
    view: View,
    /// A one-line message about the last action (its error, or what it did).
    notice: Option<(bool, String)>,
    /// Set by the watcher when `client.toml` changed.
    changed: Arc<AtomicBool>,
    watcher: Option<notify::RecommendedWatcher>,
    /// A key shown in the edit view after "Show key".
    shown_key: Option<(String, Zeroizing<String>)>,
    /// The desktop's file chooser, when one is open.
    chooser: Chooser,
}

impl App {
    /// The app over the configuration directory `dir`.
    pub fn new(dir: PathBuf) -> Self {
        let profile = Profile::load(&dir).map_err(|e| format!("{e:#}"));
        Self {
            dir,
            profile,
            filter: String::new(),
            selected: None,
            outcomes: BTreeMap::new(),
            sent_at: BTreeMap::new(),
            clear_clipboard_at: None,
            jobs: Jobs::default(),
            view: View::List,
            notice: None,
            changed: Arc::new(AtomicBool::new(false)),
            watcher: None,
            shown_key: None,
            chooser: Chooser::default(),
        }
    }

    /// The app over `dir`, with the results of the last start from eframe's `storage`
    /// (window size and position eframe restores itself).
    pub fn restored(dir: PathBuf, storage: Option<&dyn eframe::Storage>) -> Self {
        let mut app = Self::new(dir);
        if let Some(results) =
            storage.and_then(|s| eframe::get_value::<BTreeMap<String, Outcome>>(s, RESULTS_KEY))
        {
            app.outcomes = results
                .into_iter()
                // One still on its way when the window closed never got a result.
                .filter(|(_, outcome)| !matches!(outcome, Outcome::Sending))
                .collect();
        }
        app
    }

    /// The results to remember: each saved server's last one that finished (one per
    /// saved server, so the store stays as small as the list).
    fn results_to_keep(&self) -> BTreeMap<String, Outcome> {
        let saved = |name: &String| self.profile.as_ref().is_ok_and(|p| p.server(name).is_ok());
        self.outcomes
            .iter()
            .filter(|(name, outcome)| !matches!(outcome, Outcome::Sending) && saved(name))
            .map(|(name, outcome)| (name.clone(), outcome.clone()))
            .collect()
    }

    /// The configuration directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Reads `client.toml` again.
    fn reload(&mut self) {
        self.profile = Profile::load(&self.dir).map_err(|e| format!("{e:#}"));
    }

    /// Watches the directory for changes to `client.toml` (made here or by the command
    /// line); each one wakes the window.
    fn watch(&mut self, ctx: &egui::Context) {
        if self.watcher.is_some() {
            return;
        }
        use notify::Watcher as _;
        let changed = Arc::clone(&self.changed);
        let ctx = ctx.clone();
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            // Writes, creations, renames and removals of client.toml; never its being read
            // (the window reads it after each change: reacting to that would never end).
            let ours = event.is_ok_and(|e| {
                !matches!(e.kind, notify::EventKind::Access(_))
                    && e.paths
                        .iter()
                        .any(|p| p.file_name().is_some_and(|n| n == profile::FILE_NAME))
            });
            if ours {
                changed.store(true, Ordering::Relaxed);
                ctx.request_repaint();
            }
        });
        match watcher {
            Ok(mut w) => {
                // A first start: the directory the CLI would create (0700, as it does), so
                // it can be watched.
                let _ = ruroco_fs::create_private_dir(&self.dir);
                match w.watch(&self.dir, notify::RecursiveMode::NonRecursive) {
                    Ok(()) => self.watcher = Some(w),
                    Err(e) => {
                        self.notice =
                            Some((false, format!("cannot watch {}: {e}", self.dir.display())));
                    }
                }
            }
            Err(e) => self.notice = Some((false, format!("cannot watch for changes: {e}"))),
        }
    }

    /// Sends the named saved servers, off the UI thread. A server whose send is still on
    /// its way, or that was sent to less than [`crate::jobs::DOUBLE_CLICK`] ago, is left
    /// out: a double click sends once.
    fn send(&mut self, ctx: &egui::Context, names: Vec<String>) {
        let now = std::time::Instant::now();
        let names: Vec<String> = names
            .into_iter()
            .filter(|n| {
                !matches!(self.outcomes.get(n), Some(Outcome::Sending))
                    && !crate::jobs::too_soon(self.sent_at.get(n).copied(), now)
            })
            .collect();
        if names.is_empty() {
            return;
        }
        for name in &names {
            self.outcomes.insert(name.clone(), Outcome::Sending);
            self.sent_at.insert(name.clone(), now);
        }
        let ctx = ctx.clone();
        self.jobs
            .send(self.dir.clone(), names, move || ctx.request_repaint());
    }

    /// Draws the whole window into `ui`.
    pub fn show(&mut self, ui: &mut egui::Ui) {
        // Error text readable on the theme in use (crate::theme).
        crate::theme::apply(ui.visuals_mut());
        let ctx = ui.ctx().clone();
        // A copied key does not stay on the clipboard.
        if let Some(at) = self.clear_clipboard_at {
            let now = std::time::Instant::now();
            if crate::jobs::due(at, now) {
                ctx.copy_text(String::new());
                self.clear_clipboard_at = None;
                self.notice = Some((true, "The key was wiped from the clipboard.".to_owned()));
            } else {
                ctx.request_repaint_after(at.saturating_duration_since(now));
            }
        }
        self.watch(&ctx);
        if self.changed.swap(false, Ordering::Relaxed) {
            self.reload();
            // An error said before the file changed is about a file that is no more: once
            // client.toml reads cleanly again, it goes.
            if self.profile.is_ok() && matches!(self.notice, Some((false, _))) {
                self.notice = None;
            }
        }
        self.take_chosen_path();
        for (name, outcome) in self.jobs.results() {
            self.outcomes.insert(name, outcome);
        }
        egui::Frame::central_panel(ui.style()).show(ui, |ui| {
            ui.set_min_size(ui.available_size());
            self.toolbar(ui);
            if let Some((ok, text)) = &self.notice {
                let color = if *ok {
                    ui.visuals().text_color()
                } else {
                    ui.visuals().error_fg_color
                };
                let mut dismiss = false;
                ui.horizontal(|ui| {
                    ui.label(RichText::new(text).color(color));
                    dismiss = ui
                        .small_button("Dismiss")
                        .on_hover_text("Hide this message")
                        .clicked();
                });
                if dismiss {
                    self.notice = None;
                }
            }
            ui.separator();
            let view = std::mem::replace(&mut self.view, View::List);
            if let View::List = view {
                self.list(ui, &ctx);
                return;
            }
            // Every other page scrolls: a shown key or a long report never pushes Save and
            // Cancel out of reach.
            egui::ScrollArea::vertical()
                .id_salt("page")
                .auto_shrink(false)
                .show(ui, |ui| match view {
                    View::List => {}
                    View::Form(form) => self.form(ui, *form),
                    View::Added(added) => self.added(ui, *added),
                    View::ConfirmDelete { name, delete_key } => {
                        self.confirm_delete(ui, name, delete_key)
                    }
                    View::Import {
                        file,
                        key_file,
                        report,
                    } => self.import(ui, file, key_file, report),
                    View::ConfirmReseed => self.confirm_reseed(ui),
                });
        });
    }

    /// A path chosen in the desktop's file chooser goes to the field it was asked for, if
    /// that page is still open.
    fn take_chosen_path(&mut self) {
        let Some((field, Some(path))) = self.chooser.answer() else {
            return;
        };
        let text = chooser::as_written(&self.dir, &path);
        match (&mut self.view, field) {
            (View::Form(form), Field::KeyFile) => form.key_file = text,
            (View::Import { file, .. }, Field::ImportList) => *file = path.display().to_string(),
            (View::Import { key_file, .. }, Field::ImportKey) => *key_file = text,
            // The page was left while the dialog was open.
            _ => {}
        }
    }

    /// One labelled path field in a two-column grid, with "Choose…" for the desktop's
    /// file chooser (starting in the configuration directory).
    fn path_row(&mut self, ui: &mut egui::Ui, label: &str, value: &mut String, field: Field) {
        let title = label;
        let label = ui.label(label);
        ui.horizontal(|ui| {
            ui.add(egui::TextEdit::singleline(value).desired_width(280.0))
                .labelled_by(label.id);
            let open = self.chooser.is_open();
            let button = ui
                .add_enabled(
                    !open,
                    egui::Button::new(if open { "Choosing…" } else { "Choose…" }),
                )
                .on_hover_text("Pick the file in the desktop's file chooser");
            if button.clicked() {
                let ctx = ui.ctx().clone();
                self.chooser
                    .open(field, title, &self.dir, move || ctx.request_repaint());
            }
        });
        ui.end_row();
    }

    fn toolbar(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            ui.heading("ruroco");
            if ui.button("Servers").clicked() {
                self.view = View::List;
            }
            if ui.button("Add server").clicked() {
                self.view = View::Form(Box::default());
                self.notice = None;
            }
            if ui.button("Import").clicked() {
                self.view = View::Import {
                    file: String::new(),
                    key_file: String::new(),
                    report: Vec::new(),
                };
                self.notice = None;
            }
            if ui.button("Reseed counter").clicked() {
                self.view = View::ConfirmReseed;
                self.notice = None;
            }
        });
    }
}

/// Where the last results are kept in eframe's storage.
const RESULTS_KEY: &str = "results";

impl eframe::App for App {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.show(ui);
    }

    /// Keeps the last results for the next start (eframe calls it every 30 s and on
    /// closing, and keeps the window's size and position itself).
    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, RESULTS_KEY, &self.results_to_keep());
    }
}

/// One labelled text field in a two-column grid.
fn text_row(ui: &mut egui::Ui, label: &str, value: &mut String) {
    let label = ui.label(label);
    ui.add(egui::TextEdit::singleline(value).desired_width(360.0))
        .labelled_by(label.id);
    ui.end_row();
}
