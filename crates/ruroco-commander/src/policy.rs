//! Cooldown and single flight: whether a request may start now. Pure; `now` (milliseconds
//! on any clock that does not go backwards) is an argument.
//!
//! - `cooldown_sec = N`: a request for the same (command, IP) within N s of the last start
//!   is refused.
//! - `single_flight = true`: while an instance of the command runs or waits for a slot,
//!   further requests for it are refused, not queued.
//!
//! Memory is bounded: a cooldown entry is dropped once its window has passed, and at most
//! [`MAX_COOLDOWNS`] windows are tracked; past that a request with a cooldown is refused
//! (`busy`) rather than let through unchecked.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::commands::CommandSpec;

/// Cooldown windows tracked at once.
pub(crate) const MAX_COOLDOWNS: usize = 65_536;

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Within the cooldown of the last start for this (command, IP); ms left.
    Cooldown { left_ms: u64 },
    /// An instance of this single-flight command is running.
    SingleFlight,
    /// Too much in flight or tracked; nothing can be taken on now.
    Busy,
    /// The address is loopback, private, link-local, … and `allow_non_routable_ips` is off.
    NonRoutable,
}

impl Refusal {
    /// The reason as logged and given to hooks in `RUROCO_REASON`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Refusal::Cooldown { .. } => "cooldown",
            Refusal::SingleFlight => "single_flight",
            Refusal::Busy => "busy",
            Refusal::NonRoutable => "non_routable",
        }
    }
}

/// The gate every request passes before it is queued.
#[derive(Debug, Default)]
pub(crate) struct Gate {
    /// (command, IP) → end of its cooldown window, ms.
    cooldown_until: HashMap<(String, IpAddr), u64>,
    /// command → instances running or waiting.
    in_flight: HashMap<String, usize>,
}

impl Gate {
    /// Admits `spec` for `ip` at `now` (then counts it as in flight until [`Gate::finished`])
    /// or says why not.
    pub(crate) fn admit(
        &mut self,
        spec: &CommandSpec,
        ip: IpAddr,
        now: u64,
    ) -> Result<(), Refusal> {
        if spec.single_flight && self.in_flight.get(&spec.name).is_some_and(|n| *n > 0) {
            return Err(Refusal::SingleFlight);
        }
        if let Some(cooldown) = spec.cooldown {
            let key = (spec.name.clone(), ip);
            if let Some(until) = self.cooldown_until.get(&key) {
                if now < *until {
                    return Err(Refusal::Cooldown {
                        left_ms: until - now,
                    });
                }
            }
            if !self.cooldown_until.contains_key(&key) && self.cooldown_until.len() >= MAX_COOLDOWNS
            {
                self.cooldown_until.retain(|_, until| *until > now);
                if self.cooldown_until.len() >= MAX_COOLDOWNS {
                    return Err(Refusal::Busy);
                }
            }
            let window = u64::try_from(cooldown.as_millis()).unwrap_or(u64::MAX);
            self.cooldown_until.insert(key, now.saturating_add(window));
        }
        *self.in_flight.entry(spec.name.clone()).or_default() += 1;
        Ok(())
    }

    /// An admitted instance of `name` has finished (or was never started after all).
    pub(crate) fn finished(&mut self, name: &str) {
        if let Some(n) = self.in_flight.get_mut(name) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.in_flight.remove(name);
            }
        }
    }

    /// Forgets cooldown windows that have passed; call now and then.
    pub(crate) fn prune(&mut self, now: u64) {
        self.cooldown_until.retain(|_, until| *until > now);
    }

    /// Cooldown windows tracked now.
    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.cooldown_until.len()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn spec(cooldown: Option<u64>, single_flight: bool) -> CommandSpec {
        let mut s = CommandSpec::plain("open_ssh", "true", Duration::from_secs(5));
        s.cooldown = cooldown.map(Duration::from_secs);
        s.single_flight = single_flight;
        s
    }

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));

    #[test]
    fn cooldown_is_per_command_and_ip_from_the_last_start() {
        let mut g = Gate::default();
        let s = spec(Some(10), false);
        assert_eq!(g.admit(&s, A, 1_000), Ok(()));
        assert_eq!(
            g.admit(&s, A, 4_000),
            Err(Refusal::Cooldown { left_ms: 7_000 })
        );
        assert_eq!(
            g.admit(&s, B, 4_000),
            Ok(()),
            "another IP has its own window"
        );
        // A refused request does not move the window: it ends 10 s after the last start.
        assert_eq!(g.admit(&s, A, 11_000), Ok(()));
        assert!(g.admit(&s, A, 20_999).is_err());
        assert_eq!(g.admit(&s, A, 21_000), Ok(()));
        // Without a cooldown nothing is tracked.
        let free = spec(None, false);
        let mut g = Gate::default();
        for t in 0..5 {
            assert_eq!(g.admit(&free, A, t), Ok(()));
        }
        assert_eq!(g.tracked(), 0);
    }

    #[test]
    fn single_flight_refuses_while_one_is_in_flight() {
        let mut g = Gate::default();
        let s = spec(None, true);
        assert_eq!(g.admit(&s, A, 0), Ok(()));
        assert_eq!(g.admit(&s, B, 1), Err(Refusal::SingleFlight));
        g.finished("open_ssh");
        assert_eq!(g.admit(&s, B, 2), Ok(()));
        // Ordinary commands run side by side.
        let mut g = Gate::default();
        let s = spec(None, false);
        assert_eq!(g.admit(&s, A, 0), Ok(()));
        assert_eq!(g.admit(&s, A, 0), Ok(()));
    }

    #[test]
    fn cooldown_table_is_bounded() {
        let mut g = Gate::default();
        let s = spec(Some(1), false);
        for i in 0..MAX_COOLDOWNS {
            let ip = IpAddr::V6(std::net::Ipv6Addr::from(i as u128));
            assert_eq!(g.admit(&s, ip, 0), Ok(()));
        }
        let extra = IpAddr::V6(std::net::Ipv6Addr::from(u128::MAX));
        assert_eq!(g.admit(&s, extra, 500), Err(Refusal::Busy));
        // Once the windows have passed they make room again.
        assert_eq!(g.admit(&s, extra, 1_000), Ok(()));
        assert_eq!(g.tracked(), 1);
        g.prune(5_000);
        assert_eq!(g.tracked(), 0);
    }
}
