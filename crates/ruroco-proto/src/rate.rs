//! Rate limits for datagrams that passed every other check.
//!
//! Fixed one-second windows keyed by the real source address, plus one global window.
//! Only admitted datagrams are counted, and a source is only recorded while the global
//! budget has room, so the table never holds more than `global` entries.

use std::collections::HashMap;
use std::net::IpAddr;

use ruroco_ipc::normalize_ip;

use crate::NANOS_PER_SEC;

/// Per-source and global datagrams-per-second limits, with `now` passed in.
#[derive(Debug)]
pub struct RateLimiter {
    per_source: u32,
    global: u32,
    window: u128,
    global_count: u32,
    sources: HashMap<IpAddr, u32>,
}

impl RateLimiter {
    /// A limiter admitting `per_source` datagrams per second from one address and
    /// `global` per second in all.
    pub fn new(per_source: u32, global: u32) -> Self {
        Self {
            per_source,
            global,
            window: 0,
            global_count: 0,
            sources: HashMap::new(),
        }
    }

    /// Changes the limits (a reload); the current window's counts are kept.
    pub fn set_limits(&mut self, per_source: u32, global: u32) {
        self.per_source = per_source;
        self.global = global;
    }

    /// Admits (and counts) one datagram from `source` at `now` (ns since the epoch), or
    /// refuses it without counting.
    pub fn admit(&mut self, now: u128, source: IpAddr) -> bool {
        let window = now / NANOS_PER_SEC;
        if window != self.window {
            self.window = window;
            self.global_count = 0;
            self.sources.clear();
        }
        if self.global_count >= self.global {
            return false;
        }
        let count = self.sources.entry(normalize_ip(source)).or_insert(0);
        if *count >= self.per_source {
            return false;
        }
        *count += 1;
        self.global_count += 1;
        true
    }

    /// Number of sources currently tracked (bounded by the global limit).
    pub fn tracked_sources(&self) -> usize {
        self.sources.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u128 = NANOS_PER_SEC;

    fn ip(n: u32) -> IpAddr {
        IpAddr::from(n.to_be_bytes())
    }

    #[test]
    fn per_source_limit_resets_each_second() {
        let mut rl = RateLimiter::new(2, 100);
        assert!(rl.admit(10 * S, ip(1)));
        assert!(rl.admit(10 * S + 1, ip(1)));
        assert!(!rl.admit(10 * S + 2, ip(1)));
        assert!(
            rl.admit(10 * S + 3, ip(2)),
            "another source has its own budget"
        );
        assert!(rl.admit(11 * S, ip(1)), "a new second, a new budget");
    }

    #[test]
    fn global_limit_caps_all_sources_and_the_table() {
        let mut rl = RateLimiter::new(2, 5);
        let admitted = (0..1000).filter(|n| rl.admit(7 * S, ip(*n))).count();
        assert_eq!(admitted, 5);
        assert!(rl.tracked_sources() <= 5);
    }

    #[test]
    fn mapped_and_plain_ipv4_share_a_budget() {
        let mut rl = RateLimiter::new(1, 100);
        assert!(rl.admit(S, "1.2.3.4".parse().unwrap()));
        assert!(!rl.admit(S, "::ffff:1.2.3.4".parse().unwrap()));
    }
}
