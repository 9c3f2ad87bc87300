//! The receive loop and the per-datagram pipeline around the pure decision.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ruroco_ipc::normalize_ip;
use ruroco_proto::{decide, Keyring, Policy, RateLimiter, Reason};

use crate::allow::AllowList;
use crate::floors::FloorStore;
use crate::forward::Forwarder;
use crate::logbook::Logbook;
use crate::signal::shutdown_requested;

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
        Ok(())
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
        if let Err(e) = self.floors.advance(accepted.key_id, accepted.counter) {
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
            tracing::error!(
                "commander not reachable at {}: {e}; command for {} not run",
                self.forwarder.socket().display(),
                message.ip
            );
        }
    }
}
