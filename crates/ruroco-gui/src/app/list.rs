//! The list of saved servers: filter, keyboard, the rows with their actions and last
//! results.

use eframe::egui::{self, Color32, RichText};
use ruroco_client_core::profile::Server;
use ruroco_client_core::send;

use super::{App, View};
use crate::form::Form;
use crate::jobs::Outcome;

impl App {
    pub(super) fn list(&mut self, ui: &mut egui::Ui, ctx: &egui::Context) {
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
        // Solid scroll bars, beside the rows: egui's floating ones are drawn over the rows
        // while the pointer is on them, hiding the buttons it is there to click.
        ui.spacing_mut().scroll = egui::style::ScrollStyle::solid();
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
}

/// Widest a text column of the list grows; longer text is cut, whole on hover.
pub(super) const COLUMN: f32 = 180.0;
/// Widest the result column grows.
pub(super) const RESULT_COLUMN: f32 = 360.0;
/// Longest name shown on a row's buttons.
pub(super) const BUTTON_NAME: usize = 40;

/// A name short enough for a button ("…" where cut).
pub(super) fn short_name(name: &str) -> String {
    if name.chars().count() <= BUTTON_NAME {
        name.to_owned()
    } else {
        let head: String = name.chars().take(BUTTON_NAME - 1).collect();
        format!("{head}…")
    }
}

/// One text cell of the list: cut to its column, the whole of it on hover.
pub(super) fn cell(ui: &mut egui::Ui, text: &str) {
    ui.scope(|ui| {
        ui.set_max_width(COLUMN);
        ui.add(egui::Label::new(text).truncate())
            .on_hover_text(text);
    });
}

/// A label cut to the room there is, the whole text on hover.
pub(super) fn cut(ui: &mut egui::Ui, text: RichText, whole: &str) {
    ui.add(egui::Label::new(text).truncate())
        .on_hover_text(whole);
}

/// The "last result" cell: sent at a time, or the error in the error colour.
pub(super) fn outcome_label(ui: &mut egui::Ui, outcome: Option<&Outcome>) {
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
                    let text = format!(
                        "sent at {}; port {port} open after {ms} ms{again}",
                        local(*at)
                    );
                    cut(
                        ui,
                        RichText::new(&text).color(Color32::from_rgb(0x2e, 0x9e, 0x4f)),
                        &text,
                    );
                    return;
                }
                Some(crate::jobs::Watched::Closed { port, secs }) => {
                    let text = format!(
                        "sent at {}; port {port} still closed after {secs} s, and after a second knock — see the server's log",
                        local(*at)
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
            let text = format!("sent at {}; no answer comes by design", local(*at));
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

/// A result's time in the desktop's zone, read now.
fn local(at_ms: i64) -> String {
    crate::clock::local(at_ms, crate::clock::now_ms())
}
