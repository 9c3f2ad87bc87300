//! The 94-byte datagram: `key_id` (8) || `iv` (12) || `tag` (16) || `ct` (58).
//!
//! The tag comes before the ciphertext, unlike most AEAD libraries' combined output, so
//! sealing and opening use the detached in-place API.

use aes_gcm_siv::aead::AeadInPlace;
use aes_gcm_siv::{Nonce, Tag};

use crate::key::{Key, KeyId, KEY_ID_LEN};
use crate::plaintext::{Plaintext, PLAINTEXT_LEN};

/// Length of the nonce.
pub const IV_LEN: usize = 12;
/// Length of the authentication tag.
pub const TAG_LEN: usize = 16;
/// Length of every valid datagram.
pub const DATAGRAM_LEN: usize = KEY_ID_LEN + IV_LEN + TAG_LEN + PLAINTEXT_LEN;

/// The fields of a datagram, borrowed out of its bytes.
pub(crate) struct Parts {
    pub(crate) key_id: KeyId,
    iv: [u8; IV_LEN],
    tag: [u8; TAG_LEN],
    ct: [u8; PLAINTEXT_LEN],
}

/// Splits a datagram into its fields; `None` unless it is exactly [`DATAGRAM_LEN`] bytes.
pub(crate) fn split(bytes: &[u8]) -> Option<Parts> {
    let bytes: &[u8; DATAGRAM_LEN] = bytes.try_into().ok()?;
    let (key_id, rest) = bytes.split_first_chunk::<KEY_ID_LEN>()?;
    let (iv, rest) = rest.split_first_chunk::<IV_LEN>()?;
    let (tag, ct) = rest.split_first_chunk::<TAG_LEN>()?;
    Some(Parts {
        key_id: KeyId(*key_id),
        iv: *iv,
        tag: *tag,
        ct: ct.try_into().ok()?,
    })
}

/// Seals `plaintext` under `key` with the given nonce. Only tests and vectors should pick
/// the nonce; real packets use [`seal`].
pub fn seal_with_iv(key: &Key, iv: [u8; IV_LEN], plaintext: &Plaintext) -> [u8; DATAGRAM_LEN] {
    let mut ct = plaintext.encode();
    let tag = key
        .cipher()
        .encrypt_in_place_detached(Nonce::from_slice(&iv), &[], &mut ct)
        // A 58-byte message is far below every AES-GCM-SIV length limit, so sealing
        // cannot fail; an all-zero tag would only make the datagram fail to open.
        .unwrap_or_default();
    let mut out = [0u8; DATAGRAM_LEN];
    let key_id = key.id();
    let fields = key_id.0.iter().chain(&iv).chain(tag.iter()).chain(&ct);
    for (dst, src) in out.iter_mut().zip(fields) {
        *dst = *src;
    }
    out
}

/// Seals `plaintext` under `key` with a fresh random nonce from the OS CSPRNG.
pub fn seal(key: &Key, plaintext: &Plaintext) -> Result<[u8; DATAGRAM_LEN], getrandom::Error> {
    let mut iv = [0u8; IV_LEN];
    getrandom::fill(&mut iv)?;
    Ok(seal_with_iv(key, iv, plaintext))
}

/// Opens a datagram with `key`. `None` means it did not authenticate (or is not a
/// datagram at all): deliberately no detail.
pub fn open(key: &Key, datagram: &[u8]) -> Option<Plaintext> {
    let parts = split(datagram)?;
    open_parts(key, &parts)
}

pub(crate) fn open_parts(key: &Key, parts: &Parts) -> Option<Plaintext> {
    if parts.key_id != key.id() {
        return None;
    }
    let mut buf = parts.ct;
    key.cipher()
        .decrypt_in_place_detached(
            Nonce::from_slice(&parts.iv),
            &[],
            &mut buf,
            Tag::from_slice(&parts.tag),
        )
        .ok()?;
    Plaintext::decode(&buf)
}
