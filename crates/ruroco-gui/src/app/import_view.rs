//! Importing the original GUI's saved commands.

use std::path::{Path, PathBuf};

use eframe::egui::{self};
use ruroco_client_core::{import, send};
use zeroize::Zeroizing;

use super::{App, View};
use crate::chooser::Field;

impl App {
    pub(super) fn import(
        &mut self,
        ui: &mut egui::Ui,
        mut file: String,
        mut key_file: String,
        mut report: Vec<String>,
    ) {
        ui.heading("Import the original GUI's saved commands");
        ui.label("Each saved command of its commands_list.toml becomes a saved server here, all with the key they were sent with. Servers already saved are never changed.");
        egui::Grid::new("import").num_columns(2).show(ui, |ui| {
            self.path_row(ui, "commands_list.toml", &mut file, Field::ImportList);
            self.path_row(
                ui,
                "Key file or key string",
                &mut key_file,
                Field::ImportKey,
            );
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
                                .map(|s| {
                                    format!(
                                        "{verb} {}: {}, command {}; {}",
                                        s.name, s.address, s.command, s.flags
                                    )
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
}
