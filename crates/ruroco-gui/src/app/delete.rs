//! Deleting a saved server, asked first.

use eframe::egui::{self};
use ruroco_client_core::profile::{self, Profile};
use ruroco_client_core::send;

use super::{App, View};

impl App {
    pub(super) fn confirm_delete(&mut self, ui: &mut egui::Ui, name: String, mut delete_key: bool) {
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
}
