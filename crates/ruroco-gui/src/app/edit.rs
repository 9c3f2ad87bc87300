//! The add and edit form, and the key shown on request while editing.

use eframe::egui::{self};
use ruroco_client_core::profile::Profile;
use ruroco_client_core::send;
use zeroize::Zeroizing;

use super::added::{new_key_view, qr_code};
use super::{text_row, AddedView, App, View};
use crate::chooser::Field;
use crate::form::{Family, Form, KeySource};

impl App {
    pub(super) fn form(&mut self, ui: &mut egui::Ui, mut form: Form) {
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
                    KeySource::File => {
                        self.path_row(ui, "Key file", &mut form.key_file, Field::KeyFile)
                    }
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
    pub(super) fn key_reveal(&mut self, ui: &mut egui::Ui, name: &str) {
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

    pub(super) fn read_key(&self, name: &str) -> anyhow::Result<Zeroizing<String>> {
        let profile = Profile::load(&self.dir)?;
        let server = profile.server(name)?;
        let path = send::key_path(&self.dir, &server.key);
        Ok(send::read_key_file(&path)?.to_key_string())
    }
}
