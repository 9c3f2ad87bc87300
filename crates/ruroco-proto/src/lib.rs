//! ruroco's datagram formats, without I/O.
//!
//! This crate owns every byte format the server and client agree on: key strings, the
//! plaintext, the datagram in both formats — protocol v1 (94 bytes, AES-256-GCM-SIV) and
//! the released ruroco 0.14.x format "v0" (93 bytes, AES-256-GCM) — with seal/open, the
//! BLAKE2b-64 command hash, and the validation decision that turns
//! `(now, source, bytes, state)` into "forward this commander message" or exactly one
//! rejection reason.
//!
//! It must never open a socket, read a file or look at a clock: `now` is always an
//! argument, so every rule can be tested with fixed inputs and fuzzed.
#![forbid(unsafe_code)]

mod datagram;
mod floors;
mod key;
mod plaintext;
mod rate;
mod validate;
mod wire;

pub use datagram::{open, seal, seal_with_iv, Datagram};
pub use floors::{seed_floor, FloorTable, Spend, MAX_REFUSED_PER_KEY, SEED_GRACE_NANOS};
pub use key::{Key, KeyError, KeyId, KEY_ID_LEN, KEY_LEN, KEY_STRING_BYTES};
pub use plaintext::{Plaintext, PROTOCOL_VERSION, V0_VERSION};
pub use rate::RateLimiter;
pub use ruroco_ipc::{command_hash, CommanderMessage};
pub use validate::{decide, judge, Accepted, Keyring, Policy, Reason, Refusal};
pub use wire::{UnknownWire, Wire, DATAGRAM_LEN, IV_LEN, PLAINTEXT_LEN, TAG_LEN};

/// Nanoseconds per second, for converting configured seconds into counter units.
pub const NANOS_PER_SEC: u128 = 1_000_000_000;
