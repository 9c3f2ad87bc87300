//! The replay floor file (`floors.bin`: header, two checksummed slots, a log): decoding
//! never panics, and a decoded table written back decodes to the same table.
#![no_main]
#![allow(dead_code, unreachable_pub)]

#[path = "../../crates/ruroco-server/src/floor_format.rs"]
mod floor_format;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(decoded) = floor_format::decode_file(bytes) {
        let table = decoded.table;
        let layout = floor_format::Layout::for_slot(floor_format::slot_size_for(&table));
        let seq = decoded.seq.wrapping_add(1);
        let mut file = vec![0u8; layout.file_len()];
        file[..floor_format::PAGE].copy_from_slice(&layout.encode_header());
        let at = layout.slot_offset(seq) as usize;
        let slot = floor_format::encode_slot(seq, &table, layout.slot_size);
        file[at..at + layout.slot_size].copy_from_slice(&slot);
        let again = floor_format::decode_file(&file).expect("re-encoded file decodes");
        assert_eq!(again.seq, seq);
        let sorted = |t: &ruroco_proto::FloorTable| {
            let mut floors: Vec<_> = t.iter().collect();
            let mut refused: Vec<_> = t.refused().collect();
            floors.sort();
            refused.sort();
            (floors, refused)
        };
        assert_eq!(sorted(&table), sorted(&again.table));
    }
});
