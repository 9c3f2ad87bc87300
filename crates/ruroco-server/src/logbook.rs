//! Counters per rejection reason, and log lines about bad traffic kept to a bounded rate.
//!
//! Each (source, reason) pair may log a few lines per window; further ones are counted and
//! summed up in one "suppressed" line when the window ends. At most `MAX_TRACKED` pairs are
//! tracked per window; beyond that, lines are only counted. So whatever arrives on the wire,
//! the log grows by at most `MAX_TRACKED * (LINES_PER_WINDOW + 1) + 2` lines per window and
//! the table never exceeds `MAX_TRACKED` entries.
//!
//! Rejections of authenticated datagrams (`replay`, `future`, `src_ip`, …) have a budget
//! of their own, per (key, reason), so that junk from spoofed sources can never use it up
//! and hide them. Only a loaded key's holder can produce one, so that table is bounded by
//! the number of keys (and, to be safe, by `MAX_TRACKED_KEYED`).

use std::collections::HashMap;
use std::net::IpAddr;

use ruroco_proto::{KeyId, Reason, Wire};

/// Length of a logging window, in seconds.
pub(crate) const WINDOW_SECS: u64 = 60;
/// Lines one (source, reason) pair may log per window.
pub(crate) const LINES_PER_WINDOW: u32 = 3;
/// Distinct (source, reason) pairs tracked per window.
pub(crate) const MAX_TRACKED: usize = 256;
/// Distinct (key, reason) pairs of authenticated rejections tracked per window.
pub(crate) const MAX_TRACKED_KEYED: usize = 4096;

#[derive(Debug, Default)]
struct Entry {
    logged: u32,
    suppressed: u64,
}

/// Rejection counters and the log limiter. `now` is monotonic seconds, passed in.
#[derive(Debug)]
pub(crate) struct Logbook {
    counts: [u64; Reason::ALL.len()],
    accepted: [u64; Wire::ALL.len()],
    reported: ([u64; Reason::ALL.len()], [u64; Wire::ALL.len()]),
    window_start: u64,
    lines: HashMap<(IpAddr, Reason), Entry>,
    keyed: HashMap<(KeyId, Reason), Entry>,
    untracked: u64,
}

impl Logbook {
    pub(crate) fn new(now: u64) -> Self {
        Self {
            counts: [0; Reason::ALL.len()],
            accepted: [0; Wire::ALL.len()],
            reported: ([0; Reason::ALL.len()], [0; Wire::ALL.len()]),
            window_start: now,
            lines: HashMap::new(),
            keyed: HashMap::new(),
            untracked: 0,
        }
    }

    /// Counts and (if the budget allows) logs one rejected datagram.
    pub(crate) fn rejected(
        &mut self,
        now: u64,
        source: IpAddr,
        reason: Reason,
        key: Option<KeyId>,
    ) {
        self.rejected_with(now, source, reason, key, None);
    }

    /// [`Logbook::rejected`] with a detail appended to the line (`dst=…` for `dst_ip`).
    pub(crate) fn rejected_with(
        &mut self,
        now: u64,
        source: IpAddr,
        reason: Reason,
        key: Option<KeyId>,
        detail: Option<String>,
    ) {
        self.tick(now);
        if let Some(count) = self.counts.get_mut(reason as usize) {
            *count = count.saturating_add(1);
        }
        let entry = match key {
            Some(key) => budget(&mut self.keyed, (key, reason), MAX_TRACKED_KEYED),
            None => budget(&mut self.lines, (source, reason), MAX_TRACKED),
        };
        let Some(entry) = entry else {
            self.untracked = self.untracked.saturating_add(1);
            return;
        };
        if entry.logged >= LINES_PER_WINDOW {
            entry.suppressed = entry.suppressed.saturating_add(1);
            return;
        }
        entry.logged += 1;
        let reason = reason.as_str();
        let detail = detail.map(|d| format!(" {d}")).unwrap_or_default();
        match key {
            Some(key) => tracing::warn!(
                outcome = "rejected",
                reason,
                src_ip = %source,
                key = %key,
                "rejected datagram from {source} reason={reason} key={key}{detail}"
            ),
            None => tracing::warn!(
                outcome = "rejected",
                reason,
                src_ip = %source,
                "rejected datagram from {source} reason={reason}{detail}"
            ),
        }
    }

    /// Counts one accepted datagram of format `wire`.
    pub(crate) fn accepted(&mut self, wire: Wire) {
        if let Some(count) = self.accepted.get_mut(wire as usize) {
            *count = count.saturating_add(1);
        }
    }

    /// The count for one reason.
    pub(crate) fn count(&self, reason: Reason) -> u64 {
        self.counts.get(reason as usize).copied().unwrap_or(0)
    }

    /// Ends the window if it is over: summaries of what was suppressed, and the counters
    /// if they changed.
    pub(crate) fn tick(&mut self, now: u64) {
        if now.saturating_sub(self.window_start) < WINDOW_SECS {
            return;
        }
        self.flush();
        self.window_start = now;
    }

    /// Writes the summaries and counters now (also used at shutdown).
    pub(crate) fn flush(&mut self) {
        for ((source, reason), entry) in self.lines.drain() {
            if entry.suppressed > 0 {
                tracing::warn!(
                    "suppressed {} further log lines for reason={} from {source}",
                    entry.suppressed,
                    reason.as_str()
                );
            }
        }
        for ((key, reason), entry) in self.keyed.drain() {
            if entry.suppressed > 0 {
                tracing::warn!(
                    "suppressed {} further log lines for reason={} key={key}",
                    entry.suppressed,
                    reason.as_str()
                );
            }
        }
        if self.untracked > 0 {
            tracing::warn!(
                "suppressed {} further log lines about bad datagrams from too many distinct sources",
                self.untracked
            );
            self.untracked = 0;
        }
        if self.reported != (self.counts, self.accepted) {
            self.reported = (self.counts, self.accepted);
            tracing::info!("{}", self.summary());
        }
    }

    /// Datagrams accepted in `wire` so far.
    pub(crate) fn accepted_count(&self, wire: Wire) -> u64 {
        self.accepted.get(wire as usize).copied().unwrap_or(0)
    }

    /// One line with every counter: accepted in all and by format, then each reason.
    pub(crate) fn summary(&self) -> String {
        let total: u64 = self.accepted.iter().sum();
        let mut line = format!("counters: accepted={total}");
        for wire in Wire::ALL {
            let count = self.accepted.get(wire as usize).copied().unwrap_or(0);
            line.push_str(&format!(" accepted_{wire}={count}"));
        }
        for reason in Reason::ALL {
            line.push_str(&format!(" {}={}", reason.as_str(), self.count(reason)));
        }
        line
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.lines.len()
    }
}

/// The entry of `at` in `table`, made if there is room for it.
fn budget<K: std::hash::Hash + Eq>(
    table: &mut HashMap<K, Entry>,
    at: K,
    max: usize,
) -> Option<&mut Entry> {
    if table.len() >= max && !table.contains_key(&at) {
        return None;
    }
    Some(table.entry(at).or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_every_rejection_but_tracks_a_bounded_table() {
        let mut book = Logbook::new(0);
        for n in 0..100_000u32 {
            book.rejected(1, IpAddr::from(n.to_be_bytes()), Reason::Auth, None);
        }
        assert_eq!(book.count(Reason::Auth), 100_000);
        assert_eq!(book.tracked(), MAX_TRACKED);
        assert_eq!(book.untracked, 100_000 - MAX_TRACKED as u64);
        book.tick(WINDOW_SECS + 1);
        assert_eq!(book.tracked(), 0);
        assert_eq!(book.untracked, 0);
        assert_eq!(
            book.count(Reason::Auth),
            100_000,
            "counters outlive windows"
        );
    }

    #[test]
    fn junk_from_many_sources_never_hides_an_authenticated_rejection() {
        let mut book = Logbook::new(0);
        for n in 0..10_000u32 {
            book.rejected(1, IpAddr::from(n.to_be_bytes()), Reason::Size, None);
        }
        assert_eq!(book.tracked(), MAX_TRACKED);
        let key = KeyId([7; 8]);
        let ip: IpAddr = "198.51.100.9".parse().unwrap();
        for reason in [Reason::Replay, Reason::SrcIp, Reason::Future, Reason::Rate] {
            book.rejected(1, ip, reason, Some(key));
            assert_eq!(
                book.keyed.get(&(key, reason)).unwrap().logged,
                1,
                "{reason:?}"
            );
        }
        // Its own budget is bounded too: a few lines per key and reason.
        for _ in 0..100 {
            book.rejected(1, ip, Reason::Replay, Some(key));
        }
        let entry = book.keyed.get(&(key, Reason::Replay)).unwrap();
        assert_eq!(
            (entry.logged, entry.suppressed),
            (LINES_PER_WINDOW, 101 - u64::from(LINES_PER_WINDOW))
        );
    }

    #[test]
    fn summary_names_each_format() {
        let mut book = Logbook::new(0);
        book.accepted(Wire::V0);
        book.accepted(Wire::V1);
        book.accepted(Wire::V1);
        book.rejected(1, "192.0.2.1".parse().unwrap(), Reason::Size, None);
        assert_eq!(
            book.summary(),
            "counters: accepted=3 accepted_v0=1 accepted_v1=2 size=1 unknown_key=0 auth=0 \
             version=0 replay=0 future=0 dst_ip=0 src_ip=0 rate=0 not_allowed=0"
        );
    }

    #[test]
    fn one_source_logs_a_few_lines_then_is_suppressed() {
        let mut book = Logbook::new(0);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..50 {
            book.rejected(1, ip, Reason::Size, None);
        }
        let entry = book.lines.get(&(ip, Reason::Size)).unwrap();
        assert_eq!(entry.logged, LINES_PER_WINDOW);
        assert_eq!(entry.suppressed, 50 - u64::from(LINES_PER_WINDOW));
    }
}
