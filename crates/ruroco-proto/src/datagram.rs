//! The datagram in either format: `key_id` (8) || `iv` (12) || `tag` (16) || `ct`, where
//! `ct` is 58 bytes of AES-256-GCM-SIV (v1) or 57 bytes of AES-256-GCM (v0).
//!
//! The tag comes before the ciphertext, unlike most AEAD libraries' combined output, so
//! sealing and opening use the detached in-place API.

use std::ops::{Deref, DerefMut};

use aes_gcm_siv::aead::AeadInPlace;

use crate::key::{Key, KeyId, KEY_ID_LEN};
use crate::plaintext::Plaintext;
use crate::wire::{Wire, DATAGRAM_LEN, IV_LEN, PLAINTEXT_LEN, TAG_LEN};

/// A sealed datagram of either format, ready to send.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Datagram {
    bytes: [u8; DATAGRAM_LEN],
    wire: Wire,
}

impl Datagram {
    /// Its format.
    pub fn wire(&self) -> Wire {
        self.wire
    }

    /// Its bytes: exactly `wire().datagram_len()` of them.
    pub fn as_slice(&self) -> &[u8] {
        self.bytes
            .get(..self.wire.datagram_len())
            .unwrap_or(&self.bytes)
    }
}

impl Deref for Datagram {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl DerefMut for Datagram {
    fn deref_mut(&mut self) -> &mut [u8] {
        let len = self.wire.datagram_len();
        let (bytes, _) = self.bytes.split_at_mut(len.min(DATAGRAM_LEN));
        bytes
    }
}

impl std::fmt::Debug for Datagram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Datagram({}, {} bytes)", self.wire, self.len())
    }
}

/// The fields of a datagram, copied out of its bytes.
pub(crate) struct Parts<'a> {
    pub(crate) wire: Wire,
    pub(crate) key_id: KeyId,
    iv: &'a [u8; IV_LEN],
    tag: &'a [u8; TAG_LEN],
    ct: &'a [u8],
}

/// Splits a datagram into its fields; `None` unless its length is that of a format.
pub(crate) fn split(bytes: &[u8]) -> Option<Parts<'_>> {
    let wire = Wire::from_len(bytes.len())?;
    let (key_id, rest) = bytes.split_first_chunk::<KEY_ID_LEN>()?;
    let (iv, rest) = rest.split_first_chunk::<IV_LEN>()?;
    let (tag, ct) = rest.split_first_chunk::<TAG_LEN>()?;
    Some(Parts {
        wire,
        key_id: KeyId(*key_id),
        iv,
        tag,
        ct,
    })
}

/// Seals `plaintext` under `key` in format `wire` with the given nonce. Only tests and
/// vectors should pick the nonce; real packets use [`seal`].
pub fn seal_with_iv(key: &Key, wire: Wire, iv: [u8; IV_LEN], plaintext: &Plaintext) -> Datagram {
    let mut buf = [0u8; PLAINTEXT_LEN];
    let len = match wire {
        Wire::V1 => {
            buf = plaintext.encode();
            buf.len()
        }
        Wire::V0 => {
            let v0 = plaintext.encode_v0();
            for (dst, src) in buf.iter_mut().zip(v0) {
                *dst = src;
            }
            v0.len()
        }
    };
    let ct = buf.get_mut(..len).unwrap_or_default();
    let nonce = (&iv).into();
    // A message of under 60 bytes is far below every AES-GCM(-SIV) length limit, so
    // sealing cannot fail; an all-zero tag would only make the datagram fail to open.
    let tag = match wire {
        Wire::V1 => key.siv().encrypt_in_place_detached(nonce, &[], ct),
        Wire::V0 => key.gcm().encrypt_in_place_detached(nonce, &[], ct),
    }
    .unwrap_or_default();
    let mut bytes = [0u8; DATAGRAM_LEN];
    let key_id = key.id();
    let fields = key_id.0.iter().chain(&iv).chain(tag.iter()).chain(&*ct);
    for (dst, src) in bytes.iter_mut().zip(fields) {
        *dst = *src;
    }
    Datagram { bytes, wire }
}

/// Seals `plaintext` under `key` in format `wire` with a fresh random nonce from the OS
/// CSPRNG.
pub fn seal(key: &Key, wire: Wire, plaintext: &Plaintext) -> Result<Datagram, getrandom::Error> {
    let mut iv = [0u8; IV_LEN];
    getrandom::fill(&mut iv)?;
    Ok(seal_with_iv(key, wire, iv, plaintext))
}

/// Opens a datagram of either format (its length says which) with `key`. `None` means it
/// did not authenticate (or is not a datagram at all): deliberately no detail.
pub fn open(key: &Key, datagram: &[u8]) -> Option<Plaintext> {
    let parts = split(datagram)?;
    open_parts(key, &parts)
}

pub(crate) fn open_parts(key: &Key, parts: &Parts<'_>) -> Option<Plaintext> {
    if parts.key_id != key.id() {
        return None;
    }
    let mut buf = [0u8; PLAINTEXT_LEN];
    let pt = buf.get_mut(..parts.ct.len())?;
    pt.copy_from_slice(parts.ct);
    let nonce = parts.iv.into();
    let tag = parts.tag.into();
    match parts.wire {
        Wire::V1 => key.siv().decrypt_in_place_detached(nonce, &[], pt, tag),
        Wire::V0 => key.gcm().decrypt_in_place_detached(nonce, &[], pt, tag),
    }
    .ok()?;
    match parts.wire {
        Wire::V1 => Plaintext::decode(pt),
        Wire::V0 => Plaintext::decode_v0(pt),
    }
}
