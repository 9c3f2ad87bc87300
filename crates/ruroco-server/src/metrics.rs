//! The server's metrics: what arrived and what became of it, rendered from the logbook's
//! counters plus the few figures only the pipeline knows (forwards, floor writes,
//! reloads). Labels come from fixed sets: rejection reasons and wire formats.

use ruroco_metrics::{Exposition, Histogram, Kind, FAST_BUCKETS};
use ruroco_proto::{Reason, Wire};

use crate::logbook::Logbook;

/// Figures the logbook does not keep.
#[derive(Debug)]
pub(crate) struct ServerMetrics {
    pub(crate) forwards: u64,
    pub(crate) forward_errors: u64,
    pub(crate) floor_write_errors: u64,
    pub(crate) floor_store_errors: u64,
    pub(crate) floor_write: Histogram,
    pub(crate) keys: usize,
    pub(crate) reloads_ok: u64,
    pub(crate) reloads_failed: u64,
    /// Seconds since the Unix epoch when the process started.
    pub(crate) start_time: f64,
    /// The UDP socket's kernel drop counter.
    pub(crate) drop_counter: Option<crate::socket_drops::DropCounter>,
    /// Commands waiting for the commander now.
    pub(crate) waiting: usize,
    /// What the kernel filter checks now.
    pub(crate) kernel_filter: crate::kernel_filter::Mode,
}

impl ServerMetrics {
    pub(crate) fn new(
        keys: usize,
        start_time: f64,
        drop_counter: Option<crate::socket_drops::DropCounter>,
    ) -> Self {
        Self {
            forwards: 0,
            forward_errors: 0,
            floor_write_errors: 0,
            floor_store_errors: 0,
            floor_write: Histogram::new(FAST_BUCKETS),
            keys,
            reloads_ok: 0,
            reloads_failed: 0,
            start_time,
            drop_counter,
            waiting: 0,
            kernel_filter: crate::kernel_filter::Mode::Off,
        }
    }

    /// The exposition text.
    pub(crate) fn render(&self, book: &Logbook) -> String {
        let mut e = Exposition::new();
        let name = "ruroco_server_datagrams_total";
        e.family(
            name,
            Kind::Counter,
            "Datagrams received, by result: accepted or the rejection reason.",
        );
        let accepted: u64 = Wire::ALL.iter().map(|w| book.accepted_count(*w)).sum();
        e.sample(name, &[("result", "accepted")], accepted as f64);
        for reason in Reason::ALL {
            e.sample(
                name,
                &[("result", reason.as_str())],
                book.count(reason) as f64,
            );
        }
        let name = "ruroco_server_accepted_total";
        e.family(name, Kind::Counter, "Datagrams accepted, by wire format.");
        for wire in Wire::ALL {
            let label = wire.to_string();
            e.sample(name, &[("wire", &label)], book.accepted_count(wire) as f64);
        }
        for (name, help, value) in [
            (
                "ruroco_server_forwards_total",
                "Commands handed to the commander.",
                self.forwards,
            ),
            (
                "ruroco_server_forward_errors_total",
                "Accepted commands given up because the commander stayed unreachable (after 5 s of retries, or past 1024 waiting).",
                self.forward_errors,
            ),
            (
                "ruroco_server_floor_write_errors_total",
                "Accepted datagrams dropped because their replay floor could not be stored.",
                self.floor_write_errors,
            ),
            (
                "ruroco_server_floor_store_errors_total",
                "Batches refused because the shared floor store (Redis) could not be asked.",
                self.floor_store_errors,
            ),
        ] {
            e.family(name, Kind::Counter, help);
            e.sample(name, &[], value as f64);
        }
        let name = "ruroco_server_floor_write_duration_seconds";
        e.family(
            name,
            Kind::Histogram,
            "Time to store a replay floor durably (temp, fsync, rename, fsync dir).",
        );
        e.histogram(name, &[], &self.floor_write);
        if let Some(drops) = self.drop_counter.as_ref().and_then(|c| c.drops()) {
            let name = "ruroco_server_socket_drops_total";
            e.family(
                name,
                Kind::Counter,
                "Datagrams the kernel dropped at the server's socket: refused by the kernel filter, or the receive buffer was full.",
            );
            e.sample(name, &[], drops as f64);
        }
        let name = "ruroco_server_commands_waiting";
        e.family(
            name,
            Kind::Gauge,
            "Accepted commands waiting for the commander (unreachable, kept up to 5 s).",
        );
        e.sample(name, &[], self.waiting as f64);
        let name = "ruroco_server_kernel_filter";
        e.family(
            name,
            Kind::Gauge,
            "What the kernel socket filter checks now (1 for the mode in force): keys (length and key id), length (the key-id program did not fit net.core.optmem_max, or too many keys), off.",
        );
        for mode in [
            crate::kernel_filter::Mode::Keys,
            crate::kernel_filter::Mode::Length,
            crate::kernel_filter::Mode::Off,
        ] {
            let on = if mode == self.kernel_filter { 1.0 } else { 0.0 };
            e.sample(name, &[("mode", mode.as_str())], on);
        }
        let name = "ruroco_server_keys";
        e.family(name, Kind::Gauge, "Keys loaded.");
        e.sample(name, &[], self.keys as f64);
        let name = "ruroco_server_reloads_total";
        e.family(
            name,
            Kind::Counter,
            "Configuration reloads (SIGHUP), by result.",
        );
        e.sample(name, &[("result", "ok")], self.reloads_ok as f64);
        e.sample(name, &[("result", "failed")], self.reloads_failed as f64);
        e.process(
            "ruroco_server",
            self.start_time,
            &ruroco_metrics::Build {
                version: ruroco_config::VERSION,
                commit: ruroco_config::COMMIT,
                target: ruroco_config::TARGET,
            },
        );
        e.finish()
    }
}
