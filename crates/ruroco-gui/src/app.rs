//! The window: the saved servers as a list to send from, and the views to add, edit,
//! delete, import and reseed. Everything it shows comes from the files in the
//! configuration directory, read again whenever `client.toml` changes (a change made by
//! `ruroco-client` shows at once). It repaints only when something happened: input, a
//! send's result, or a change to the file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use eframe::egui::{self, Color32, RichText};
use ruroco_client_core::counter::{now_nanos, Counter};
use ruroco_client_core::profile::{self, Profile, Server};
use ruroco_client_core::{import, qr, send};
use zeroize::Zeroizing;

use crate::form::{Family, Form, KeySource};
use crate::jobs::{Jobs, Outcome};

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
        }
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
                // A first start: the directory the CLI would create, so it can be watched.
                let _ = std::fs::create_dir_all(&self.dir);
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
        }
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

    fn list(&mut self, ui: &mut egui::Ui, ctx: &egui::Context) {
        let profile = match &self.profile {
            Ok(p) => p,
            Err(e) => {
                ui.label(RichText::new(e).color(ui.visuals().error_fg_color));
                return;
            }
        };
        let mut to_send: Option<Vec<String>> = None;
        let mut edit: Option<Server> = None;
        let mut delete: Option<String> = None;
        let mut in_filter = false;
        ui.horizontal(|ui| {
            let label = ui.label("Filter");
            let filter_box = ui
                .add(egui::TextEdit::singleline(&mut self.filter).desired_width(200.0))
                .labelled_by(label.id)
                .on_hover_text("Ctrl+F");
            // Ctrl+F (Cmd+F) goes to the filter, as in any list.
            if ui.input(|i| i.modifiers.command && i.key_pressed(egui::Key::F)) {
                filter_box.request_focus();
            }
            in_filter = filter_box.has_focus();
            let groups: std::collections::BTreeSet<&String> =
                profile.servers.values().flat_map(|s| &s.groups).collect();
            for group in groups {
                if ui.button(format!("Send @{group}")).clicked() {
                    let members = profile
                        .group(group)
                        .map(|m| m.iter().map(|s| s.name.clone()).collect())
                        .unwrap_or_default();
                    to_send = Some(members);
                }
            }
        });
        if profile.servers.is_empty() && profile.broken.is_empty() {
            ui.label(format!(
                "No saved servers in {} yet: \"Add server\" saves one, \"Import\" brings the original GUI's.",
                profile.path.display()
            ));
        }
        let filter = self.filter.to_lowercase();
        let visible: Vec<&Server> = profile
            .servers
            .values()
            .filter(|s| {
                filter.is_empty()
                    || s.name.to_lowercase().contains(&filter)
                    || s.address.to_lowercase().contains(&filter)
                    || s.command
                        .as_deref()
                        .unwrap_or("")
                        .to_lowercase()
                        .contains(&filter)
                    || s.groups.iter().any(|g| g.to_lowercase().contains(&filter))
            })
            .collect();
        // Keyboard: up and down choose, Enter sends the chosen one — also while typing in
        // the filter (type, arrow down, Enter); not while another field has the keys.
        let typing = ctx.memory(|m| m.focused().is_some()) && !in_filter;
        let mut moved = false;
        if !typing && !visible.is_empty() {
            let at = self
                .selected
                .as_ref()
                .and_then(|sel| visible.iter().position(|s| &s.name == sel));
            let (down, up, enter) = ui.input(|i| {
                (
                    i.key_pressed(egui::Key::ArrowDown),
                    i.key_pressed(egui::Key::ArrowUp),
                    i.key_pressed(egui::Key::Enter),
                )
            });
            let last = visible.len().saturating_sub(1);
            let next = match (at, down, up) {
                (None, true, _) | (None, _, true) => Some(0),
                (Some(i), true, _) => Some((i + 1).min(last)),
                (Some(i), _, true) => Some(i.saturating_sub(1)),
                _ => at,
            };
            if let Some(s) = next.and_then(|i| visible.get(i)) {
                moved = next != at;
                self.selected = Some(s.name.clone());
            }
            // Only a row the filter shows: Enter that ends typing in the filter box must
            // never send to a server the filter hides.
            if enter {
                if let Some(sel) = next.and_then(|i| visible.get(i)) {
                    to_send = Some(vec![sel.name.clone()]);
                }
            }
        }
        // Actions first, in a column of their own: long names, addresses or results never
        // push them off the window or move them under the pointer. Long text is cut to its
        // column with the whole of it on hover.
        egui::ScrollArea::both().show(ui, |ui| {
            egui::Grid::new("servers")
                .num_columns(6)
                .striped(true)
                .spacing([12.0, 6.0])
                .show(ui, |ui| {
                    ui.strong("");
                    ui.strong("Name");
                    ui.strong("Address");
                    ui.strong("Command");
                    ui.strong("Groups");
                    ui.strong("Last result");
                    ui.end_row();
                    for s in &visible {
                        let short = short_name(&s.name);
                        ui.horizontal(|ui| {
                            if ui
                                .button(format!("Send {short}"))
                                .on_hover_text(format!(
                                    "Send {}'s command (Enter sends the chosen row)",
                                    s.name
                                ))
                                .clicked()
                            {
                                to_send = Some(vec![s.name.clone()]);
                            }
                            if ui.button(format!("Edit {short}")).clicked() {
                                edit = Some((*s).clone());
                            }
                            if ui.button(format!("Delete {short}")).clicked() {
                                delete = Some(s.name.clone());
                            }
                        });
                        let chosen = self.selected.as_deref() == Some(s.name.as_str());
                        let name_cell = ui.scope(|ui| {
                            ui.set_max_width(COLUMN);
                            ui.add(egui::Button::selectable(chosen, &s.name).truncate())
                                .on_hover_text(&s.name)
                        });
                        if name_cell.inner.clicked() {
                            self.selected = Some(s.name.clone());
                        }
                        // The list follows a choice made with the keys.
                        if chosen && moved {
                            name_cell.inner.scroll_to_me(None);
                        }
                        cell(ui, &s.address);
                        cell(ui, s.command.as_deref().unwrap_or(send::DEFAULT_COMMAND));
                        cell(ui, &s.groups.join(", "));
                        ui.scope(|ui| {
                            ui.set_max_width(RESULT_COLUMN);
                            outcome_label(ui, self.outcomes.get(&s.name));
                        });
                        ui.end_row();
                    }
                });
            for (name, why) in &profile.broken {
                ui.label(
                    RichText::new(format!("{name}: {why}")).color(ui.visuals().error_fg_color),
                );
            }
        });
        if let Some(names) = to_send {
            self.send(ctx, names);
        }
        if let Some(server) = edit {
            self.shown_key = None;
            self.view = View::Form(Box::new(Form::edit(&server)));
        } else if let Some(name) = delete {
            self.view = View::ConfirmDelete {
                name,
                delete_key: false,
            };
        }
    }

    fn form(&mut self, ui: &mut egui::Ui, mut form: Form) {
        let editing = form.editing.clone();
        ui.heading(match &editing {
            Some(name) => format!("Edit {name}"),
            None => "Add a server".to_owned(),
        });
        egui::Grid::new("form")
            .num_columns(2)
            .spacing([12.0, 8.0])
            .show(ui, |ui| {
                text_row(ui, "Name", &mut form.name);
                text_row(ui, "Address (HOST or HOST:PORT)", &mut form.address);
                text_row(ui, "Command", &mut form.command);
                text_row(ui, "Groups (comma-separated)", &mut form.groups);
                text_row(ui, "Claimed IP (optional)", &mut form.ip);
                ui.label("");
                ui.checkbox(
                    &mut form.permissive,
                    "Permissive (act on the claimed IP from anywhere)",
                );
                ui.end_row();
                ui.label("Address family");
                ui.horizontal(|ui| {
                    ui.radio_value(&mut form.family, Family::Both, "IPv4 and IPv6");
                    ui.radio_value(&mut form.family, Family::V4, "IPv4 only");
                    ui.radio_value(&mut form.family, Family::V6, "IPv6 only");
                });
                ui.end_row();
                ui.label("Datagram format");
                ui.horizontal(|ui| {
                    ui.radio_value(&mut form.v0, false, "v1");
                    ui.radio_value(&mut form.v0, true, "v0 (server on released ruroco 0.14)");
                });
                ui.end_row();
                ui.label("Key");
                ui.horizontal(|ui| {
                    let keep = if editing.is_some() {
                        "Keep the current key"
                    } else {
                        "Generate a new key"
                    };
                    ui.radio_value(&mut form.key_source, KeySource::Keep, keep);
                    if editing.is_some() {
                        ui.radio_value(
                            &mut form.key_source,
                            KeySource::Generate,
                            "Generate a new key",
                        );
                    }
                    ui.radio_value(&mut form.key_source, KeySource::File, "From a file");
                    ui.radio_value(&mut form.key_source, KeySource::Paste, "Paste");
                });
                ui.end_row();
                match form.key_source {
                    KeySource::File => text_row(ui, "Key file", &mut form.key_file),
                    KeySource::Paste => {
                        let label = ui.label("Pasted key");
                        ui.add(
                            egui::TextEdit::singleline(&mut *form.key_text)
                                .password(true)
                                .desired_width(360.0),
                        )
                        .labelled_by(label.id);
                        ui.end_row();
                    }
                    _ => {}
                }
            });
        if let Some(name) = &editing {
            self.key_reveal(ui, name);
        }
        let mut done = false;
        // Enter saves and Escape cancels, as in any dialog.
        let (enter, escape) = ui.input(|i| {
            (
                i.key_pressed(egui::Key::Enter),
                i.key_pressed(egui::Key::Escape),
            )
        });
        ui.horizontal(|ui| {
            if ui.button("Save").clicked() || enter {
                match &editing {
                    None => match form.add(&self.dir) {
                        Ok(added) => {
                            let mut text = format!("Saved `{}`.", added.server.name);
                            if !added.same_host.is_empty() {
                                text.push_str(&format!(
                                    " Note: {} already saved with host {}: this is a second key for that server, to be installed as {}.key beside the other.",
                                    added.same_host.join(", "),
                                    added.host,
                                    added.key_name
                                ));
                            }
                            self.notice = Some((true, text));
                            self.view = View::Added(Box::new(AddedView {
                                name: added.server.name.clone(),
                                install_line: added.install_line,
                                admin_line: added.admin_line,
                                key_path: added.key_path,
                                key_text: added.key_text,
                                show_key: false,
                            }));
                            done = true;
                        }
                        Err(e) => self.notice = Some((false, format!("{e:#}"))),
                    },
                    Some(old_name) => {
                        let old = self
                            .profile
                            .as_ref()
                            .ok()
                            .and_then(|p| p.servers.get(old_name).cloned());
                        let result = match old {
                            Some(old) => form.save_edit(&old, &self.dir),
                            None => {
                                Err(anyhow::anyhow!("server `{old_name}` is not saved any more"))
                            }
                        };
                        match result {
                            Ok(None) => {
                                self.notice =
                                    Some((true, format!("Saved `{}`.", form.name.trim())));
                                self.view = View::List;
                                done = true;
                            }
                            // A new key: the server does not have it yet. Show how to
                            // install it, as after adding.
                            Ok(Some(key_path)) => {
                                let name = form.name.trim().to_owned();
                                match new_key_view(&name, &form.address, &key_path) {
                                    Ok(view) => {
                                        self.notice = Some((
                                            true,
                                            format!(
                                                "Saved `{name}` with a new key. The server does not have it until you install it (below); sends fail there until then. The old key file stays."
                                            ),
                                        ));
                                        self.view = View::Added(Box::new(view));
                                    }
                                    Err(e) => {
                                        self.notice = Some((false, format!("{e:#}")));
                                        self.view = View::List;
                                    }
                                }
                                done = true;
                            }
                            Err(e) => self.notice = Some((false, format!("{e:#}"))),
                        }
                    }
                }
                self.reload();
            }
            if (ui.button("Cancel").clicked() || escape) && !done {
                self.view = View::List;
                self.shown_key = None;
                done = true;
            }
        });
        if !done {
            self.view = View::Form(Box::new(form));
        }
    }

    /// In the edit view: the key, hidden until "Show key" is clicked.
    fn key_reveal(&mut self, ui: &mut egui::Ui, name: &str) {
        let shown = self
            .shown_key
            .as_ref()
            .filter(|(n, _)| n == name)
            .map(|(_, k)| k.clone());
        match shown {
            None => {
                if ui.button("Show key").clicked() {
                    let key = self.read_key(name);
                    match key {
                        Ok(text) => self.shown_key = Some((name.to_owned(), text)),
                        Err(e) => self.notice = Some((false, format!("{e:#}"))),
                    }
                }
            }
            Some(text) => {
                ui.horizontal(|ui| {
                    ui.monospace(text.as_str());
                    if ui.button("Copy key").clicked() {
                        ui.ctx().copy_text(text.to_string());
                        self.clear_clipboard_at =
                            Some(std::time::Instant::now() + crate::jobs::CLIPBOARD_KEEP);
                        self.notice = Some((
                            true,
                            format!(
                                "Key copied; it is wiped from the clipboard in {} s.",
                                crate::jobs::CLIPBOARD_KEEP.as_secs()
                            ),
                        ));
                    }
                    if ui.button("Hide key").clicked() {
                        self.shown_key = None;
                    }
                });
                qr_code(ui, &text);
            }
        }
    }

    fn read_key(&self, name: &str) -> anyhow::Result<Zeroizing<String>> {
        let profile = Profile::load(&self.dir)?;
        let server = profile.server(name)?;
        let path = send::key_path(&self.dir, &server.key);
        Ok(send::read_key_file(&path)?.to_key_string())
    }

    fn added(&mut self, ui: &mut egui::Ui, mut added: AddedView) {
        ui.heading(format!("Saved {}", added.name));
        ui.label("Install the key on the server (as root there; the key travels on standard input, never on a command line):");
        ui.horizontal(|ui| {
            ui.add(
                egui::TextEdit::singleline(&mut added.install_line.as_str())
                    .font(egui::TextStyle::Monospace)
                    .desired_width(f32::INFINITY),
            );
        });
        if ui.button("Copy install command").clicked() {
            ui.ctx().copy_text(added.install_line.clone());
            self.notice = Some((true, "Install command copied.".to_owned()));
        }
        ui.label(format!(
            "Without a root login there, hand {} to the server's admin, who runs (as root):",
            added.key_path.display()
        ));
        ui.monospace(&added.admin_line);
        ui.separator();
        if added.show_key {
            ui.label("The key for a phone app (it is the secret: show it to nobody else):");
            qr_code(ui, &added.key_text);
            if ui.button("Hide key").clicked() {
                added.show_key = false;
            }
        } else if ui.button("Show key as QR code").clicked() {
            added.show_key = true;
        }
        let mut done = false;
        if ui.button("Done").clicked() {
            done = true;
            self.view = View::List;
        }
        if !done {
            self.view = View::Added(Box::new(added));
        }
    }

    fn confirm_delete(&mut self, ui: &mut egui::Ui, name: String, mut delete_key: bool) {
        ui.heading(format!("Delete {name}?"));
        ui.label(format!(
            "This removes `{name}` from {}.",
            self.dir.join(profile::FILE_NAME).display()
        ));
        ui.checkbox(&mut delete_key, "Also delete its key file");
        let mut done = false;
        ui.horizontal(|ui| {
            if ui.button("Yes, delete").clicked() {
                done = true;
                match profile::remove(&self.dir, &name) {
                    Ok(removed) => {
                        let mut text = format!("Deleted `{name}`.");
                        if delete_key {
                            let staying = Profile::load(&self.dir).ok();
                            let others = staying
                                .iter()
                                .flat_map(|p| p.servers.values())
                                .map(|s| (s.name.as_str(), s.key.as_path()));
                            match send::deletable_key(&self.dir, &removed.key, others) {
                                Ok(path) => match std::fs::remove_file(&path) {
                                    Ok(()) => text.push_str(&format!(
                                        " Key file {} deleted.",
                                        path.display()
                                    )),
                                    Err(e) => text.push_str(&format!(
                                        " Key file {} not deleted: {e}.",
                                        path.display()
                                    )),
                                },
                                Err(why) => text.push_str(&format!(" The {why}.")),
                            }
                        }
                        self.outcomes.remove(&name);
                        self.notice = Some((true, text));
                    }
                    Err(e) => self.notice = Some((false, format!("{e:#}"))),
                }
                self.reload();
                self.view = View::List;
            }
            if ui.button("Cancel").clicked() {
                done = true;
                self.view = View::List;
            }
        });
        if !done {
            self.view = View::ConfirmDelete { name, delete_key };
        }
    }

    fn import(
        &mut self,
        ui: &mut egui::Ui,
        mut file: String,
        mut key_file: String,
        mut report: Vec<String>,
    ) {
        ui.heading("Import the original GUI's saved commands");
        ui.label("Each saved command of its commands_list.toml becomes a saved server here, all with the key they were sent with. Servers already saved are never changed.");
        egui::Grid::new("import").num_columns(2).show(ui, |ui| {
            text_row(ui, "commands_list.toml", &mut file);
            text_row(ui, "Key file or key string", &mut key_file);
        });
        ui.horizontal(|ui| {
            for (button, dry_run) in [("Preview", true), ("Import now", false)] {
                if ui.button(button).clicked() {
                    // The key string itself (the original GUI kept only that), or a
                    // file, relative to the config directory.
                    let given = key_file.trim();
                    let key = if ruroco_proto::Key::parse(given).is_ok() {
                        ruroco_client_core::add::KeyChoice::Text(Zeroizing::new(given.to_owned()))
                    } else if given.is_empty() {
                        ruroco_client_core::add::KeyChoice::File(PathBuf::new())
                    } else {
                        ruroco_client_core::add::KeyChoice::File(send::key_path(
                            &self.dir,
                            Path::new(given),
                        ))
                    };
                    let result =
                        import::import_with(Path::new(file.trim()), &key, dry_run, &self.dir);
                    report = match result {
                        Ok(done) => {
                            let verb = if dry_run { "would add" } else { "added" };
                            let mut lines: Vec<String> = done
                                .servers
                                .iter()
                                .map(|(name, address, command, flags)| {
                                    format!("{verb} {name}: {address}, command {command}; {flags}")
                                })
                                .collect();
                            lines.extend(done.skipped.iter().map(|(entry, name)| {
                                format!("already saved as {name}: {entry} (not added again)")
                            }));
                            lines.push(format!("{verb} {} server(s)", done.servers.len()));
                            lines
                        }
                        Err(e) => vec![format!("{e:#}")],
                    };
                    self.reload();
                }
            }
        });
        for line in &report {
            ui.label(line);
        }
        self.view = View::Import {
            file,
            key_file,
            report,
        };
    }

    fn confirm_reseed(&mut self, ui: &mut egui::Ui) {
        ui.heading("Reseed the counter?");
        ui.label("Every send uses the current time in nanoseconds (or one more than the last value sent, if that is larger), so the counter never falls behind the clock. Reseeding sets it back to the current time: only needed after a wrong clock pushed it ahead and the servers refused those datagrams as `future`. If a server accepted any of them, it refuses every send with that key as `replay` until the clock passes the last one: then wait instead.");
        let state = read_counter(&self.dir);
        ui.label(&state);
        let mut done = false;
        ui.horizontal(|ui| {
            if ui.button("Yes, reseed").clicked() {
                done = true;
                self.notice = Some(match reseed(&self.dir) {
                    Ok(text) => (true, text),
                    Err(e) => (false, format!("{e:#}")),
                });
                self.view = View::List;
            }
            if ui.button("Cancel").clicked() {
                done = true;
                self.view = View::List;
            }
        });
        if !done {
            self.view = View::ConfirmReseed;
        }
    }
}

impl eframe::App for App {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.show(ui);
    }
}

/// One labelled text field in a two-column grid.
fn text_row(ui: &mut egui::Ui, label: &str, value: &mut String) {
    let label = ui.label(label);
    ui.add(egui::TextEdit::singleline(value).desired_width(360.0))
        .labelled_by(label.id);
    ui.end_row();
}

/// The install view for a key that replaced a saved server's old one.
fn new_key_view(name: &str, address: &str, key_path: &Path) -> anyhow::Result<AddedView> {
    let host = ruroco_client_core::target::split_host_port(address.trim())?.0;
    let key_name = ruroco_client_core::add::server_key_name(name);
    let key_text = send::read_key_file(key_path)?.to_key_string();
    Ok(AddedView {
        name: name.to_owned(),
        install_line: ruroco_client_core::add::install_line(&host, &key_name, key_path)?,
        admin_line: ruroco_client_core::add::admin_line(&key_name)?,
        key_path: key_path.to_owned(),
        key_text,
        show_key: false,
    })
}

/// Widest a text column of the list grows; longer text is cut, whole on hover.
const COLUMN: f32 = 180.0;
/// Widest the result column grows.
const RESULT_COLUMN: f32 = 360.0;
/// Longest name shown on a row's buttons.
const BUTTON_NAME: usize = 40;

/// A name short enough for a button ("…" where cut).
fn short_name(name: &str) -> String {
    if name.chars().count() <= BUTTON_NAME {
        name.to_owned()
    } else {
        let head: String = name.chars().take(BUTTON_NAME - 1).collect();
        format!("{head}…")
    }
}

/// One text cell of the list: cut to its column, the whole of it on hover.
fn cell(ui: &mut egui::Ui, text: &str) {
    ui.scope(|ui| {
        ui.set_max_width(COLUMN);
        ui.add(egui::Label::new(text).truncate())
            .on_hover_text(text);
    });
}

/// A label cut to the room there is, the whole text on hover.
fn cut(ui: &mut egui::Ui, text: RichText, whole: &str) {
    ui.add(egui::Label::new(text).truncate())
        .on_hover_text(whole);
}

/// The "last result" cell: sent at a time, or the error in the error colour.
fn outcome_label(ui: &mut egui::Ui, outcome: Option<&Outcome>) {
    match outcome {
        None => {
            ui.label("");
        }
        Some(Outcome::Sending) => {
            ui.label("sending…");
        }
        Some(Outcome::Sent {
            at,
            command,
            to,
            partly_failed,
            watched,
        }) => {
            // A watched port tells what happened: open is a success seen, closed a failure
            // to look into.
            match watched {
                Some(crate::jobs::Watched::Open { port, ms, second }) => {
                    let again = if *second {
                        " (after a second knock)"
                    } else {
                        ""
                    };
                    let text = format!("sent at {at} UTC; port {port} open after {ms} ms{again}");
                    cut(
                        ui,
                        RichText::new(&text).color(Color32::from_rgb(0x2e, 0x9e, 0x4f)),
                        &text,
                    );
                    return;
                }
                Some(crate::jobs::Watched::Closed { port, secs }) => {
                    let text = format!(
                        "sent at {at} UTC; port {port} still closed after {secs} s, and after a second knock — see the server's log"
                    );
                    let color = ui.visuals().error_fg_color;
                    cut(ui, RichText::new(&text).color(color), &text);
                    return;
                }
                None => {}
            }
            // "Sent" says the datagram left this machine, nothing more: a server never
            // answers, so whether it ran is for its log to say. Not green, which would
            // claim success for a server that is down or lacks the key.
            let text = format!("sent at {at} UTC; no answer comes by design");
            let mut hover = format!(
                "`{command}` to {}: the datagram left this machine. A ruroco server never answers; its log says whether the command ran.",
                to.join(", ")
            );
            for failed in partly_failed {
                hover.push_str(&format!("\nnot sent to {failed}"));
            }
            ui.add(egui::Label::new(text).truncate())
                .on_hover_text(hover);
        }
        Some(Outcome::Failed(why)) => {
            let text = format!("failed: {why}");
            let color = ui.visuals().error_fg_color;
            cut(ui, RichText::new(&text).color(color), &text);
        }
    }
}

/// The key as a QR code, black on white whatever the theme, with its quiet zone.
fn qr_code(ui: &mut egui::Ui, text: &str) {
    let (size, dark) = match qr::matrix(text) {
        Ok(m) => m,
        Err(e) => {
            ui.label(format!("{e:#}"));
            return;
        }
    };
    let module = 5.0;
    let side = module * size as f32;
    let (rect, response) = ui.allocate_exact_size(egui::vec2(side, side), egui::Sense::hover());
    let painter = ui.painter_at(rect);
    painter.rect_filled(rect, 0.0, Color32::WHITE);
    for (i, on) in dark.iter().enumerate() {
        if *on {
            let (row, col) = ((i / size) as f32, (i % size) as f32);
            let min = rect.min + egui::vec2(col * module, row * module);
            painter.rect_filled(
                egui::Rect::from_min_size(min, egui::vec2(module, module)),
                0.0,
                Color32::BLACK,
            );
        }
    }
    response
        .widget_info(|| egui::WidgetInfo::labeled(egui::Role::Image, true, "QR code of the key"));
}

/// What the counter says, for the reseed view.
fn read_counter(dir: &Path) -> String {
    let stored = Counter::lock(dir).and_then(|c| c.read());
    let date = |ns: u128| ruroco_config::utc(u64::try_from(ns / 1_000_000).unwrap_or(u64::MAX));
    match stored {
        Ok(Some(last)) if last > now_nanos() => format!(
            "The counter is {} s ahead of this clock (last sent {}).",
            (last - now_nanos()) / 1_000_000_000,
            date(last)
        ),
        Ok(Some(last)) => format!(
            "The counter (last sent {}) is not ahead of this clock: reseeding changes nothing.",
            date(last)
        ),
        Ok(None) => "Nothing sent yet: reseeding changes nothing.".to_owned(),
        Err(e) => format!("{e:#}"),
    }
}

/// Sets the counter to now (the lock held only for that).
fn reseed(dir: &Path) -> anyhow::Result<String> {
    let counter = Counter::lock(dir)?;
    let now = now_nanos();
    let date = |ns: u128| ruroco_config::utc(u64::try_from(ns / 1_000_000).unwrap_or(u64::MAX));
    match counter.read()? {
        Some(last) if last > now => {
            counter.write(now)?;
            Ok(format!(
                "Counter set back from {} to {}.",
                date(last),
                date(now)
            ))
        }
        _ => Ok("The counter is not ahead of the clock: nothing to change.".to_owned()),
    }
}
