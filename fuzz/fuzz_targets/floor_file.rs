//! The replay floor file (`floors.bin`, two checksummed slots): decoding never panics, and
//! a decoded table written back decodes to the same table.
#![no_main]
#![allow(dead_code, unreachable_pub)]

#[path = "../../crates/ruroco-server/src/floor_format.rs"]
mod floor_format;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok((seq, size, table)) = floor_format::decode_file(bytes) {
        let slot = floor_format::encode_slot(seq + 1, &table, size);
        let mut file = vec![0u8; 2 * size];
        file[..size].copy_from_slice(&slot);
        let (again_seq, _, again) = floor_format::decode_file(&file).expect("re-encoded file decodes");
        assert_eq!(again_seq, seq + 1);
        let mut a: Vec<_> = table.iter().collect();
        let mut b: Vec<_> = again.iter().collect();
        a.sort();
        b.sort();
        assert_eq!(a, b);
    }
});
