//! After adding (or a new key): the line that installs the key on the server, the key
//! on request, and its QR code.

use std::path::Path;

use eframe::egui::{self, Color32};
use ruroco_client_core::{qr, send};

use super::{AddedView, App, View};

impl App {
    pub(super) fn added(&mut self, ui: &mut egui::Ui, mut added: AddedView) {
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
}

/// The install view for a key that replaced a saved server's old one.
pub(super) fn new_key_view(
    name: &str,
    address: &str,
    key_path: &Path,
) -> anyhow::Result<AddedView> {
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

/// The key as a QR code, black on white whatever the theme, with its quiet zone.
pub(super) fn qr_code(ui: &mut egui::Ui, text: &str) {
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
