//! The receive loop and the per-datagram pipeline around the pure decision.

use std::net::{IpAddr, UdpSocket};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ruroco_config::{Config, ServiceManager};
use ruroco_ipc::normalize_ip;
use ruroco_metrics::MetricsFile;
use ruroco_proto::{judge, Accepted, Keyring, Policy, RateLimiter, Reason, Spend};

use crate::allow::AllowList;
use crate::batch::Batch;
use crate::floors::FloorStore;
use crate::forward::Forwarder;
use crate::handoff::{self, Handoff, Waiting};
use crate::logbook::Logbook;
use crate::metrics::ServerMetrics;
use crate::shared_floors::SharedFloors;
use crate::signal::{shutdown_requested, take_reload_request};

/// How often the one-line status for systemd is refreshed.
const STATUS_EVERY: Duration = Duration::from_secs(10);
/// How long one receive may block before the shutdown flag is checked again.
const RECV_TIMEOUT: Duration = Duration::from_secs(1);
/// How often the loop looks for a reload that is being read off the loop.
const RELOAD_POLL: Duration = Duration::from_millis(5);

/// Nanoseconds since the Unix epoch, the unit of counters.
pub(crate) fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

impl Server {
    /// Keeps a command for the commander; the oldest is given up past the bound.
    fn wait_for_commander(&mut self, waiting: Waiting) {
        if let Some(lost) = self.handoff.push(waiting) {
            self.gave_up(&lost, "too many commands waiting for the commander");
        }
    }

    /// Retries the waiting commands when due and gives up those that waited too long.
    pub(crate) fn retry_handoffs(&mut self) {
        let now = Instant::now();
        for lost in self.handoff.expired(now) {
            self.gave_up(&lost, "the commander stayed unreachable");
        }
        if !self.handoff.due(now) {
            return;
        }
        let forwarder = &self.forwarder;
        let sent = self
            .handoff
            .drain(now, |w| forwarder.send(&w.message).is_ok());
        for w in &sent {
            self.metrics.forwards += 1;
            tracing::info!(
                "handed the command for {} (datagram from {} key={}) to the commander after {} ms",
                w.message.ip,
                w.source,
                w.key,
                now.saturating_duration_since(w.since).as_millis()
            );
        }
    }

    fn gave_up(&mut self, lost: &Waiting, why: &str) {
        self.metrics.forward_errors += 1;
        tracing::error!(
            outcome = "lost",
            src_ip = %lost.source,
            key = %lost.key,
            cmd_hash = %format_args!("{:016x}", lost.message.cmd_hash),
            client_ip = %lost.message.ip,
            "command for {} (datagram from {} key={} cmd_hash={:016x}) NOT run: {why} (waited {} ms, at most {} s); the client must send again",
            lost.message.ip,
            lost.source,
            lost.key,
            lost.message.cmd_hash,
            lost.since.elapsed().as_millis(),
            handoff::PATIENCE.as_secs()
        );
    }
}

/// What one authentic datagram of a batch spends, and whether it is to be forwarded.
struct Item {
    spend: Spend,
    forward: Option<(Accepted, IpAddr)>,
}

pub(crate) struct Server {
    pub(crate) socket: UdpSocket,
    pub(crate) keys: Keyring,
    pub(crate) floors: FloorStore,
    pub(crate) policy: Policy,
    pub(crate) limiter: RateLimiter,
    pub(crate) forwarder: Forwarder,
    pub(crate) allow: AllowList,
    /// The Redis floor store, when floors are shared between servers.
    pub(crate) shared: Option<SharedFloors>,
    pub(crate) started: Instant,
    pub(crate) logbook: Logbook,
    /// The file reloads read again, and what it said last time.
    pub(crate) config_path: PathBuf,
    pub(crate) config: Config,
    pub(crate) metrics: ServerMetrics,
    pub(crate) metrics_file: Option<MetricsFile>,
    /// Commands waiting for the commander.
    pub(crate) handoff: Handoff,
    /// systemd's notify protocol (nothing without `NOTIFY_SOCKET`).
    pub(crate) service: ServiceManager,
    pub(crate) status_at: Option<Instant>,
    /// A reload being read off the loop (`reload.rs`), and whether another was asked for
    /// meanwhile.
    pub(crate) reload_pending:
        Option<std::sync::mpsc::Receiver<anyhow::Result<crate::setup::Settings>>>,
    pub(crate) reload_again: bool,
}

impl Server {
    /// Receives until SIGTERM/SIGINT; the datagram in hand is always finished first.
    pub(crate) fn run(&mut self) -> anyhow::Result<()> {
        self.socket.set_read_timeout(Some(RECV_TIMEOUT))?;
        let mut current_timeout = RECV_TIMEOUT;
        let mut batch = Batch::new();
        // Keys, floors and socket are ready: a datagram now is judged and handed over.
        self.service.ready(&self.status_line());
        loop {
            let now = Instant::now();
            self.service.watchdog(now);
            if self
                .status_at
                .is_none_or(|at| now.saturating_duration_since(at) >= STATUS_EVERY)
            {
                self.status_at = Some(now);
                self.service.status(&self.status_line());
            }
            if shutdown_requested() {
                tracing::info!("Shutdown requested, stopping server loop");
                self.service.stopping();
                // One last attempt for what still waits; the rest is lost, and said so.
                self.retry_handoffs();
                for lost in self.handoff.expired(Instant::now() + handoff::PATIENCE) {
                    self.gave_up(&lost, "the server stopped before the commander was back");
                }
                break;
            }
            self.logbook.tick(self.uptime());
            if take_reload_request() {
                if !self.reloading() {
                    self.service.reloading();
                }
                self.reload();
            }
            if self.reload_done() && !self.reloading() {
                self.service.ready(&self.status_line());
            }
            self.retry_handoffs();
            self.metrics.waiting = self.handoff.len();
            self.write_metrics(false);
            // While commands wait for the commander, look again soon.
            // And while a reload is read, so that it is swapped in as soon as it is ready.
            let timeout = if self.reloading() {
                RELOAD_POLL
            } else if self.handoff.is_empty() {
                RECV_TIMEOUT
            } else {
                handoff::RETRY_EVERY
            };
            if timeout != current_timeout {
                self.socket.set_read_timeout(Some(timeout))?;
                current_timeout = timeout;
            }
            match batch.receive(&self.socket) {
                Ok(n) => self.handle_batch(&batch, n),
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

    /// What `systemctl status` shows: keys, and what became of datagrams since start.
    pub(crate) fn status_line(&self) -> String {
        let accepted: u64 = ruroco_proto::Wire::ALL
            .iter()
            .map(|w| self.logbook.accepted_count(*w))
            .sum();
        let refused: u64 = Reason::ALL.iter().map(|r| self.logbook.count(*r)).sum();
        format!(
            "{} key(s); since start {accepted} accepted, {refused} refused; {} waiting for the commander",
            self.keys.len(),
            self.handoff.len()
        )
    }

    pub(crate) fn uptime(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    /// One batch: judge every datagram against the floors as they stand after the ones
    /// before it, commit the new floors of all accepted ones in one durable write, and
    /// only then forward. A failed commit forwards none of them.
    ///
    /// An authentic datagram refused after its replay check (`future`, `dst_ip`, `src_ip`,
    /// `rate`) spends its counter in the same commit, and so does one that cannot be
    /// forwarded because the store failed: refused once, it stays refused, whatever the
    /// clock, the configuration or the disk do later.
    pub(crate) fn handle_batch(&mut self, batch: &Batch, n: usize) {
        let now = now_nanos();
        let mut items: Vec<Item> = Vec::new();
        for i in 0..n {
            let Some((data, Some(source))) = batch.get(i) else {
                continue;
            };
            let source_ip: IpAddr = normalize_ip(source.ip());
            let floors = self.floors.table();
            let accepted = match judge(&self.keys, floors, &self.policy, now, source_ip, data) {
                Ok(accepted) => accepted,
                Err(refusal) => {
                    let key = data.first_chunk::<8>().map(|id| ruroco_proto::KeyId(*id));
                    let key = key.filter(|_| refusal.reason.is_authenticated());
                    let detail = refusal.claimed_dst.map(|dst| {
                        format!("dst={dst} (not in `ips` of {})", self.config_path.display())
                    });
                    self.logbook.rejected_with(
                        self.uptime(),
                        source_ip,
                        refusal.reason,
                        key,
                        detail,
                    );
                    if let Some(spend) = refusal.spend {
                        self.floors.spend(spend);
                        items.push(Item {
                            spend,
                            forward: None,
                        });
                    }
                    continue;
                }
            };
            let spend = Spend::Floor(accepted.key_id, accepted.counter);
            self.floors.spend(spend);
            let forward = if self.limiter.admit(now, source_ip) {
                Some((accepted, source_ip))
            } else {
                let key = Some(accepted.key_id);
                self.logbook
                    .rejected(self.uptime(), source_ip, Reason::Rate, key);
                None
            };
            items.push(Item { spend, forward });
        }
        if items.is_empty() {
            return;
        }
        let mut forward = self.ask_shared_store(items);
        let write_started = Instant::now();
        let stored = self.floors.commit();
        self.metrics
            .floor_write
            .observe(write_started.elapsed().as_secs_f64());
        if let Err(e) = stored {
            self.metrics.floor_write_errors += forward.len() as u64;
            for (accepted, source_ip) in &forward {
                tracing::error!(
                    "datagram from {source_ip} key={} not forwarded: {e:#}",
                    accepted.key_id
                );
            }
            return;
        }
        for (accepted, source_ip) in forward.drain(..) {
            self.forward(accepted, source_ip);
        }
    }

    /// With shared floors, the store decides, once for everyone sharing it: what it
    /// refuses is a replay here too, and when it cannot be asked nothing is forwarded
    /// (fail closed). Without, everything accepted so far is forwarded. Either way the
    /// local floors keep everything the batch spent: a counter the store refused is at or
    /// below the shared floor, so keeping it as the local lower bound refuses nothing the
    /// store would accept.
    fn ask_shared_store(&mut self, items: Vec<Item>) -> Vec<(Accepted, IpAddr)> {
        let Some(shared) = self.shared.as_mut() else {
            return items.into_iter().filter_map(|item| item.forward).collect();
        };
        let spends: Vec<Spend> = items.iter().map(|item| item.spend).collect();
        let now = Instant::now();
        let verdicts = match shared.advance(now, &spends) {
            Ok(verdicts) => verdicts,
            Err(why) => {
                self.metrics.floor_store_errors += 1;
                let forwards = items.iter().filter(|item| item.forward.is_some()).count();
                shared.log_error(now, &why, forwards);
                return Vec::new();
            }
        };
        let uptime = self.uptime();
        let mut forward = Vec::new();
        for (item, yes) in items.into_iter().zip(verdicts) {
            let Some((accepted, source_ip)) = item.forward else {
                continue;
            };
            if yes {
                forward.push((accepted, source_ip));
            } else {
                let key = Some(accepted.key_id);
                self.logbook
                    .rejected(uptime, source_ip, Reason::Replay, key);
            }
        }
        forward
    }

    /// An accepted datagram whose floor is durable: the allow-list, then the commander.
    fn forward(&mut self, accepted: Accepted, source_ip: IpAddr) {
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
        let waiting = Waiting {
            message,
            source: source_ip,
            key: accepted.key_id,
            since: Instant::now(),
        };
        // Behind others that wait: in order, after them.
        if !self.handoff.is_empty() {
            self.wait_for_commander(waiting);
        } else if let Err(e) = self.forwarder.send(&message) {
            tracing::warn!(
                "commander not reachable at {}: {e}; keeping the command for {} for up to {} s",
                self.forwarder.socket().display(),
                message.ip,
                handoff::PATIENCE.as_secs()
            );
            self.wait_for_commander(waiting);
        } else {
            self.metrics.forwards += 1;
        }
        // Logged after the hand-off, so the line costs the command no latency.
        tracing::info!(
            outcome = "accepted",
            src_ip = %source_ip,
            wire = %accepted.wire,
            key = %accepted.key_id,
            cmd_hash = %format_args!("{:016x}", message.cmd_hash),
            client_ip = %message.ip,
            "accepted datagram from {source_ip} wire={} key={} cmd_hash={:016x} for ip={}",
            accepted.wire,
            accepted.key_id,
            message.cmd_hash,
            message.ip
        );
    }
}
