//! What the receive loop does besides datagrams: SIGHUP reloads and the metrics file.

use std::time::Instant;

use crate::server::{now_nanos, Server};
use crate::setup;

impl Server {
    /// Rewrites the metrics file when it is due (or now, with `force`).
    pub(crate) fn write_metrics(&mut self, force: bool) {
        let Some(file) = self.metrics_file.as_mut() else {
            return;
        };
        let (metrics, book) = (&self.metrics, &self.logbook);
        if let Err(e) = file.write_if_due(Instant::now(), force, || metrics.render(book)) {
            tracing::error!("{e}");
        }
    }

    /// SIGHUP: reads `config.toml` and the key files again — on a thread of its own, so
    /// the receive loop never waits for the disk (100,000 key files take most of a second)
    /// or a name lookup of the floor store; [`Self::reload_done`] swaps the result in at
    /// once. A SIGHUP while one is being read asks for one more read after it.
    pub(crate) fn reload(&mut self) {
        if self.reload_pending.is_some() {
            self.reload_again = true;
            return;
        }
        tracing::info!(
            "reload requested (SIGHUP): reading {}",
            self.config_path.display()
        );
        let (tx, rx) = std::sync::mpsc::channel();
        let path = self.config_path.clone();
        let spawned = std::thread::Builder::new()
            .name("reload".into())
            .spawn(move || {
                let _ = tx.send(setup::load_for_reload(&path));
            });
        match spawned {
            Ok(_) => self.reload_pending = Some(rx),
            Err(e) => {
                self.metrics.reloads_failed += 1;
                tracing::error!("reload failed, the previous configuration stays in force: cannot start a thread to read it: {e}");
            }
        }
    }

    /// Whether a reload is being read.
    pub(crate) fn reloading(&self) -> bool {
        self.reload_pending.is_some()
    }

    /// Applies a reload whose reading has finished; `true` when one was applied (or
    /// failed), `false` while it is still being read or none was asked for.
    pub(crate) fn reload_done(&mut self) -> bool {
        let Some(rx) = &self.reload_pending else {
            return false;
        };
        let loaded = match rx.try_recv() {
            Ok(loaded) => loaded,
            Err(std::sync::mpsc::TryRecvError::Empty) => return false,
            Err(std::sync::mpsc::TryRecvError::Disconnected) => Err(anyhow::anyhow!(
                "the thread reading it ended without an answer"
            )),
        };
        self.reload_pending = None;
        self.apply_reload(loaded);
        if std::mem::take(&mut self.reload_again) {
            self.reload();
        }
        true
    }

    /// Swaps in what a reload read; on any error nothing changes.
    fn apply_reload(&mut self, loaded: anyhow::Result<setup::Settings>) {
        let settings = match loaded {
            Ok(settings) => settings,
            Err(e) => {
                self.metrics.reloads_failed += 1;
                tracing::error!("reload failed, the previous configuration stays in force: {e:#}");
                return;
            }
        };
        let (added, gone) = setup::key_changes(&self.keys, &settings.keys);
        if let Err(e) = self
            .floors
            .seed(added.iter().copied(), ruroco_proto::seed_floor(now_nanos()))
        {
            self.metrics.reloads_failed += 1;
            tracing::error!(
                "reload failed, the previous configuration stays in force: cannot seed the floors of new keys: {e:#}"
            );
            return;
        }
        for warning in &settings.config.warnings {
            tracing::warn!("{warning}");
        }
        let mut config = settings.config;
        for (key, running, new) in setup::keep_fixed(&self.config, &mut config) {
            tracing::warn!(
                "config key `{key}` changed from `{running}` to `{new}`; that takes a restart, keeping `{running}`"
            );
        }
        self.limiter.set_limits(
            config.max_requests_per_second,
            config.max_requests_per_second_global,
        );
        // The previous keys go here: what they and the reading held goes back to the
        // kernel.
        self.keys = settings.keys;
        crate::heap::give_back();
        self.allow = settings.allow;
        self.policy = settings.policy;
        // Replaced atomically: a new key's datagrams pass from now on, a removed key's
        // are dropped in the kernel.
        self.metrics.kernel_filter = crate::kernel_filter::apply(
            &self.socket,
            config.kernel_filter,
            &crate::kernel_filter::sorted_ids(&self.keys),
            self.policy.accept_v0,
        );
        self.config = config;
        self.metrics.keys = self.keys.len();
        self.metrics.reloads_ok += 1;
        // Per key only what changed, and a bounded number of lines of each: a reload that adds
        // 50,000 keys logs one summary, not 50,000 lines.
        crate::keys::log_ids("added key", &added);
        crate::keys::log_ids("removed key", &gone);
        tracing::info!(
            "reloaded {}: {} key(s) (+{} -{}), {} with an allow-list",
            self.config_path.display(),
            self.keys.len(),
            added.len(),
            gone.len(),
            self.allow.len()
        );
    }
}
