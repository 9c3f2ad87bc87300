//! Key strings: base64 of `key_id` (8 bytes, public) || AES-256 key (32 bytes, secret).

use std::fmt;
use std::sync::OnceLock;

use aes_gcm::Aes256Gcm;
use aes_gcm_siv::aead::KeyInit;
use aes_gcm_siv::Aes256GcmSiv;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use zeroize::{Zeroize, Zeroizing};

/// Length of the public key identifier at the front of every key and datagram.
pub const KEY_ID_LEN: usize = 8;
/// Length of the AES-256 key.
pub const KEY_LEN: usize = 32;
/// Decoded length of a key string.
pub const KEY_STRING_BYTES: usize = KEY_ID_LEN + KEY_LEN;

/// The public identifier of a key, sent in clear in front of each datagram.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub [u8; KEY_ID_LEN]);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

/// Why a key string was refused. Never carries any part of the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The text is not standard, padded base64.
    #[error("key is not valid base64")]
    NotBase64,
    /// Fewer bytes than a key id plus an AES-256 key.
    #[error("key is too short: {0} bytes, expected {KEY_STRING_BYTES}")]
    TooShort(usize),
    /// More bytes than a key id plus an AES-256 key.
    #[error("key has the wrong length: {0} bytes, expected {KEY_STRING_BYTES}")]
    WrongLength(usize),
}

/// A ruroco key: public id plus secret AES-256 key, ready to seal and open in either
/// datagram format.
///
/// The secret is zeroized on drop (so are the expanded round keys inside both ciphers)
/// and never shown by `Debug`.
pub struct Key {
    id: KeyId,
    secret: Zeroizing<[u8; KEY_LEN]>,
    /// Expanded at the first use, not at load: a server with 100,000 keys starts without
    /// 200,000 key schedules, and a key used in one format holds one cipher.
    /// Boxed, so that an unused one costs a pointer, not a key schedule's room.
    siv: OnceLock<Box<Aes256GcmSiv>>,
    gcm: OnceLock<Box<Aes256Gcm>>,
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl Key {
    /// Builds a key from its id and secret bytes.
    pub fn from_parts(id: KeyId, secret: &[u8; KEY_LEN]) -> Self {
        Self {
            id,
            secret: Zeroizing::new(*secret),
            siv: OnceLock::new(),
            gcm: OnceLock::new(),
        }
    }

    /// Parses a key string; surrounding whitespace is ignored.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let bytes = Zeroizing::new(
            STANDARD
                .decode(text.trim())
                .map_err(|_| KeyError::NotBase64)?,
        );
        let whole: &[u8; KEY_STRING_BYTES] = match bytes.len() {
            n if n < KEY_STRING_BYTES => return Err(KeyError::TooShort(n)),
            n => bytes
                .as_slice()
                .try_into()
                .map_err(|_| KeyError::WrongLength(n))?,
        };
        let (id, secret) = whole
            .split_first_chunk::<KEY_ID_LEN>()
            .ok_or(KeyError::TooShort(0))?;
        let secret: &[u8; KEY_LEN] = secret
            .try_into()
            .map_err(|_| KeyError::WrongLength(whole.len()))?;
        Ok(Self::from_parts(KeyId(*id), secret))
    }

    /// Draws a new key (40 bytes) from the operating system's CSPRNG.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut raw = Zeroizing::new([0u8; KEY_STRING_BYTES]);
        getrandom::fill(raw.as_mut())?;
        let mut id = [0u8; KEY_ID_LEN];
        let mut secret = Zeroizing::new([0u8; KEY_LEN]);
        for (dst, src) in id.iter_mut().chain(secret.iter_mut()).zip(raw.iter()) {
            *dst = *src;
        }
        Ok(Self::from_parts(KeyId(id), &secret))
    }

    /// The key string (base64 of id || secret). It is the secret: treat it as such.
    pub fn to_key_string(&self) -> Zeroizing<String> {
        let mut raw = Zeroizing::new([0u8; KEY_STRING_BYTES]);
        for (dst, src) in raw
            .iter_mut()
            .zip(self.id.0.iter().chain(self.secret.iter()))
        {
            *dst = *src;
        }
        Zeroizing::new(STANDARD.encode(raw.as_ref()))
    }

    /// The public key id.
    pub fn id(&self) -> KeyId {
        self.id
    }

    /// Whether two keys hold the same secret material (ids may differ).
    pub fn same_secret(&self, other: &Key) -> bool {
        self.secret.as_ref() == other.secret.as_ref()
    }

    /// The protocol v1 cipher.
    pub(crate) fn siv(&self) -> &Aes256GcmSiv {
        self.siv
            .get_or_init(|| Box::new(Aes256GcmSiv::new(self.secret.as_ref().into())))
    }

    /// The released (v0) format's cipher.
    pub(crate) fn gcm(&self) -> &Aes256Gcm {
        self.gcm
            .get_or_init(|| Box::new(Aes256Gcm::new(self.secret.as_ref().into())))
    }

    /// A keyed digest of the secret, for finding two keys with one secret among many
    /// without comparing each pair: `state` is per keyring and random, so the digest says
    /// nothing outside this process.
    pub(crate) fn secret_digest(&self, state: &std::collections::hash_map::RandomState) -> u64 {
        use std::hash::BuildHasher;
        state.hash_one(self.secret.as_ref())
    }
}

impl Drop for Key {
    fn drop(&mut self) {
        // `secret` zeroizes itself; this clears the id too so nothing of the key string
        // stays behind in freed memory.
        self.id.0.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret() {
        let key = Key::generate().unwrap();
        let shown = format!("{key:?}");
        assert!(shown.contains("redacted"));
        let string = key.to_key_string();
        assert!(!shown.contains(string.as_str()));
        let hex_secret: String = key.secret.iter().map(|b| format!("{b:02x}")).collect();
        assert!(!shown.contains(&hex_secret));
    }

    #[test]
    fn generated_keys_round_trip_and_differ() {
        let a = Key::generate().unwrap();
        let b = Key::generate().unwrap();
        assert_ne!(a.id(), b.id());
        assert!(!a.same_secret(&b));
        let again = Key::parse(&a.to_key_string()).unwrap();
        assert_eq!(again.id(), a.id());
        assert!(again.same_secret(&a));
    }

    #[test]
    fn typed_errors() {
        assert_eq!(
            Key::parse("not base64 !!!").unwrap_err(),
            KeyError::NotBase64
        );
        assert_eq!(Key::parse("").unwrap_err(), KeyError::TooShort(0));
        let long = STANDARD.encode([7u8; 41]);
        assert_eq!(Key::parse(&long).unwrap_err(), KeyError::WrongLength(41));
    }
}
