//! Pending undos: which (command, IP) gets which undo line, and when. Pure; `now` is
//! milliseconds since the Unix epoch, passed in (deadlines must survive restarts, so they
//! are wall-clock times).
//!
//! There is never more than one pending undo per (command, IP): a new successful run moves
//! the deadline. An entry keeps the undo line and timeout it was scheduled with, so an
//! edited or removed command still gets exactly the undo that matches what ran. An entry
//! stays in the schedule (and in the state file) while its undo runs, so a crash in the
//! middle runs it again at the next start rather than never.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// Pending undos kept at once; past that, a command with an undo is refused before it runs.
pub(crate) const MAX_PENDING: usize = 10_000;

/// One pending undo, as stored in the state file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PendingUndo {
    /// The command that ran.
    pub(crate) command: String,
    /// Its `RUROCO_IP`.
    pub(crate) ip: IpAddr,
    /// When the undo is due, ms since the Unix epoch.
    pub(crate) due_unix_ms: u64,
    /// The undo line, as configured when the command ran.
    pub(crate) undo: String,
    /// Its timeout.
    pub(crate) timeout_sec: u64,
}

/// The state file's contents.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFile {
    #[serde(default)]
    undo: Vec<PendingUndo>,
}

#[derive(Debug)]
struct Entry {
    undo: PendingUndo,
    /// Changes whenever the entry is (re)scheduled.
    generation: u64,
    running: bool,
}

/// A due undo handed out to run; [`Schedule::finished`] with it when it is done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ticket {
    pub(crate) undo: PendingUndo,
    generation: u64,
}

/// The table is full.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Full;

/// All pending undos.
#[derive(Debug, Default)]
pub(crate) struct Schedule {
    entries: BTreeMap<(String, IpAddr), Entry>,
    generation: u64,
}

impl Schedule {
    /// A schedule holding `undos` (as loaded from the state file); duplicates keep the
    /// latest deadline.
    pub(crate) fn from_pending(undos: Vec<PendingUndo>) -> Self {
        let mut schedule = Schedule::default();
        for undo in undos {
            let later = schedule
                .entries
                .get(&(undo.command.clone(), undo.ip))
                .is_none_or(|e| e.undo.due_unix_ms <= undo.due_unix_ms);
            if later {
                schedule.insert(undo);
            }
        }
        schedule
    }

    /// Schedules (or moves) the undo of `undo.command` for `undo.ip`.
    pub(crate) fn schedule(&mut self, undo: PendingUndo) -> Result<(), Full> {
        let key = (undo.command.clone(), undo.ip);
        if !self.entries.contains_key(&key) && self.entries.len() >= MAX_PENDING {
            return Err(Full);
        }
        self.insert(undo);
        Ok(())
    }

    fn insert(&mut self, undo: PendingUndo) {
        self.generation += 1;
        let key = (undo.command.clone(), undo.ip);
        let entry = Entry {
            undo,
            generation: self.generation,
            running: false,
        };
        self.entries.insert(key, entry);
    }

    /// Whether a new entry could be added.
    pub(crate) fn has_room_for(&self, command: &str, ip: IpAddr) -> bool {
        self.entries.len() < MAX_PENDING || self.entries.contains_key(&(command.to_owned(), ip))
    }

    /// Hands out every undo due at `now` that is not already running, marking it running.
    pub(crate) fn take_due(&mut self, now: u64) -> Vec<Ticket> {
        self.entries
            .values_mut()
            .filter(|e| !e.running && e.undo.due_unix_ms <= now)
            .map(|e| {
                e.running = true;
                Ticket {
                    undo: e.undo.clone(),
                    generation: e.generation,
                }
            })
            .collect()
    }

    /// The undo of `ticket` has run: its entry goes, unless it was rescheduled meanwhile.
    /// Returns whether the schedule changed.
    pub(crate) fn finished(&mut self, ticket: &Ticket) -> bool {
        let key = (ticket.undo.command.clone(), ticket.undo.ip);
        if self
            .entries
            .get(&key)
            .is_some_and(|e| e.generation == ticket.generation)
        {
            self.entries.remove(&key);
            return true;
        }
        false
    }

    /// Whether `ticket` is still what its entry holds (not moved by a new run since it
    /// was handed out).
    pub(crate) fn is_current(&self, ticket: &Ticket) -> bool {
        let key = (ticket.undo.command.clone(), ticket.undo.ip);
        self.entries
            .get(&key)
            .is_some_and(|e| e.generation == ticket.generation)
    }

    /// When the undo of `command` for `ip` is due, if one is pending.
    pub(crate) fn due(&self, command: &str, ip: IpAddr) -> Option<u64> {
        self.entries
            .get(&(command.to_owned(), ip))
            .map(|e| e.undo.due_unix_ms)
    }

    /// The earliest deadline of an undo not yet running.
    pub(crate) fn next_due(&self) -> Option<u64> {
        self.entries
            .values()
            .filter(|e| !e.running)
            .map(|e| e.undo.due_unix_ms)
            .min()
    }

    /// Every pending undo, earliest first.
    pub(crate) fn list(&self) -> Vec<PendingUndo> {
        let mut all: Vec<PendingUndo> = self.entries.values().map(|e| e.undo.clone()).collect();
        all.sort_by_key(|u| u.due_unix_ms);
        all
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The state file's text.
    pub(crate) fn encode(&self) -> Result<String, String> {
        let file = StateFile { undo: self.list() };
        let body = toml::to_string(&file).map_err(|e| e.to_string())?;
        Ok(format!(
            "# Pending undos of ruroco-commander (`ruroco-commander pending` lists them).\n\
             # Written by the commander; stop it before editing.\n{body}"
        ))
    }
}

/// Parses a state file's text; the error names the line.
pub(crate) fn decode(text: &str) -> Result<Vec<PendingUndo>, String> {
    let file: StateFile =
        toml::from_str(text).map_err(|e| ruroco_config::describe_toml_error(text, &e))?;
    Ok(file.undo)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn undo(command: &str, ip: &str, due: u64) -> PendingUndo {
        PendingUndo {
            command: command.into(),
            ip: ip.parse().unwrap(),
            due_unix_ms: due,
            undo: format!("close {command}"),
            timeout_sec: 30,
        }
    }

    #[test]
    fn one_entry_per_command_and_ip_and_a_new_run_moves_the_deadline() {
        let mut s = Schedule::default();
        s.schedule(undo("open_ssh", "192.0.2.1", 100)).unwrap();
        s.schedule(undo("open_ssh", "192.0.2.2", 150)).unwrap();
        s.schedule(undo("open_ssh", "192.0.2.1", 200)).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s.next_due(), Some(150));
        assert!(s.take_due(149).is_empty());
        let due = s.take_due(200);
        assert_eq!(due.len(), 2);
        assert!(
            s.take_due(1_000).is_empty(),
            "running undos are not handed out twice"
        );
        assert_eq!(s.next_due(), None);
        for t in &due {
            assert!(s.finished(t));
        }
        assert_eq!(s.len(), 0);
    }

    #[test]
    fn a_reschedule_while_the_undo_runs_survives_it() {
        let mut s = Schedule::default();
        s.schedule(undo("open_ssh", "192.0.2.1", 100)).unwrap();
        let t = s.take_due(100).pop().unwrap();
        s.schedule(undo("open_ssh", "192.0.2.1", 500)).unwrap();
        assert!(!s.is_current(&t));
        assert!(!s.finished(&t));
        assert_eq!(s.list(), vec![undo("open_ssh", "192.0.2.1", 500)]);
        assert_eq!(s.due("open_ssh", "192.0.2.1".parse().unwrap()), Some(500));
        assert_eq!(s.next_due(), Some(500));
    }

    #[test]
    fn state_file_round_trip_and_errors() {
        let mut s = Schedule::default();
        s.schedule(undo("open_ssh", "2001:db8::1", 100)).unwrap();
        s.schedule(undo("deploy", "192.0.2.1", 50)).unwrap();
        let text = s.encode().unwrap();
        let back = decode(&text).unwrap();
        assert_eq!(back, s.list());
        assert_eq!(decode("").unwrap(), vec![]);
        for bad in [
            "[[undo]]\ncommand = \"x\"\n",
            "[[undo]]\ncommand = \"x\"\nip = \"nope\"\ndue_unix_ms = 1\nundo = \"u\"\ntimeout_sec = 1\n",
            "garbage",
            "[[undo]]\ncommand = \"x\"\nip = \"192.0.2.1\"\ndue_unix_ms = 1\nundo = \"u\"\ntimeout_sec = 1\nextra = 1\n",
        ] {
            let err = decode(bad).unwrap_err();
            assert!(err.contains("line"), "{bad}: {err}");
        }
        // Duplicates in a hand-edited file keep the latest deadline.
        let s = Schedule::from_pending(vec![
            undo("a", "192.0.2.1", 300),
            undo("a", "192.0.2.1", 100),
        ]);
        assert_eq!(s.list(), vec![undo("a", "192.0.2.1", 300)]);
    }

    #[test]
    fn the_table_is_bounded() {
        let mut s = Schedule::default();
        for i in 0..MAX_PENDING {
            let ip = std::net::Ipv6Addr::from(i as u128).to_string();
            s.schedule(undo("a", &ip, 1)).unwrap();
        }
        assert!(!s.has_room_for("a", "2001:db8::1".parse().unwrap()));
        assert_eq!(s.schedule(undo("a", "2001:db8::1", 1)), Err(Full));
        // Moving an existing entry is always possible.
        assert!(s.has_room_for("a", "::1".parse().unwrap()));
        s.schedule(undo("a", "::1", 5)).unwrap();
    }
}
