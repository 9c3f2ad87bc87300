//! The plaintext inside every datagram: 58 bytes in protocol v1, 57 in the released v0
//! format, which is the same without the version byte.
//!
//! | bytes (v1) | field |
//! | --- | --- |
//! | `[0]` | version |
//! | `[1..9]` | cmd_hash, u64 BE |
//! | `[9..25]` | counter, u128 BE |
//! | `[25]` | strict (non-zero = strict) |
//! | `[26..42]` | claimed src_ip, mapped; all zero = none |
//! | `[42..58]` | dst_ip, mapped |

use std::net::IpAddr;

use ruroco_ipc::{from_mapped_bytes, to_mapped_bytes};

use crate::wire::PLAINTEXT_LEN;

/// The protocol version of the v1 format (the only one with a version byte).
pub const PROTOCOL_VERSION: u8 = 1;
/// The `version` a v0 plaintext decodes with: that format has no version byte.
pub const V0_VERSION: u8 = 0;
/// Length of the v0 plaintext.
const V0_LEN: usize = PLAINTEXT_LEN - 1;

/// The decoded plaintext. `version` is kept as received (v1) or [`V0_VERSION`] (v0);
/// validation rejects a v1 datagram with another version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plaintext {
    /// Protocol version byte.
    pub version: u8,
    /// BLAKE2b-64 of the command name.
    pub cmd_hash: u64,
    /// Monotonic counter: the anti-replay value.
    pub counter: u128,
    /// Whether the server must check the claimed source against the real one.
    pub strict: bool,
    /// The client address the command should act for, if the client claims one.
    pub src_ip: Option<IpAddr>,
    /// The server address this datagram is meant for.
    pub dst_ip: IpAddr,
}

impl Plaintext {
    /// Encodes into the 58-byte v1 form.
    pub fn encode(&self) -> [u8; PLAINTEXT_LEN] {
        let mut out = [0u8; PLAINTEXT_LEN];
        let (version, rest) = out.split_at_mut(1);
        version.fill(self.version);
        self.encode_fields(rest);
        out
    }

    /// Encodes into the 57-byte v0 form (`version` is not part of it).
    pub fn encode_v0(&self) -> [u8; V0_LEN] {
        let mut out = [0u8; V0_LEN];
        self.encode_fields(&mut out);
        out
    }

    /// Writes everything after the version byte into `out` (57 bytes).
    fn encode_fields(&self, out: &mut [u8]) {
        let (hash, rest) = out.split_at_mut(8);
        let (counter, rest) = rest.split_at_mut(16);
        let (strict, rest) = rest.split_at_mut(1);
        let (src, dst) = rest.split_at_mut(16);
        hash.copy_from_slice(&self.cmd_hash.to_be_bytes());
        counter.copy_from_slice(&self.counter.to_be_bytes());
        strict.fill(u8::from(self.strict));
        src.copy_from_slice(&self.src_ip.map(to_mapped_bytes).unwrap_or([0; 16]));
        dst.copy_from_slice(&to_mapped_bytes(self.dst_ip));
    }

    /// Decodes the v1 form; `None` unless `bytes` is exactly [`PLAINTEXT_LEN`] long.
    /// Every 58-byte pattern decodes: judging it is [`crate::decide`]'s job.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let (version, rest) = bytes.split_first()?;
        Self::decode_fields(*version, rest)
    }

    /// Decodes the v0 form; `None` unless `bytes` is exactly 57 bytes long. The result
    /// has `version` [`V0_VERSION`].
    pub fn decode_v0(bytes: &[u8]) -> Option<Self> {
        Self::decode_fields(V0_VERSION, bytes)
    }

    fn decode_fields(version: u8, bytes: &[u8]) -> Option<Self> {
        let mut r = Reader(bytes);
        let hash = r.take::<8>()?;
        let counter = r.take::<16>()?;
        let [strict] = r.take::<1>()?;
        let src = r.take::<16>()?;
        let dst = r.take::<16>()?;
        if !r.0.is_empty() {
            return None;
        }
        Some(Self {
            version,
            cmd_hash: u64::from_be_bytes(hash),
            counter: u128::from_be_bytes(counter),
            strict: strict != 0,
            src_ip: (src != [0; 16]).then(|| from_mapped_bytes(src)),
            dst_ip: from_mapped_bytes(dst),
        })
    }
}

/// Takes fixed-size fields off the front of a slice, never indexing.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }
}
