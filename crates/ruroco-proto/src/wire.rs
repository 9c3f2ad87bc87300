//! The two datagram formats the server accepts, told apart by length alone.

use std::fmt;
use std::str::FromStr;

use crate::key::KEY_ID_LEN;

/// Length of the nonce.
pub const IV_LEN: usize = 12;
/// Length of the authentication tag.
pub const TAG_LEN: usize = 16;
/// Length of the longest plaintext (protocol v1's, with its version byte).
pub const PLAINTEXT_LEN: usize = 58;
/// Length of the longest datagram (protocol v1's).
pub const DATAGRAM_LEN: usize = KEY_ID_LEN + IV_LEN + TAG_LEN + PLAINTEXT_LEN;

/// A datagram format. Both share key strings, field order and the replay floor; they
/// differ in the cipher and in whether the plaintext starts with a version byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Wire {
    /// Released ruroco 0.14.x: 93 bytes, AES-256-GCM, no version byte.
    V0,
    /// Protocol v1: 94 bytes, AES-256-GCM-SIV, version byte `1`.
    V1,
}

impl Wire {
    /// Both formats, oldest first.
    pub const ALL: [Wire; 2] = [Wire::V0, Wire::V1];

    /// The plaintext length of this format.
    pub const fn plaintext_len(self) -> usize {
        match self {
            Wire::V0 => PLAINTEXT_LEN - 1,
            Wire::V1 => PLAINTEXT_LEN,
        }
    }

    /// The datagram length of this format.
    pub const fn datagram_len(self) -> usize {
        KEY_ID_LEN + IV_LEN + TAG_LEN + self.plaintext_len()
    }

    /// The format a datagram of `len` bytes has, if any: the length is the only thing
    /// that picks it.
    pub const fn from_len(len: usize) -> Option<Wire> {
        if len == Wire::V1.datagram_len() {
            Some(Wire::V1)
        } else if len == Wire::V0.datagram_len() {
            Some(Wire::V0)
        } else {
            None
        }
    }

    /// The name used in logs, counters and the client's `--wire`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Wire::V0 => "v0",
            Wire::V1 => "v1",
        }
    }
}

impl fmt::Display for Wire {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not `v0` or `v1`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown wire format `{0}` (expected v0 or v1)")]
pub struct UnknownWire(pub String);

impl FromStr for Wire {
    type Err = UnknownWire;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Wire::ALL
            .into_iter()
            .find(|w| w.as_str() == s)
            .ok_or_else(|| UnknownWire(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_pick_the_format_and_nothing_else_does() {
        assert_eq!(Wire::V0.datagram_len(), 93);
        assert_eq!(Wire::V1.datagram_len(), 94);
        assert_eq!(Wire::from_len(93), Some(Wire::V0));
        assert_eq!(Wire::from_len(94), Some(Wire::V1));
        for len in [0, 1, 57, 58, 92, 95, 512] {
            assert_eq!(Wire::from_len(len), None, "{len}");
        }
    }

    #[test]
    fn names_round_trip() {
        for wire in Wire::ALL {
            assert_eq!(wire.as_str().parse::<Wire>(), Ok(wire));
        }
        assert!("v2".parse::<Wire>().is_err());
    }
}
