//! The command hash: BLAKE2b with an 8-byte digest of the command name, read as u64 BE.

use blake2::digest::consts::U8;
use blake2::{Blake2b, Digest};

/// BLAKE2b-64 of `name` (UTF-8 bytes), as a big-endian u64.
pub fn command_hash(name: &str) -> u64 {
    let digest = Blake2b::<U8>::digest(name.as_bytes());
    u64::from_be_bytes(digest.into())
}
