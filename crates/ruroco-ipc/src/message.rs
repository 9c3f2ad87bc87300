//! The message the server sends the commander, one per connection.
//!
//! Version 1 is exactly 24 bytes: `cmd_hash` (u64 BE) || ip (16 bytes, IPv6-mapped).
//! It is fixed-size so the commander never parses anything loosely: a message of any other
//! length is refused whole.

use std::net::IpAddr;

use crate::ip::{from_mapped_bytes, to_mapped_bytes};

/// Length of a version 1 commander message.
pub const MESSAGE_LEN: usize = 24;

/// A request to run the command whose name hashes to `cmd_hash`, on behalf of `ip`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CommanderMessage {
    /// BLAKE2b-64 of the command name, as the client sent it.
    pub cmd_hash: u64,
    /// The client address the command acts for (normalised: IPv4 stays IPv4).
    pub ip: IpAddr,
}

/// Why bytes from the socket are not a commander message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// The message was not exactly [`MESSAGE_LEN`] bytes long.
    #[error("commander message must be {MESSAGE_LEN} bytes, got {0}")]
    Length(usize),
}

impl CommanderMessage {
    /// Encodes the message into its 24-byte wire form.
    pub fn encode(&self) -> [u8; MESSAGE_LEN] {
        let mut out = [0u8; MESSAGE_LEN];
        let (hash, ip) = out.split_at_mut(8);
        hash.copy_from_slice(&self.cmd_hash.to_be_bytes());
        ip.copy_from_slice(&to_mapped_bytes(self.ip));
        out
    }

    /// Decodes a message; anything but exactly 24 bytes is refused.
    pub fn decode(bytes: &[u8]) -> Result<Self, MessageError> {
        let whole: &[u8; MESSAGE_LEN] = bytes
            .try_into()
            .map_err(|_| MessageError::Length(bytes.len()))?;
        let (hash, ip) = whole.split_at(8);
        let hash = <[u8; 8]>::try_from(hash).map_err(|_| MessageError::Length(bytes.len()))?;
        let ip = <[u8; 16]>::try_from(ip).map_err(|_| MessageError::Length(bytes.len()))?;
        Ok(Self {
            cmd_hash: u64::from_be_bytes(hash),
            ip: from_mapped_bytes(ip),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn wrong_lengths_are_refused() {
        for len in [0, 1, 23, 25, 100] {
            let bytes = vec![0u8; len];
            assert_eq!(
                CommanderMessage::decode(&bytes),
                Err(MessageError::Length(len))
            );
        }
    }

    #[test]
    fn known_answer_vectors() {
        let text = include_str!("../../../testdata/protocol-v1.json");
        let json: serde_json::Value = serde_json::from_str(text).unwrap();
        let entries = json["commander_data"].as_array().unwrap();
        assert!(!entries.is_empty());
        for entry in entries {
            let msg = CommanderMessage {
                cmd_hash: entry["cmd_hash"].as_str().unwrap().parse().unwrap(),
                ip: entry["ip"].as_str().unwrap().parse().unwrap(),
            };
            let bytes = hex::decode(entry["bytes_hex"].as_str().unwrap()).unwrap();
            assert_eq!(msg.encode().as_slice(), bytes.as_slice(), "{entry}");
            assert_eq!(CommanderMessage::decode(&bytes).unwrap(), msg, "{entry}");
        }
    }

    proptest! {
        #[test]
        fn round_trips(hash: u64, raw: [u8; 16]) {
            let msg = CommanderMessage { cmd_hash: hash, ip: from_mapped_bytes(raw) };
            prop_assert_eq!(CommanderMessage::decode(&msg.encode()), Ok(msg));
        }
    }
}
