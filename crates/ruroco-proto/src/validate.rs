//! The validation decision: the server's whole judgement of one datagram, as pure code.

use std::collections::HashMap;
use std::net::IpAddr;

use ruroco_ipc::{normalize_ip, CommanderMessage};

use crate::datagram::{open_parts, split};
use crate::floors::{FloorTable, Spend};
use crate::key::{Key, KeyId};
use crate::plaintext::PROTOCOL_VERSION;
use crate::wire::Wire;
use crate::NANOS_PER_SEC;

/// Why a datagram was dropped. Variants are in the order the checks run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Not the length of an accepted format: 94 bytes, or 93 while v0 is accepted.
    Size,
    /// The key id is not among the loaded keys.
    UnknownKey,
    /// Opening failed (AES-GCM-SIV for v1, AES-GCM for v0): wrong key or tampered bytes.
    Auth,
    /// Authenticated v1 datagram with a protocol version other than 1.
    Version,
    /// Counter at or below the stored floor for this key.
    Replay,
    /// Counter further ahead of the server clock than the allowed skew.
    Future,
    /// The datagram names a server address that is not one of ours.
    DstIp,
    /// Strict mode, and the claimed source differs from the real one.
    SrcIp,
    /// Authenticated and valid, but over the per-source or global rate limit.
    Rate,
    /// Authenticated and valid, but its key may not run this command (`[key_commands]`).
    /// Decided by the server after the floor advanced, never by [`decide`].
    NotAllowed,
}

impl Reason {
    /// Every reason, in check order.
    pub const ALL: [Reason; 10] = [
        Reason::Size,
        Reason::UnknownKey,
        Reason::Auth,
        Reason::Version,
        Reason::Replay,
        Reason::Future,
        Reason::DstIp,
        Reason::SrcIp,
        Reason::Rate,
        Reason::NotAllowed,
    ];

    /// The reason's name as it appears in logs and counters.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Size => "size",
            Reason::UnknownKey => "unknown_key",
            Reason::Auth => "auth",
            Reason::Version => "version",
            Reason::Replay => "replay",
            Reason::Future => "future",
            Reason::DstIp => "dst_ip",
            Reason::SrcIp => "src_ip",
            Reason::Rate => "rate",
            Reason::NotAllowed => "not_allowed",
        }
    }

    /// Whether the datagram proved knowledge of a key before it was dropped. Anything
    /// unauthenticated may come from a spoofed source.
    pub fn is_authenticated(self) -> bool {
        !matches!(self, Reason::Size | Reason::UnknownKey | Reason::Auth)
    }
}

/// The loaded keys, looked up by their public id.
#[derive(Debug, Default)]
pub struct Keyring {
    keys: HashMap<KeyId, Key>,
    /// Keyed digests of the secrets, to find a second file with the same secret in
    /// constant time per key (a scan of every loaded key made loading quadratic).
    secrets: HashMap<u64, Vec<KeyId>>,
    state: std::collections::hash_map::RandomState,
}

impl Keyring {
    /// An empty keyring.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a key. If a loaded key has the same id or the same secret, the key is not
    /// added and the id of the key it clashes with is returned.
    pub fn insert(&mut self, key: Key) -> Result<(), KeyId> {
        if self.keys.contains_key(&key.id()) {
            return Err(key.id());
        }
        let digest = key.secret_digest(&self.state);
        let same = self.secrets.get(&digest).and_then(|ids| {
            ids.iter()
                .filter_map(|id| self.keys.get(id))
                .find(|known| known.same_secret(&key))
        });
        if let Some(known) = same {
            return Err(known.id());
        }
        self.secrets.entry(digest).or_default().push(key.id());
        self.keys.insert(key.id(), key);
        Ok(())
    }

    /// The key with this id, if loaded.
    pub fn get(&self, id: &KeyId) -> Option<&Key> {
        self.keys.get(id)
    }

    /// Ids of all loaded keys.
    pub fn ids(&self) -> impl Iterator<Item = KeyId> + '_ {
        self.keys.keys().copied()
    }

    /// Number of loaded keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key is loaded.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// What the server is configured to accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// This server's addresses; a datagram's dst_ip must be one of them.
    pub ips: Vec<IpAddr>,
    /// How far ahead of `now` a counter may be, in seconds.
    pub max_clock_skew_secs: u64,
    /// Whether 93-byte datagrams of the released v0 format are accepted; when not, they
    /// are [`Reason::Size`] like any other length.
    pub accept_v0: bool,
}

/// A datagram that passed every check: forward `message`, after persisting `counter` as
/// the new floor of `key_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    /// The datagram's format.
    pub wire: Wire,
    /// The key that sealed the datagram.
    pub key_id: KeyId,
    /// The datagram's counter: the floor to store before forwarding.
    pub counter: u128,
    /// What the commander should receive.
    pub message: CommanderMessage,
}

/// A datagram that was not accepted: why, and for an authentic one above its key's
/// floor, what the caller must spend so that it can never be accepted later (a refusal
/// that depends on time or configuration must not turn into an acceptance).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// The first check that failed.
    pub reason: Reason,
    /// To apply to the floors (and commit with them) even though nothing is forwarded.
    pub spend: Option<Spend>,
    /// For [`Reason::DstIp`]: the server address the datagram claimed, for the log.
    pub claimed_dst: Option<IpAddr>,
}

impl From<Reason> for Refusal {
    fn from(reason: Reason) -> Self {
        Self {
            reason,
            spend: None,
            claimed_dst: None,
        }
    }
}

/// Judges one datagram received from `source` at `now` (nanoseconds since the epoch).
///
/// Runs the checks in order and returns the first failing one; the datagram's length alone
/// picks its format, and both formats share each key's floor. It does not
/// move the floor: the caller commits `Accepted::counter` once it is durably stored. The
/// rate limit is the caller's, after this, so that it counts only datagrams that passed.
pub fn decide(
    keys: &Keyring,
    floors: &FloorTable,
    policy: &Policy,
    now: u128,
    source: IpAddr,
    bytes: &[u8],
) -> Result<Accepted, Reason> {
    judge(keys, floors, policy, now, source, bytes).map_err(|r| r.reason)
}

/// [`decide`], also saying what a refused authentic datagram spends: its counter becomes
/// the floor when it is within the skew ([`Reason::DstIp`], [`Reason::SrcIp`]), or is
/// remembered when it is ahead of it ([`Reason::Future`]).
pub fn judge(
    keys: &Keyring,
    floors: &FloorTable,
    policy: &Policy,
    now: u128,
    source: IpAddr,
    bytes: &[u8],
) -> Result<Accepted, Refusal> {
    let parts = split(bytes)
        .filter(|p| p.wire == Wire::V1 || policy.accept_v0)
        .ok_or(Reason::Size)?;
    let key = keys.get(&parts.key_id).ok_or(Reason::UnknownKey)?;
    let plain = open_parts(key, &parts).ok_or(Reason::Auth)?;
    // v0 has no version byte to check.
    if parts.wire == Wire::V1 && plain.version != PROTOCOL_VERSION {
        return Err(Reason::Version.into());
    }
    // A key without a floor was never seeded; refusing it keeps the check fail-closed.
    let id = parts.key_id;
    if floors.is_spent(&id, plain.counter) {
        return Err(Reason::Replay.into());
    }
    let refuse = |reason, spend| Refusal {
        reason,
        spend: Some(spend),
        claimed_dst: None,
    };
    let skew = u128::from(policy.max_clock_skew_secs).saturating_mul(NANOS_PER_SEC);
    if plain.counter > now.saturating_add(skew) {
        return Err(refuse(Reason::Future, Spend::Remember(id, plain.counter)));
    }
    let spent = Spend::Floor(id, plain.counter);
    let dst = normalize_ip(plain.dst_ip);
    if !policy.ips.iter().any(|ip| normalize_ip(*ip) == dst) {
        return Err(Refusal {
            claimed_dst: Some(dst),
            ..refuse(Reason::DstIp, spent)
        });
    }
    let source = normalize_ip(source);
    let claimed = plain.src_ip.map(normalize_ip);
    if let Some(claimed) = claimed {
        if plain.strict && claimed != source {
            return Err(refuse(Reason::SrcIp, spent));
        }
    }
    Ok(Accepted {
        wire: parts.wire,
        key_id: parts.key_id,
        counter: plain.counter,
        message: CommanderMessage {
            cmd_hash: plain.cmd_hash,
            ip: claimed.unwrap_or(source),
        },
    })
}

#[cfg(test)]
mod tests;
