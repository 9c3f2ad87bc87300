//! The receive loop and the per-datagram pipeline around the pure decision.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ruroco_ipc::normalize_ip;
use ruroco_proto::{decide, Keyring, Policy, RateLimiter, Reason};

use std::path::PathBuf;

use ruroco_config::Config;
use ruroco_metrics::MetricsFile;

use crate::allow::AllowList;
use crate::floors::FloorStore;
use crate::forward::Forwarder;
use crate::logbook::Logbook;
use crate::metrics::ServerMetrics;
use crate::setup;
use crate::signal::{shutdown_requested, take_reload_request};

/// How long one receive may block before the shutdown flag is checked again.
const RECV_TIMEOUT: Duration = Duration::from_secs(1);
/// Large enough that an oversized datagram is seen as oversized, not as 94 bytes.
const RECV_BUFFER: usize = 512;

/// Nanoseconds since the Unix epoch, the unit of counters.
pub(crate) fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

pub(crate) struct Server {
    pub(crate) socket: UdpSocket,
    pub(crate) keys: Keyring,
    pub(crate) floors: FloorStore,
    pub(crate) policy: Policy,
    pub(crate) limiter: RateLimiter,
    pub(crate) forwarder: Forwarder,
    pub(crate) allow: AllowList,
    pub(crate) started: Instant,
    pub(crate) logbook: Logbook,
    /// The file reloads read again, and what it said last time.
    pub(crate) config_path: PathBuf,
    pub(crate) config: Config,
    pub(crate) metrics: ServerMetrics,
    pub(crate) metrics_file: Option<MetricsFile>,
}

impl Server {
    /// Receives until SIGTERM/SIGINT; the datagram in hand is always finished first.
    pub(crate) fn run(&mut self) -> anyhow::Result<()> {
        self.socket.set_read_timeout(Some(RECV_TIMEOUT))?;
        let mut buf = [0u8; RECV_BUFFER];
        loop {
            if shutdown_requested() {
                tracing::info!("Shutdown requested, stopping server loop");
                break;
            }
            self.logbook.tick(self.uptime());
            if take_reload_request() {
                self.reload();
            }
            self.write_metrics(false);
            match self.socket.recv_from(&mut buf) {
                Ok((len, source)) => {
                    let data = buf.get(..len).unwrap_or_default();
                    self.handle(data, source);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock
                            | std::io::ErrorKind::TimedOut
                            | std::io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => {
                    tracing::error!("receive failed: {e}");
                    // Never spin on a persistent socket error.
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
        self.logbook.flush();
        self.write_metrics(true);
        Ok(())
    }

    /// Rewrites the metrics file when it is due (or now, with `force`).
    fn write_metrics(&mut self, force: bool) {
        let now = Instant::now();
        let Some(file) = self.metrics_file.as_mut() else {
            return;
        };
        if !force && !file.due(now) {
            return;
        }
        let text = self.metrics.render(&self.logbook);
        if let Err(e) = file.write(&text, now) {
            tracing::error!("cannot write metrics file {}: {e}", file.path().display());
        }
    }

    /// SIGHUP: reads `config.toml` and the key files again. Floors, rate windows and the
    /// socket are kept; on any error nothing changes and the old configuration serves on.
    fn reload(&mut self) {
        tracing::info!(
            "reload requested (SIGHUP): reading {}",
            self.config_path.display()
        );
        let settings = match setup::load(&self.config_path) {
            Ok(settings) => settings,
            Err(e) => {
                self.metrics.reloads_failed += 1;
                tracing::error!("reload failed, the previous configuration stays in force: {e:#}");
                return;
            }
        };
        let (added, removed) = setup::key_changes(&self.keys, &settings.keys);
        if let Err(e) = self.floors.seed(added.iter().copied(), now_nanos()) {
            self.metrics.reloads_failed += 1;
            tracing::error!(
                "reload failed, the previous configuration stays in force: cannot seed the floors of new keys: {e:#}"
            );
            return;
        }
        for warning in &settings.config.warnings {
            tracing::warn!("{warning}");
        }
        for (key, old, new) in setup::fixed_changes(&self.config, &settings.config) {
            tracing::warn!(
                "config key `{key}` changed from `{}` to `{}`; that takes a restart, keeping `{}`",
                old.display(),
                new.display(),
                old.display()
            );
        }
        let c = &settings.config;
        self.limiter
            .set_limits(c.max_requests_per_second, c.max_requests_per_second_global);
        self.keys = settings.keys;
        self.allow = settings.allow;
        self.policy = settings.policy;
        let (blocklist, socket, address, metrics) = (
            self.config.blocklist_dir.clone(),
            self.config.socket_dir.clone(),
            self.config.address.clone(),
            self.config.metrics_dir.clone(),
        );
        self.config = settings.config;
        // What the process holds open stays as it was started.
        self.config.blocklist_dir = blocklist;
        self.config.socket_dir = socket;
        self.config.address = address;
        self.config.metrics_dir = metrics;
        self.metrics.keys = self.keys.len();
        self.metrics.reloads_ok += 1;
        tracing::info!(
            "reloaded {}: {} key(s) (+{} -{removed}), {} with an allow-list",
            self.config_path.display(),
            self.keys.len(),
            added.len(),
            self.allow.len()
        );
    }

    fn uptime(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    /// One datagram: decide, rate-limit, persist the floor, forward.
    pub(crate) fn handle(&mut self, data: &[u8], source: SocketAddr) {
        let source_ip: IpAddr = normalize_ip(source.ip());
        let now = now_nanos();
        let accepted = match decide(
            &self.keys,
            self.floors.table(),
            &self.policy,
            now,
            source_ip,
            data,
        ) {
            Ok(accepted) => accepted,
            Err(reason) => {
                let key = data.first_chunk::<8>().map(|id| ruroco_proto::KeyId(*id));
                let key = key.filter(|_| reason.is_authenticated());
                self.logbook.rejected(self.uptime(), source_ip, reason, key);
                return;
            }
        };
        if !self.limiter.admit(now, source_ip) {
            self.logbook.rejected(
                self.uptime(),
                source_ip,
                Reason::Rate,
                Some(accepted.key_id),
            );
            return;
        }
        let write_started = Instant::now();
        let stored = self.floors.advance(accepted.key_id, accepted.counter);
        self.metrics
            .floor_write
            .observe(write_started.elapsed().as_secs_f64());
        if let Err(e) = stored {
            self.metrics.floor_write_errors += 1;
            tracing::error!(
                "datagram from {source_ip} key={} not forwarded: {e:#}",
                accepted.key_id
            );
            return;
        }
        let message = accepted.message;
        if !self.allow.allows(accepted.key_id, message.cmd_hash) {
            // Authentic, and its floor has advanced: a replay of it stays a replay.
            self.logbook.rejected(
                self.uptime(),
                source_ip,
                Reason::NotAllowed,
                Some(accepted.key_id),
            );
            return;
        }
        self.logbook.accepted(accepted.wire);
        tracing::info!(
            "accepted datagram from {source_ip} wire={} key={} cmd_hash={:016x} for ip={}",
            accepted.wire,
            accepted.key_id,
            message.cmd_hash,
            message.ip
        );
        if let Err(e) = self.forwarder.send(&message) {
            self.metrics.forward_errors += 1;
            tracing::error!(
                "commander not reachable at {}: {e}; command for {} not run",
                self.forwarder.socket().display(),
                message.ip
            );
        } else {
            self.metrics.forwards += 1;
        }
    }
}
