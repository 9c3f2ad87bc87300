//! The replay floor file's format, `floors.bin`: a header page, two copies ("slots") of
//! the whole table, each with a sequence number and a checksum, and a log of what batches
//! spent since the newest slot. Pure: bytes in, table out.
//!
//! Why two slots: a snapshot overwrites only the slot *not* holding the newest valid copy,
//! with `pwrite` + `fdatasync` into space allocated when the file was created. A crash in
//! the middle leaves that slot torn (its checksum fails) and the other one intact, with
//! the log that follows it. So the file is always readable and never behind anything that
//! ran, since forwarding waits for the write.
//!
//! Why a log: a batch of knocks spends a few counters, and writing the whole table for
//! them made each batch cost as much as the table is large (100,000 keys: 2.4 MB written
//! and 15 ms of work per knock, measured). A batch appends one page instead, never
//! overwriting a page of the current log, so a torn append only loses itself (a batch
//! whose write did not return, so nothing of it was forwarded). When the log is full, the
//! next batch writes a snapshot into the other slot and the log starts again behind it;
//! pages of an older log name an older slot and are ignored. The log has as many pages as
//! a slot, so the snapshots cost each batch one page more on average, whatever the size.
//!
//! Header page (big-endian): magic `RUROCOF2` (8) ‖ slot size u64 ‖ log pages u64 ‖
//! checksum u64 (FNV-1a 64 of the first 24 bytes), zero-padded; written once, when the
//! file is made. A file without it is the earlier layout: two slots, no log.
//!
//! Slot layout: magic `RUROCOF1` (8) ‖ sequence u64 ‖ count u32 ‖ refused u32 ‖ checksum
//! u64 (FNV-1a 64 of the first 24 bytes and the entries) ‖ count × (key id 8 ‖ floor u128)
//! ‖ refused × (key id 8 ‖ refused counter u128). A slot is a multiple of 4096 bytes,
//! zero-padded. (Files written before refused counters were kept have 0 there, and read
//! the same.)
//!
//! Log page: magic `RUROCOL1` (8) ‖ the sequence of the slot it follows u64 ‖ its own
//! number in that log (1, 2, …) u64 ‖ count u32 ‖ zero u32 ‖ checksum u64 (FNV-1a 64 of
//! the first 32 bytes and the entries) ‖ count × (kind u8: 1 floor, 2 remembered ‖ 7 zero
//! bytes ‖ key id 8 ‖ counter u128), zero-padded to 4096 bytes. Reading applies the pages
//! that follow the newest intact slot, in order, up to the first that does not.

use ruroco_proto::{FloorTable, KeyId, Spend};

/// Identifies a slot.
pub(crate) const MAGIC: [u8; 8] = *b"RUROCOF1";
/// Bytes before the entries.
pub(crate) const HEADER: usize = 32;
/// Bytes per entry.
pub(crate) const ENTRY: usize = 24;
/// Slots are whole pages.
pub(crate) const PAGE: usize = 4096;
/// Marks a file with a header page and a log.
pub(crate) const FILE_MAGIC: [u8; 8] = *b"RUROCOF2";
/// Marks a log page.
pub(crate) const LOG_MAGIC: [u8; 8] = *b"RUROCOL1";
/// Bytes before a log page's entries.
pub(crate) const LOG_HEADER: usize = 40;
/// Bytes per log entry.
pub(crate) const LOG_ENTRY: usize = 32;
/// Spends one log page holds.
pub(crate) const PER_LOG_PAGE: usize = (PAGE - LOG_HEADER) / LOG_ENTRY;
/// The fewest log pages a file has.
pub(crate) const MIN_LOG_PAGES: usize = 64;

/// Log pages for slots of `slot_size` bytes: as many pages as a slot has, at least
/// [`MIN_LOG_PAGES`].
pub(crate) fn log_pages_for(slot_size: usize) -> usize {
    (slot_size / PAGE).max(MIN_LOG_PAGES)
}

/// Where the slots and the log lie in a file with a header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    pub(crate) slot_size: usize,
    pub(crate) log_pages: usize,
}

impl Layout {
    pub(crate) fn for_slot(slot_size: usize) -> Self {
        Self {
            slot_size,
            log_pages: log_pages_for(slot_size),
        }
    }

    /// Offset of slot `seq % 2`.
    pub(crate) fn slot_offset(&self, seq: u64) -> u64 {
        (PAGE + (seq % 2) as usize * self.slot_size) as u64
    }

    /// Offset of log page `index` (from 0).
    pub(crate) fn log_offset(&self, index: usize) -> u64 {
        (PAGE + 2 * self.slot_size + index * PAGE) as u64
    }

    pub(crate) fn file_len(&self) -> usize {
        PAGE + 2 * self.slot_size + self.log_pages * PAGE
    }

    /// The header page.
    pub(crate) fn encode_header(&self) -> Vec<u8> {
        let mut page = Vec::with_capacity(PAGE);
        page.extend_from_slice(&FILE_MAGIC);
        page.extend_from_slice(&(self.slot_size as u64).to_be_bytes());
        page.extend_from_slice(&(self.log_pages as u64).to_be_bytes());
        let sum = fnv1a(&[&page]);
        page.extend_from_slice(&sum.to_be_bytes());
        page.resize(PAGE, 0);
        page
    }

    fn decode_header(page: &[u8]) -> Option<Self> {
        if page.get(..8)? != FILE_MAGIC {
            return None;
        }
        let word = |at: usize| -> Option<u64> {
            Some(u64::from_be_bytes(page.get(at..at + 8)?.try_into().ok()?))
        };
        if fnv1a(&[page.get(..24)?]) != word(24)? {
            return None;
        }
        let slot_size = usize::try_from(word(8)?).ok()?;
        let log_pages = usize::try_from(word(16)?).ok()?;
        (slot_size > 0 && slot_size.is_multiple_of(PAGE)).then_some(Self {
            slot_size,
            log_pages,
        })
    }
}

/// One log page: the spends of `spends` (at most [`PER_LOG_PAGE`]), number `number` of
/// the log following the slot with sequence `base`.
pub(crate) fn encode_log_page(base: u64, number: u64, spends: &[Spend]) -> Vec<u8> {
    let mut body = Vec::with_capacity(spends.len() * LOG_ENTRY);
    for spend in spends.iter().take(PER_LOG_PAGE) {
        let (kind, (id, counter)) = match spend {
            Spend::Floor(..) => (1u8, spend.parts()),
            Spend::Remember(..) => (2u8, spend.parts()),
        };
        body.push(kind);
        body.extend_from_slice(&[0; 7]);
        body.extend_from_slice(&id.0);
        body.extend_from_slice(&counter.to_be_bytes());
    }
    let mut page = Vec::with_capacity(PAGE);
    page.extend_from_slice(&LOG_MAGIC);
    page.extend_from_slice(&base.to_be_bytes());
    page.extend_from_slice(&number.to_be_bytes());
    let count = u32::try_from(body.len() / LOG_ENTRY).unwrap_or(u32::MAX);
    page.extend_from_slice(&count.to_be_bytes());
    page.extend_from_slice(&[0; 4]);
    let sum = fnv1a(&[&page, &body]);
    page.extend_from_slice(&sum.to_be_bytes());
    page.extend_from_slice(&body);
    page.resize(PAGE, 0);
    page
}

/// The spends of an intact log page that is number `number` of the log following slot
/// `base`; `None` for any other page (torn, empty, of another log, out of order).
pub(crate) fn decode_log_page(page: &[u8], base: u64, number: u64) -> Option<Vec<Spend>> {
    let head = page.get(..LOG_HEADER)?;
    if head.get(..8)? != LOG_MAGIC {
        return None;
    }
    let word = |at: usize| -> Option<u64> {
        Some(u64::from_be_bytes(head.get(at..at + 8)?.try_into().ok()?))
    };
    if word(8)? != base || word(16)? != number {
        return None;
    }
    let count = u32::from_be_bytes(head.get(24..28)?.try_into().ok()?) as usize;
    if count > PER_LOG_PAGE {
        return None;
    }
    let body = page.get(LOG_HEADER..LOG_HEADER + count * LOG_ENTRY)?;
    if fnv1a(&[head.get(..32)?, body]) != word(32)? {
        return None;
    }
    body.chunks_exact(LOG_ENTRY)
        .map(|entry| {
            let (id, counter) = decode_entry(entry.get(8..)?)?;
            match entry.first()? {
                1 => Some(Spend::Floor(id, counter)),
                2 => Some(Spend::Remember(id, counter)),
                _ => None,
            }
        })
        .collect()
}

/// The smallest slot size that holds `count` entries.
pub(crate) fn slot_size_for(table: &FloorTable) -> usize {
    slot_size_for_entries(table.iter().count() + table.refused().count())
}

/// The smallest slot size that holds `count` entries of either kind.
pub(crate) fn slot_size_for_entries(count: usize) -> usize {
    (HEADER + count * ENTRY).div_ceil(PAGE).max(1) * PAGE
}

fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in *part {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// One slot holding `table` with sequence number `seq`, `slot_size` bytes long (the caller
/// makes sure it fits: see [`slot_size_for`]).
pub(crate) fn encode_slot(seq: u64, table: &FloorTable, slot_size: usize) -> Vec<u8> {
    let mut entries: Vec<(KeyId, u128)> = table.iter().collect();
    entries.sort();
    let mut refused: Vec<(KeyId, u128)> = table.refused().collect();
    refused.sort();
    let mut body = Vec::with_capacity((entries.len() + refused.len()) * ENTRY);
    for (id, value) in entries.iter().chain(&refused) {
        body.extend_from_slice(&id.0);
        body.extend_from_slice(&value.to_be_bytes());
    }
    let mut head = Vec::with_capacity(HEADER);
    head.extend_from_slice(&MAGIC);
    head.extend_from_slice(&seq.to_be_bytes());
    head.extend_from_slice(
        &u32::try_from(entries.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    head.extend_from_slice(
        &u32::try_from(refused.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    let sum = fnv1a(&[&head, &body]);
    head.extend_from_slice(&sum.to_be_bytes());
    let mut slot = head;
    slot.extend_from_slice(&body);
    slot.resize(slot_size.max(slot.len()), 0);
    slot
}

/// The sequence number and table of an intact slot; `None` for a torn, empty or foreign one.
pub(crate) fn decode_slot(slot: &[u8]) -> Option<(u64, FloorTable)> {
    let head = slot.get(..HEADER)?;
    if head.get(..8)? != MAGIC {
        return None;
    }
    let seq = u64::from_be_bytes(head.get(8..16)?.try_into().ok()?);
    let count = u32::from_be_bytes(head.get(16..20)?.try_into().ok()?) as usize;
    let refused = u32::from_be_bytes(head.get(20..24)?.try_into().ok()?) as usize;
    let sum = u64::from_be_bytes(head.get(24..32)?.try_into().ok()?);
    let len = count.checked_add(refused)?.checked_mul(ENTRY)?;
    let body = slot.get(HEADER..HEADER.checked_add(len)?)?;
    if fnv1a(&[head.get(..24)?, body]) != sum {
        return None;
    }
    let (floors, remembered) = body.split_at_checked(count.checked_mul(ENTRY)?)?;
    let mut table = FloorTable::new();
    for entry in floors.chunks_exact(ENTRY) {
        let (id, floor) = decode_entry(entry)?;
        table.set(id, floor);
    }
    // After the floors, so that each refused counter is judged against its key's floor.
    for entry in remembered.chunks_exact(ENTRY) {
        let (id, counter) = decode_entry(entry)?;
        table.refuse(id, counter);
    }
    Some((seq, table))
}

fn decode_entry(entry: &[u8]) -> Option<(KeyId, u128)> {
    let id = KeyId(entry.get(..8)?.try_into().ok()?);
    let value = u128::from_be_bytes(entry.get(8..)?.try_into().ok()?);
    Some((id, value))
}

/// What a file holds: the newest intact slot with the log that follows it applied.
#[derive(Debug)]
pub(crate) struct Decoded {
    /// Sequence of the newest intact slot.
    pub(crate) seq: u64,
    pub(crate) table: FloorTable,
    /// `None` for the earlier layout (two slots, no header, no log).
    pub(crate) layout: Option<Layout>,
}

/// A whole file, or what is wrong with it.
pub(crate) fn decode_file(bytes: &[u8]) -> Result<Decoded, String> {
    let Some(layout) = bytes.get(..PAGE).and_then(Layout::decode_header) else {
        let (seq, _, table) = decode_slots(bytes)?;
        return Ok(Decoded {
            seq,
            table,
            layout: None,
        });
    };
    let slots = bytes
        .get(PAGE..PAGE + 2 * layout.slot_size)
        .ok_or_else(|| format!("{} bytes is shorter than its header says", bytes.len()))?;
    let (seq, _, mut table) = decode_slots(slots)?;
    let mut log_used = 0;
    while log_used < layout.log_pages {
        let at = PAGE + 2 * layout.slot_size + log_used * PAGE;
        let Some(spends) = bytes
            .get(at..at + PAGE)
            .and_then(|page| decode_log_page(page, seq, log_used as u64 + 1))
        else {
            break;
        };
        for spend in spends {
            table.spend(spend);
        }
        log_used += 1;
    }
    Ok(Decoded {
        seq,
        table,
        layout: Some(layout),
    })
}

/// Two slots: the newest intact slot's (sequence, slot size, table), or what is wrong.
fn decode_slots(bytes: &[u8]) -> Result<(u64, usize, FloorTable), String> {
    let slot_size = bytes.len() / 2;
    if bytes.is_empty() || !bytes.len().is_multiple_of(2) || !slot_size.is_multiple_of(PAGE) {
        return Err(format!(
            "{} bytes is not two slots of whole {PAGE}-byte pages",
            bytes.len()
        ));
    }
    let (a, b) = bytes.split_at(slot_size);
    match (decode_slot(a), decode_slot(b)) {
        (Some((sa, ta)), Some((sb, tb))) => Ok(if sa >= sb {
            (sa, slot_size, ta)
        } else {
            (sb, slot_size, tb)
        }),
        (Some((s, t)), None) | (None, Some((s, t))) => Ok((s, slot_size, t)),
        (None, None) => Err("neither copy of the floors is intact".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(entries: &[(u8, u128)]) -> FloorTable {
        let mut t = FloorTable::new();
        for (id, f) in entries {
            t.set(KeyId([*id; 8]), *f);
        }
        t
    }

    fn file(a: &[u8], b: &[u8]) -> Vec<u8> {
        [a, b].concat()
    }

    #[test]
    fn the_newest_intact_slot_wins() {
        let old = encode_slot(4, &table(&[(1, 10)]), PAGE);
        let new = encode_slot(5, &table(&[(1, 11), (2, 7)]), PAGE);
        let (seq, size, t) = decode_slots(&file(&old, &new)).unwrap();
        assert_eq!((seq, size), (5, PAGE));
        assert_eq!(t.get(&KeyId([1; 8])), Some(11));
        assert_eq!(t.get(&KeyId([2; 8])), Some(7));
        // The same with the slots the other way round.
        assert_eq!(decode_slots(&file(&new, &old)).unwrap().0, 5);
    }

    #[test]
    fn a_torn_slot_falls_back_to_the_other_one() {
        let old = encode_slot(4, &table(&[(1, 10)]), PAGE);
        let mut torn = encode_slot(5, &table(&[(1, 11)]), PAGE);
        // Any single changed byte in the written part is detected.
        for i in 0..(HEADER + ENTRY) {
            let mut t = torn.clone();
            t[i] ^= 0x40;
            let (seq, _, tb) = decode_slots(&file(&old, &t)).unwrap();
            assert_eq!((seq, tb.get(&KeyId([1; 8]))), (4, Some(10)), "byte {i}");
        }
        // Half of the new slot written, the rest still the zeros of creation.
        for b in &mut torn[HEADER + 10..] {
            *b = 0;
        }
        assert_eq!(decode_slots(&file(&old, &torn)).unwrap().0, 4);
        assert!(decode_slots(&file(&vec![0; PAGE], &vec![0; PAGE])).is_err());
    }

    #[test]
    fn refused_counters_round_trip_and_count_towards_the_size() {
        let mut t = table(&[(1, 10), (2, 20)]);
        t.refuse(KeyId([1; 8]), 99);
        t.refuse(KeyId([1; 8]), 98);
        t.refuse(KeyId([2; 8]), 5); // below its floor: not kept
        assert_eq!(slot_size_for(&t), slot_size_for_entries(4));
        let slot = encode_slot(3, &t, PAGE);
        let (seq, back) = decode_slot(&slot).unwrap();
        assert_eq!(seq, 3);
        assert_eq!(back, t);
        assert!(back.is_spent(&KeyId([1; 8]), 99) && !back.is_spent(&KeyId([1; 8]), 97));
        // A file without refused counters (the earlier layout) reads the same as before.
        let plain = table(&[(1, 10)]);
        assert_eq!(&encode_slot(1, &plain, PAGE)[20..24], &[0; 4]);
    }

    #[test]
    fn sizes_and_garbage() {
        assert_eq!(slot_size_for_entries(0), PAGE);
        assert_eq!(slot_size_for_entries((PAGE - HEADER) / ENTRY), PAGE);
        assert_eq!(slot_size_for_entries((PAGE - HEADER) / ENTRY + 1), 2 * PAGE);
        for bad in [&[][..], &[0u8; 100][..], &[0u8; PAGE][..]] {
            assert!(decode_slots(bad).is_err());
        }
        // A huge count cannot make decoding read past the slot.
        let mut slot = encode_slot(1, &table(&[(1, 1)]), PAGE);
        slot[16..20].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(decode_slot(&slot).is_none());
    }
}
