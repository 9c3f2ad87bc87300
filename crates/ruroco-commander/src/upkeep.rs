//! Upkeep of the loop: SIGHUP reloads and the metrics file.

use std::time::Instant;

use crate::service::Service;
use crate::setup;

impl Service {
    /// SIGHUP: reads `config.toml` and the commands again. Running commands, queued ones
    /// and pending undos keep what they started with; on any error nothing changes.
    pub(crate) fn reload(&mut self) {
        tracing::info!(
            "reload requested (SIGHUP): reading {}",
            self.origin.config.display()
        );
        let loaded = setup::load(&self.origin).and_then(|s| {
            if let Some(problem) = &s.commands_refused {
                anyhow::bail!("{problem}");
            }
            if s.commands.any_undo() {
                self.store.prepare(&self.undos)?;
            }
            Ok(s)
        });
        match loaded {
            Ok(settings) => {
                for warning in &settings.config.warnings {
                    tracing::warn!("{warning}");
                }
                if settings.config.socket_path()
                    != self
                        .socket
                        .as_ref()
                        .map(|s| s.path.clone())
                        .unwrap_or_default()
                    || settings.config.state_dir() != self.store.dir()
                {
                    tracing::warn!(
                        "socket_dir and state_dir take a restart to change; keeping the running ones"
                    );
                }
                tracing::info!(
                    "reloaded {} command(s) from {}",
                    settings.commands.len(),
                    settings.source.path().display()
                );
                self.allow_non_routable = settings.allow_non_routable();
                self.commands = settings.commands;
                self.commands_refused = None;
                self.commands_source = settings.source.path().to_owned();
                self.metrics.commands_refused = false;
                // Warm shells hold the old command lines.
                self.warm.clear();
                self.prewarm();
                self.metrics.reload(true);
            }
            Err(e) => {
                self.metrics.reload(false);
                tracing::error!("reload failed, the previous configuration stays in force: {e:#}");
            }
        }
    }

    /// Rewrites the metrics file when it is due (or now, with `force`).
    pub(crate) fn write_metrics(&mut self, force: bool) {
        let Some(file) = self.metrics_file.as_mut() else {
            return;
        };
        let (metrics, running, pending) = (&self.metrics, self.runner.len(), self.undos.len());
        if let Err(e) =
            file.write_if_due(Instant::now(), force, || metrics.render(running, pending))
        {
            tracing::error!("{e}");
        }
    }
}
