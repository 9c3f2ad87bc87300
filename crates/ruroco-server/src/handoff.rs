//! Commands waiting for the commander. An accepted datagram's floor is already spent, so a
//! command that cannot be handed over right away (the commander restarting, upgraded,
//! not yet up at boot) is kept and retried rather than dropped: for up to [`PATIENCE`], at
//! most [`MAX_WAITING`] at once, in order. Past either bound the oldest is given up, and
//! the caller logs and counts it. Pure: `now` is an argument.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use ruroco_proto::{CommanderMessage, KeyId};

/// How long a command waits for the commander before it is given up.
pub(crate) const PATIENCE: Duration = Duration::from_secs(5);
/// Commands waiting at once.
pub(crate) const MAX_WAITING: usize = 1024;
/// Pause between attempts while the commander is unreachable.
pub(crate) const RETRY_EVERY: Duration = Duration::from_millis(50);

/// One command waiting for the commander.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Waiting {
    pub(crate) message: CommanderMessage,
    pub(crate) source: IpAddr,
    pub(crate) key: KeyId,
    pub(crate) since: Instant,
}

/// The waiting commands, oldest first.
#[derive(Debug, Default)]
pub(crate) struct Handoff {
    queue: VecDeque<Waiting>,
    next_try: Option<Instant>,
}

impl Handoff {
    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }

    /// Adds a command; returns the oldest one if the queue was full (given up).
    pub(crate) fn push(&mut self, waiting: Waiting) -> Option<Waiting> {
        let evicted = if self.queue.len() >= MAX_WAITING {
            self.queue.pop_front()
        } else {
            None
        };
        self.queue.push_back(waiting);
        evicted
    }

    /// Removes and returns the commands that waited longer than [`PATIENCE`].
    pub(crate) fn expired(&mut self, now: Instant) -> Vec<Waiting> {
        let mut gone = Vec::new();
        while self
            .queue
            .front()
            .is_some_and(|w| now.saturating_duration_since(w.since) >= PATIENCE)
        {
            gone.extend(self.queue.pop_front());
        }
        gone
    }

    /// Whether an attempt is due at `now`.
    pub(crate) fn due(&self, now: Instant) -> bool {
        !self.queue.is_empty() && self.next_try.is_none_or(|at| now >= at)
    }

    /// Hands commands over in order with `send` until one fails (the next attempt is then
    /// [`RETRY_EVERY`] later); returns those handed over.
    pub(crate) fn drain(
        &mut self,
        now: Instant,
        mut send: impl FnMut(&Waiting) -> bool,
    ) -> Vec<Waiting> {
        let mut sent = Vec::new();
        while let Some(front) = self.queue.front() {
            if !send(front) {
                self.next_try = Some(now + RETRY_EVERY);
                return sent;
            }
            sent.extend(self.queue.pop_front());
        }
        self.next_try = None;
        sent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiting(n: u64, since: Instant) -> Waiting {
        Waiting {
            message: CommanderMessage {
                cmd_hash: n,
                ip: "192.0.2.1".parse().unwrap(),
            },
            source: "192.0.2.1".parse().unwrap(),
            key: KeyId([1; 8]),
            since,
        }
    }

    #[test]
    fn in_order_until_one_fails_then_later() {
        let t0 = Instant::now();
        let mut h = Handoff::default();
        for n in 0..3 {
            assert!(h.push(waiting(n, t0)).is_none());
        }
        assert!(h.due(t0));
        let mut calls = Vec::new();
        let sent = h.drain(t0, |w| {
            calls.push(w.message.cmd_hash);
            w.message.cmd_hash == 0
        });
        assert_eq!(sent.len(), 1);
        assert_eq!(calls, [0, 1]);
        assert!(!h.due(t0 + Duration::from_millis(10)));
        assert!(h.due(t0 + RETRY_EVERY));
        let sent = h.drain(t0 + RETRY_EVERY, |_| true);
        assert_eq!(
            sent.iter().map(|w| w.message.cmd_hash).collect::<Vec<_>>(),
            [1, 2]
        );
        assert!(h.is_empty() && !h.due(t0 + RETRY_EVERY));
    }

    #[test]
    fn bounded_in_time_and_number_oldest_first() {
        let t0 = Instant::now();
        let mut h = Handoff::default();
        h.push(waiting(0, t0));
        h.push(waiting(1, t0 + Duration::from_secs(1)));
        let gone = h.expired(t0 + PATIENCE);
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].message.cmd_hash, 0);
        assert_eq!(h.len(), 1);
        for n in 0..MAX_WAITING as u64 {
            h.push(waiting(100 + n, t0));
        }
        let evicted = h.push(waiting(9999, t0)).unwrap();
        assert_eq!(evicted.message.cmd_hash, 100);
        assert_eq!(h.len(), MAX_WAITING);
    }
}
