//! The replay state of every key: its floor, and the authentic counters above it that were
//! refused as too far in the future and so must never be accepted later.
//!
//! Why the second part: a datagram refused as `future` is authentic and stays authentic.
//! Once the clock catches up it would be inside the skew and above the floor, so a
//! listener who recorded it could have it accepted then. Raising the floor to it instead
//! would lock the key out until the clock reaches that counter. So its counter is
//! remembered (at most [`MAX_REFUSED_PER_KEY`] per key, dropped once the floor passes it);
//! only authenticated datagrams can add one, so no stranger can fill the set.

use std::collections::{BTreeSet, HashMap};

use crate::key::KeyId;

/// How far before "now" a key that has no floor yet is seeded: the datagram that woke a
/// socket-activated server (or was sent just before the reload that added its key) was
/// made a moment before the server looked at the clock, and must run. What this leaves
/// open is narrow: a datagram made in those seconds for a key this server, its shared
/// store and the original server's floors have no floor for — so none of them ever
/// accepted anything for it — unless its floor was lost (`floors.bin` deleted).
pub const SEED_GRACE_NANOS: u128 = 10 * 1_000_000_000;

/// The floor a key without one gets when the server's clock says `now`.
pub fn seed_floor(now: u128) -> u128 {
    now.saturating_sub(SEED_GRACE_NANOS)
}

/// Refused future counters kept per key. Past this, the smallest one becomes the floor:
/// the guarantee holds, at the cost of refusing that key's counters below it until its
/// clock passes it (which only a client whose clock keeps running far ahead can cause).
pub const MAX_REFUSED_PER_KEY: usize = 32;

/// Floors and refused counters of every key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FloorTable {
    floors: HashMap<KeyId, u128>,
    refused: HashMap<KeyId, BTreeSet<u128>>,
}

impl FloorTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// The floor for `id`, if one is known.
    pub fn get(&self, id: &KeyId) -> Option<u128> {
        self.floors.get(id).copied()
    }

    /// Raises the floor for `id` to `floor` (a lower value leaves it as it is) and forgets
    /// the refused counters it passes.
    pub fn set(&mut self, id: KeyId, floor: u128) {
        let entry = self.floors.entry(id).or_insert(floor);
        *entry = (*entry).max(floor);
        let floor = *entry;
        if let Some(set) = self.refused.get_mut(&id) {
            set.retain(|c| *c > floor);
            if set.is_empty() {
                self.refused.remove(&id);
            }
        }
    }

    /// Gives every id without a floor the floor `now` (the server passes
    /// [`seed_floor`] of its clock), so that no datagram made before then is accepted.
    /// Existing (higher or lower) floors are kept.
    pub fn seed(&mut self, ids: impl IntoIterator<Item = KeyId>, now: u128) {
        for id in ids {
            self.floors.entry(id).or_insert(now);
        }
    }

    /// Whether `counter` can no longer be accepted for `id`: at or below its floor, one of
    /// its refused counters, or a key that has no floor at all (never seeded).
    pub fn is_spent(&self, id: &KeyId, counter: u128) -> bool {
        match self.floors.get(id) {
            Some(floor) if counter > *floor => self
                .refused
                .get(id)
                .is_some_and(|set| set.contains(&counter)),
            _ => true,
        }
    }

    /// Remembers an authentic counter that was refused and must stay refused. Past
    /// [`MAX_REFUSED_PER_KEY`] the smallest remembered counter becomes the floor.
    pub fn refuse(&mut self, id: KeyId, counter: u128) {
        if self.is_spent(&id, counter) {
            return;
        }
        let set = self.refused.entry(id).or_default();
        set.insert(counter);
        if set.len() > MAX_REFUSED_PER_KEY {
            if let Some(smallest) = set.pop_first() {
                self.set(id, smallest);
            }
        }
    }

    /// Applies what a refusal spent (see [`crate::Spend`]).
    pub fn spend(&mut self, spend: Spend) {
        match spend {
            Spend::Floor(id, counter) => self.set(id, counter),
            Spend::Remember(id, counter) => self.refuse(id, counter),
        }
    }

    /// All floors, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (KeyId, u128)> + '_ {
        self.floors.iter().map(|(id, floor)| (*id, *floor))
    }

    /// All remembered refused counters, in no particular order.
    pub fn refused(&self) -> impl Iterator<Item = (KeyId, u128)> + '_ {
        self.refused
            .iter()
            .flat_map(|(id, set)| set.iter().map(move |c| (*id, *c)))
    }
}

/// How an authentic datagram that was not run is used up, so that it can never run later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Spend {
    /// Its counter becomes the key's floor, as if it had been accepted (refused for its
    /// address, its rate, or because it could not be stored or forwarded).
    Floor(KeyId, u128),
    /// Its counter is too far ahead to become the floor: it is remembered instead.
    Remember(KeyId, u128),
}

impl Spend {
    /// The key and counter spent.
    pub fn parts(self) -> (KeyId, u128) {
        match self {
            Spend::Floor(id, c) | Spend::Remember(id, c) => (id, c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: KeyId = KeyId([1; 8]);

    #[test]
    fn a_refused_counter_stays_spent_until_the_floor_passes_it() {
        let mut t = FloorTable::new();
        t.seed([A], 100);
        assert!(t.is_spent(&A, 100));
        assert!(!t.is_spent(&A, 500));
        t.refuse(A, 500);
        assert!(t.is_spent(&A, 500));
        assert!(!t.is_spent(&A, 499) && !t.is_spent(&A, 501));
        t.set(A, 200);
        assert!(
            t.is_spent(&A, 500),
            "still above the floor: still remembered"
        );
        t.set(A, 600);
        assert_eq!(t.refused().count(), 0, "pruned once the floor passed it");
        // A lower floor never lowers it.
        t.set(A, 10);
        assert_eq!(t.get(&A), Some(600));
    }

    #[test]
    fn a_full_set_raises_the_floor_to_its_smallest_member() {
        let mut t = FloorTable::new();
        t.seed([A], 0);
        for c in 1..=MAX_REFUSED_PER_KEY as u128 {
            t.refuse(A, 1000 + c);
        }
        assert_eq!(t.get(&A), Some(0));
        t.refuse(A, 5000);
        assert_eq!(t.get(&A), Some(1001));
        assert_eq!(t.refused().count(), MAX_REFUSED_PER_KEY);
        for spent in [1001, 1002, 1000 + MAX_REFUSED_PER_KEY as u128, 5000] {
            assert!(t.is_spent(&A, spent), "{spent}");
        }
        for open in [1001 + MAX_REFUSED_PER_KEY as u128, 4999, 5001] {
            assert!(!t.is_spent(&A, open), "{open}");
        }
    }

    #[test]
    fn an_unseeded_key_refuses_everything_and_remembers_nothing() {
        let mut t = FloorTable::new();
        assert!(t.is_spent(&A, u128::MAX));
        t.refuse(A, 7);
        assert_eq!(t.refused().count(), 0);
    }
}
