//! Taking messages in: accepting connections on the socket, reading exactly one message
//! each, and admitting its command (known, routable, within the bounds, past the gate)
//! or refusing it with one log line.

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::Duration;

use ruroco_ipc::{is_routable, CommanderMessage, MESSAGE_LEN};

use crate::clock::now_unix_ms;
use crate::policy::Refusal;
use crate::service::{Queued, Service, Tag, MAX_IN_FLIGHT};

/// Connections taken per wake-up, so a flood cannot starve the running jobs.
const ACCEPTS_PER_WAKE: usize = 64;
/// How long a connection may take to deliver its message.
const READ_TIMEOUT: Duration = Duration::from_secs(1);

impl Service {
    pub(crate) fn accept(&mut self) {
        for _ in 0..ACCEPTS_PER_WAKE {
            let Some(socket) = &self.socket else { return };
            match socket.listener.accept() {
                Ok((stream, _)) => self.handle(stream),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    tracing::error!("accept on {} failed: {e}", socket.path.display());
                    return;
                }
            }
        }
    }

    /// One connection: exactly 24 bytes, then end of stream.
    fn handle(&mut self, stream: UnixStream) {
        let bytes = match read_message(stream) {
            Ok(bytes) => bytes,
            Err(e) => {
                let path = self.socket.as_ref().map(|s| s.path.display().to_string());
                tracing::warn!(
                    "could not read a message from {}: {e}",
                    path.unwrap_or_default()
                );
                return;
            }
        };
        let message = match CommanderMessage::decode(&bytes) {
            Ok(message) => message,
            Err(e) if bytes.len() > MESSAGE_LEN => {
                tracing::warn!("rejected oversized message on the socket ({e}); nothing run");
                return;
            }
            Err(e) => {
                tracing::warn!("rejected message on the socket: {e}; nothing run");
                return;
            }
        };
        let ip = message.ip;
        let Some(spec) = self.commands.get(message.cmd_hash) else {
            self.metrics.unknown_command();
            tracing::warn!(
                "unknown command hash {:016x} for {ip}: nothing run",
                message.cmd_hash
            );
            return;
        };
        let spec = Arc::clone(spec);
        if !self.allow_non_routable && !is_routable(ip) {
            tracing::warn!(
                "refusing command {} for non-routable ip {ip} (set allow_non_routable_ips = true to allow)",
                spec.name
            );
            self.refused(&spec.name, ip, Refusal::NonRoutable.as_str());
            return;
        }
        if self.in_flight() >= MAX_IN_FLIGHT
            || (spec.undo.is_some() && !self.undos.has_room_for(&spec.name, ip))
        {
            tracing::error!(
                "refused command {} for {ip}: reason=busy (too many commands in flight or undos pending)",
                spec.name
            );
            self.refused(&spec.name, ip, Refusal::Busy.as_str());
            return;
        }
        if let Err(refusal) = self.gate.admit(&spec, ip, now_unix_ms()) {
            match refusal {
                Refusal::Cooldown { left_ms } => tracing::warn!(
                    "refused command {} for {ip}: reason=cooldown ({} ms left of cooldown_sec = {})",
                    spec.name,
                    left_ms,
                    spec.cooldown.map_or(0, |c| c.as_secs())
                ),
                Refusal::SingleFlight => tracing::warn!(
                    "refused command {} for {ip}: reason=single_flight (an instance is running)",
                    spec.name
                ),
                Refusal::Busy => tracing::error!(
                    "refused command {} for {ip}: reason=busy (cooldown table full)",
                    spec.name
                ),
                Refusal::NonRoutable => tracing::warn!(
                    "refused command {} for {ip}: reason=non_routable",
                    spec.name
                ),
            }
            self.refused(&spec.name, ip, refusal.as_str());
            return;
        }
        self.queue.push_back(Queued::Command { spec, ip });
        self.start_queued();
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.queue.len() + self.runner.count(|t| !matches!(t, Tag::Hook { .. }))
    }
}

/// Reads at most one byte more than a message, so an oversized one is seen as such
/// without reading an unbounded stream.
fn read_message(stream: UnixStream) -> std::io::Result<Vec<u8>> {
    // Accepted sockets are blocking (Linux does not inherit O_NONBLOCK); the timeout
    // bounds the wait.
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    let mut bytes = Vec::with_capacity(MESSAGE_LEN + 1);
    stream
        .take(MESSAGE_LEN as u64 + 1)
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}
