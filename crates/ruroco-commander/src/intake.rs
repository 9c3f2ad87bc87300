//! Taking messages in: accepting connections on the socket, reading exactly one message
//! each, and admitting its command (known, routable, within the bounds, past the gate)
//! or refusing it with one log line.
//!
//! Connections are non-blocking and read by the event loop when `poll` says they have
//! something, each with its own deadline: a peer that connects and stalls costs one slot
//! until its deadline, never the loop's time (a blocking read would hold up job timeouts
//! and undos for as long as such peers keep coming).

use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ruroco_ipc::{is_routable, CommanderMessage, MESSAGE_LEN};

use crate::clock::now_mono_ms;
use crate::policy::Refusal;
use crate::service::Service;

/// Connections taken per wake-up, so a flood cannot starve the running jobs.
const ACCEPTS_PER_WAKE: usize = 64;
/// Connections being read at once; while this many are open the listener is not polled
/// (new ones wait in its backlog).
pub(crate) const MAX_OPEN: usize = 64;
/// How long a connection may take to deliver its message.
const READ_TIMEOUT: Duration = Duration::from_secs(1);

/// A connection whose message is still arriving.
#[derive(Debug)]
pub(crate) struct Incoming {
    stream: UnixStream,
    bytes: Vec<u8>,
    deadline: Instant,
}

/// The connections being read.
#[derive(Debug, Default)]
pub(crate) struct Intake {
    open: Vec<Incoming>,
}

impl Intake {
    /// Whether another connection may be taken.
    pub(crate) fn has_room(&self) -> bool {
        self.open.len() < MAX_OPEN
    }

    /// The descriptors to poll for reading.
    pub(crate) fn fds(&self) -> Vec<BorrowedFd<'_>> {
        self.open.iter().map(|c| c.stream.as_fd()).collect()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    /// The nearest deadline.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.open.iter().map(|c| c.deadline).min()
    }

    fn add(&mut self, stream: UnixStream, now: Instant) -> std::io::Result<()> {
        stream.set_nonblocking(true)?;
        self.open.push(Incoming {
            stream,
            bytes: Vec::with_capacity(MESSAGE_LEN + 1),
            deadline: now + READ_TIMEOUT,
        });
        Ok(())
    }

    /// Reads what the ready connections have; returns the complete messages (the bytes up
    /// to end of stream, or one byte past a message) in the order their connections were
    /// accepted, and how many connections missed their deadline (dropped). Removal keeps
    /// the order of the rest: the server hands over in the order it accepted, and what
    /// waited in the backlog runs in that order.
    fn service(&mut self, now: Instant, ready: &[RawFd]) -> (Vec<std::io::Result<Vec<u8>>>, usize) {
        let mut done = Vec::new();
        let mut expired = 0;
        let mut i = 0;
        while let Some(conn) = self.open.get_mut(i) {
            let finished = if ready.contains(&conn.stream.as_raw_fd()) {
                read_some(conn)
            } else {
                None
            };
            match finished {
                Some(result) => {
                    done.push(result);
                    self.open.remove(i);
                }
                None if now >= conn.deadline => {
                    expired += 1;
                    self.open.remove(i);
                }
                None => i += 1,
            }
        }
        (done, expired)
    }
}

/// Reads what is there, at most one byte more than a message: `Some` once the message is
/// complete (end of stream or oversized) or the read failed, `None` while more may come.
fn read_some(conn: &mut Incoming) -> Option<std::io::Result<Vec<u8>>> {
    let mut buf = [0u8; MESSAGE_LEN + 1];
    loop {
        let room = (MESSAGE_LEN + 1).saturating_sub(conn.bytes.len());
        let Some(buf) = buf.get_mut(..room) else {
            return Some(Ok(std::mem::take(&mut conn.bytes)));
        };
        match conn.stream.read(buf) {
            Ok(0) => return Some(Ok(std::mem::take(&mut conn.bytes))),
            Ok(n) => {
                conn.bytes
                    .extend_from_slice(buf.get(..n).unwrap_or_default());
                if conn.bytes.len() > MESSAGE_LEN {
                    return Some(Ok(std::mem::take(&mut conn.bytes)));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return None,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Some(Err(e)),
        }
    }
}

impl Service {
    /// Takes what waits in the listener's backlog, without waiting; whether anything was
    /// taken (so the caller may ask again).
    pub(crate) fn accept_backlog(&mut self) -> bool {
        let before = self.intake.open.len();
        self.accept();
        self.intake.open.len() > before
    }

    /// Takes new connections while there is room; they are read as data arrives.
    pub(crate) fn accept(&mut self) {
        for _ in 0..ACCEPTS_PER_WAKE {
            if !self.intake.has_room() {
                return;
            }
            let Some(socket) = &self.socket else { return };
            match socket.listener.accept() {
                Ok((stream, _)) => {
                    if let Err(e) = self.intake.add(stream, Instant::now()) {
                        tracing::warn!("could not take a connection: {e}");
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    tracing::error!("accept on {} failed: {e}", socket.path.display());
                    return;
                }
            }
        }
    }

    /// Reads the connections `poll` found ready, handles complete messages and drops
    /// connections past their deadline.
    pub(crate) fn read_incoming(&mut self, ready: &[RawFd]) {
        let (done, expired) = self.intake.service(Instant::now(), ready);
        if expired > 0 {
            tracing::warn!(
                "dropped {expired} connection(s) that sent no complete message within {} ms; nothing run",
                READ_TIMEOUT.as_millis()
            );
        }
        for result in done {
            self.handle(result);
        }
    }

    /// One connection's bytes: exactly 24, then end of stream.
    fn handle(&mut self, read: std::io::Result<Vec<u8>>) {
        let bytes = match read {
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
            if let Some(problem) = &self.commands_refused {
                tracing::error!(
                    client_ip = %ip, outcome = "refused", reason = "commands_file_refused", cmd_hash = %format_args!("{:016x}", message.cmd_hash),
                    "command hash {:016x} for {ip}: nothing run, the commands file is refused: {problem}",
                    message.cmd_hash
                );
                return;
            }
            tracing::warn!(
                client_ip = %ip, outcome = "unknown_command", cmd_hash = %format_args!("{:016x}", message.cmd_hash),
                "unknown command hash {:016x} for {ip}: nothing run",
                message.cmd_hash
            );
            return;
        };
        let spec = Arc::clone(spec);
        if !self.allow_non_routable && !is_routable(ip) {
            tracing::warn!(
                command = %spec.name, client_ip = %ip, outcome = "refused", reason = "non_routable",
                "refusing command {} for non-routable ip {ip} (set allow_non_routable_ips = true to allow)",
                spec.name
            );
            self.refused(&spec.name, ip, Refusal::NonRoutable.as_str());
            return;
        }
        if !self.has_room_for(&spec, ip) {
            tracing::error!(
                command = %spec.name, client_ip = %ip, outcome = "refused", reason = "busy",
                "refused command {} for {ip}: reason=busy (too many commands in flight or undos pending)",
                spec.name
            );
            self.refused(&spec.name, ip, Refusal::Busy.as_str());
            return;
        }
        if let Err(refusal) = self.gate.admit(&spec, ip, now_mono_ms()) {
            match refusal {
                Refusal::Cooldown { left_ms } => tracing::warn!(
                    command = %spec.name, client_ip = %ip, outcome = "refused", reason = "cooldown",
                    "refused command {} for {ip}: reason=cooldown ({} ms left of cooldown_sec = {})",
                    spec.name,
                    left_ms,
                    spec.cooldown.map_or(0, |c| c.as_secs())
                ),
                Refusal::SingleFlight => tracing::warn!(
                    command = %spec.name, client_ip = %ip, outcome = "refused", reason = "single_flight",
                    "refused command {} for {ip}: reason=single_flight (an instance is running)",
                    spec.name
                ),
                Refusal::Busy => tracing::error!(
                    command = %spec.name, client_ip = %ip, outcome = "refused", reason = "busy",
                    "refused command {} for {ip}: reason=busy (cooldown table full)",
                    spec.name
                ),
                Refusal::NonRoutable => tracing::warn!(
                    command = %spec.name, client_ip = %ip, outcome = "refused", reason = "non_routable",
                    "refused command {} for {ip}: reason=non_routable",
                    spec.name
                ),
            }
            self.refused(&spec.name, ip, refusal.as_str());
            return;
        }
        self.enqueue(spec, ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Messages that are all complete at once come out in the order their connections
    /// were accepted (a removal by swapping would put the last one second).
    #[test]
    fn complete_messages_keep_the_order_of_their_connections() {
        let mut intake = Intake::default();
        let now = Instant::now();
        let mut peers = Vec::new();
        for i in 0..5u8 {
            let (ours, theirs) = UnixStream::pair().unwrap();
            intake.add(ours, now).unwrap();
            peers.push((i, theirs));
        }
        for (i, peer) in &mut peers {
            peer.write_all(&[*i; MESSAGE_LEN]).unwrap();
            peer.shutdown(std::net::Shutdown::Write).unwrap();
        }
        let ready: Vec<RawFd> = intake.open.iter().map(|c| c.stream.as_raw_fd()).collect();
        let (done, expired) = intake.service(now, &ready);
        assert_eq!(expired, 0);
        let firsts: Vec<u8> = done
            .into_iter()
            .map(|r| r.unwrap().first().copied().unwrap())
            .collect();
        assert_eq!(firsts, vec![0, 1, 2, 3, 4]);
        assert!(intake.is_empty());
    }

    /// Expired connections leave the others in order.
    #[test]
    fn expiry_keeps_the_order_of_the_rest() {
        let start = Instant::now();
        // 0 and 2 were accepted a second earlier and say nothing: they expire; 1 and 3
        // complete in the same pass.
        let mut intake = Intake::default();
        let mut peers = Vec::new();
        for i in 0..4u8 {
            let (ours, theirs) = UnixStream::pair().unwrap();
            let at = if i % 2 == 0 {
                start
            } else {
                start + READ_TIMEOUT
            };
            intake.add(ours, at).unwrap();
            peers.push((i, theirs));
        }
        for (i, peer) in peers.iter_mut().filter(|(i, _)| i % 2 == 1) {
            peer.write_all(&[*i; MESSAGE_LEN]).unwrap();
            peer.shutdown(std::net::Shutdown::Write).unwrap();
        }
        let ready: Vec<RawFd> = intake.open.iter().map(|c| c.stream.as_raw_fd()).collect();
        let (done, expired) = intake.service(start + READ_TIMEOUT, &ready);
        assert_eq!(expired, 2);
        let firsts: Vec<u8> = done
            .into_iter()
            .map(|r| r.unwrap().first().copied().unwrap())
            .collect();
        assert_eq!(firsts, vec![1, 3]);
    }
}
