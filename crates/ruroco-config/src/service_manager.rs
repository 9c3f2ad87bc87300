//! Telling systemd how a daemon is doing (the notify protocol, through `sd-notify`): ready
//! once it can do its job, reloading around a SIGHUP, a one-line status, and the watchdog
//! ping from the main loop. Without `NOTIFY_SOCKET` every call does nothing.

use std::time::{Duration, Instant};

use sd_notify::NotifyState;

/// The daemon's side of the notify protocol.
#[derive(Debug)]
pub struct ServiceManager {
    /// Half the watchdog interval systemd asked for, when it asked.
    ping_every: Option<Duration>,
    last_ping: Option<Instant>,
}

impl ServiceManager {
    /// Reads what systemd asked for (`WATCHDOG_USEC`).
    pub fn new() -> Self {
        let mut usec = 0;
        let ping_every = sd_notify::watchdog_enabled(false, &mut usec)
            .then(|| Duration::from_micros(usec / 2))
            .filter(|d| !d.is_zero());
        Self {
            ping_every,
            last_ping: None,
        }
    }

    /// `READY=1` with a status line.
    pub fn ready(&self, status: &str) {
        let _ = sd_notify::notify(false, &[NotifyState::Ready, NotifyState::Status(status)]);
    }

    /// `RELOADING=1` with the monotonic time systemd needs to match it.
    pub fn reloading(&self) {
        let mut states = vec![NotifyState::Reloading];
        if let Ok(now) = NotifyState::monotonic_usec_now() {
            states.push(now);
        }
        let _ = sd_notify::notify(false, &states);
    }

    /// `STOPPING=1`.
    pub fn stopping(&self) {
        let _ = sd_notify::notify(false, &[NotifyState::Stopping]);
    }

    /// `STATUS=…`.
    pub fn status(&self, status: &str) {
        let _ = sd_notify::notify(false, &[NotifyState::Status(status)]);
    }

    /// `WATCHDOG=1` when half the interval has passed since the last one; call it from the
    /// main loop (which turns at least once a second).
    pub fn watchdog(&mut self, now: Instant) {
        let Some(every) = self.ping_every else {
            return;
        };
        if self
            .last_ping
            .is_some_and(|at| now.saturating_duration_since(at) < every)
        {
            return;
        }
        self.last_ping = Some(now);
        let _ = sd_notify::notify(false, &[NotifyState::Watchdog]);
    }
}

impl Default for ServiceManager {
    fn default() -> Self {
        Self::new()
    }
}
