//! Setting the counter back, after saying what it does.

use std::path::Path;

use eframe::egui::{self};
use ruroco_client_core::counter::{now_nanos, Counter};

use super::{App, View};

impl App {
    pub(super) fn confirm_reseed(&mut self, ui: &mut egui::Ui) {
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

/// What the counter says, for the reseed view.
pub(super) fn read_counter(dir: &Path) -> String {
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
pub(super) fn reseed(dir: &Path) -> anyhow::Result<String> {
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
