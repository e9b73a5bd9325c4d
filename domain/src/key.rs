//! The API key format.
//!
//! A minted key reads `clk_<id><secret><checksum>`, 75 characters of the URL-safe base64
//! alphabet after the prefix:
//! - `id`: the key row's UUID, 16 bytes → 22 characters. It is public (listings show it) and
//!   lets verification find the row by primary key, never by scanning hashes.
//! - `secret`: 32 random bytes (256 bits) → 43 characters.
//! - `checksum`: CRC-32 of everything before it, 4 bytes → 6 characters. A mistyped or forged
//!   key is refused before any lookup, and secret scanners can recognise ours.
//!
//! A minted key has full entropy, so the server stores only its SHA-256 [`KeyDigest`].
//! Any other string of 16 to 256 visible ASCII characters may be an operator-supplied key
//! (`--bootstrap-key`), which is stored as an argon2id hash instead.

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::secret::Secret;

/// The prefix of every minted key.
pub const KEY_PREFIX: &str = "clk_";
const ID_CHARS: usize = 22;
const SECRET_CHARS: usize = 43;
const CHECKSUM_CHARS: usize = 6;
/// The length of a minted key in characters.
pub const MINTED_KEY_LEN: usize = 4 + ID_CHARS + SECRET_CHARS + CHECKSUM_CHARS;
/// The shortest string accepted as an operator-supplied key.
pub const MIN_SUPPLIED_LEN: usize = 16;
/// The longest string accepted as an operator-supplied key.
pub const MAX_SUPPLIED_LEN: usize = 256;

/// An API key's id: the key row's primary key, public.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ApiKeyId(Uuid);

impl ApiKeyId {
    /// Wraps a UUID.
    pub fn from_uuid(id: Uuid) -> Self {
        Self(id)
    }

    /// The UUID.
    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl fmt::Display for ApiKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl fmt::Debug for ApiKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKeyId({})", self.0.hyphenated())
    }
}

/// The text is not a key id (a UUID).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a valid key id (expected a UUID)")]
pub struct ApiKeyIdError;

impl FromStr for ApiKeyId {
    type Err = ApiKeyIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::try_parse(s).map(Self).map_err(|_| ApiKeyIdError)
    }
}

/// The SHA-256 digest of a minted key's full text: what the server stores for it.
#[derive(Clone, Copy)]
pub struct KeyDigest([u8; 32]);

impl KeyDigest {
    /// The digest of `text`.
    pub fn of(text: &str) -> Self {
        Self(Sha256::digest(text.as_bytes()).into())
    }

    /// Wraps stored bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw bytes, for storage.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl PartialEq for KeyDigest {
    /// Constant time, so a comparison reveals nothing of where two digests differ.
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for KeyDigest {}

impl fmt::Debug for KeyDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyDigest(..)")
    }
}

/// A key minted by the server: its id and its 256-bit secret.
#[derive(Clone)]
pub struct MintedKey {
    id: ApiKeyId,
    secret: [u8; 32],
}

impl MintedKey {
    /// Assembles a key from an id and random bytes (from the key generator port).
    pub fn new(id: ApiKeyId, secret: [u8; 32]) -> Self {
        Self { id, secret }
    }

    /// The key's id.
    pub fn id(&self) -> ApiKeyId {
        self.id
    }

    /// The full text `clk_…`, returned to the caller exactly once.
    pub fn plaintext(&self) -> Secret {
        let mut text = String::with_capacity(MINTED_KEY_LEN);
        text.push_str(KEY_PREFIX);
        URL_SAFE_NO_PAD.encode_string(self.id.0.as_bytes(), &mut text);
        URL_SAFE_NO_PAD.encode_string(self.secret, &mut text);
        let checksum = crc32fast::hash(text.as_bytes()).to_be_bytes();
        URL_SAFE_NO_PAD.encode_string(checksum, &mut text);
        Secret::new(text)
    }

    /// The digest the server stores.
    pub fn digest(&self) -> KeyDigest {
        KeyDigest::of(self.plaintext().expose())
    }
}

impl fmt::Debug for MintedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MintedKey").field("id", &self.id).finish_non_exhaustive()
    }
}

/// Why a presented bearer token was refused before any lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyFormatError {
    /// Not a minted key and not a plausible operator-supplied key.
    #[error("malformed API key")]
    Malformed,
    /// Shaped like a minted key, but the checksum does not match: mistyped or forged.
    #[error("API key checksum mismatch")]
    BadChecksum,
}

/// A bearer token after the format check, before any lookup.
#[derive(Debug, Clone)]
pub enum PresentedKey {
    /// A well-formed minted key: look its row up by `id`, compare `digest`.
    Minted { id: ApiKeyId, digest: KeyDigest },
    /// Possibly an operator-supplied key: only an argon2id verification can tell.
    Supplied(Secret),
}

impl PresentedKey {
    /// Classifies a bearer token. Costs no I/O and no hashing beyond one SHA-256.
    ///
    /// # Errors
    /// [`KeyFormatError::BadChecksum`] for a minted-shaped key whose checksum fails;
    /// [`KeyFormatError::Malformed`] for anything that is neither a minted key nor 16–256
    /// visible ASCII characters.
    pub fn parse(token: &str) -> Result<Self, KeyFormatError> {
        if let Some(id) = minted_shape(token) {
            let id = id?;
            return Ok(Self::Minted { id, digest: KeyDigest::of(token) });
        }
        let len = token.len();
        if (MIN_SUPPLIED_LEN..=MAX_SUPPLIED_LEN).contains(&len) && token.bytes().all(|b| b.is_ascii_graphic()) {
            Ok(Self::Supplied(Secret::new(token)))
        } else {
            Err(KeyFormatError::Malformed)
        }
    }
}

/// `None` if `token` is not shaped like a minted key; otherwise the checked id.
fn minted_shape(token: &str) -> Option<Result<ApiKeyId, KeyFormatError>> {
    let body = token.strip_prefix(KEY_PREFIX)?;
    if token.len() != MINTED_KEY_LEN || !body.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return None;
    }
    let (signed, checksum) = token.split_at(MINTED_KEY_LEN - CHECKSUM_CHARS);
    let expected = crc32fast::hash(signed.as_bytes()).to_be_bytes();
    let checksum_ok = URL_SAFE_NO_PAD.decode(checksum).is_ok_and(|c| c.as_slice() == expected.as_slice());
    if !checksum_ok {
        return Some(Err(KeyFormatError::BadChecksum));
    }
    let id_text = &body[..ID_CHARS];
    let id = URL_SAFE_NO_PAD.decode(id_text).ok().and_then(|b| Uuid::from_slice(&b).ok()).map(ApiKeyId);
    Some(id.ok_or(KeyFormatError::BadChecksum))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(seed: u8) -> MintedKey {
        MintedKey::new(ApiKeyId::from_uuid(Uuid::from_bytes([seed; 16])), [seed.wrapping_add(1); 32])
    }

    #[test]
    fn a_minted_key_has_the_documented_shape() {
        let text = key(7).plaintext();
        let text = text.expose();
        assert!(text.starts_with("clk_"));
        assert_eq!(text.len(), MINTED_KEY_LEN);
        assert_eq!(MINTED_KEY_LEN, 75);
    }

    #[test]
    fn a_minted_key_parses_back_to_its_id_and_digest() {
        let k = key(9);
        match PresentedKey::parse(k.plaintext().expose()).unwrap() {
            PresentedKey::Minted { id, digest } => {
                assert_eq!(id, k.id());
                assert_eq!(digest, k.digest());
            }
            other => panic!("expected minted, got {other:?}"),
        }
    }

    #[test]
    fn a_single_changed_character_fails_the_checksum() {
        let text = key(3).plaintext().expose().to_owned();
        let mut bytes = text.into_bytes();
        bytes[30] = if bytes[30] == b'A' { b'B' } else { b'A' };
        let typo = String::from_utf8(bytes).unwrap();
        assert_eq!(PresentedKey::parse(&typo).unwrap_err(), KeyFormatError::BadChecksum);
    }

    #[test]
    fn short_or_non_ascii_tokens_are_malformed() {
        for bad in ["", "short", "clk_", "has space in it here", "ключ-ключ-ключ-ключ", &"x".repeat(257)]
        {
            assert_eq!(PresentedKey::parse(bad).unwrap_err(), KeyFormatError::Malformed, "{bad:?}");
        }
    }

    #[test]
    fn other_long_strings_may_be_operator_supplied_keys() {
        for s in ["my-secret-admin-key-here", "clk_your_bootstrap_key_here"] {
            assert!(matches!(PresentedKey::parse(s), Ok(PresentedKey::Supplied(_))), "{s}");
        }
    }

    #[test]
    fn key_ids_round_trip_through_text() {
        let id = key(1).id();
        assert_eq!(id.to_string().parse::<ApiKeyId>().unwrap(), id);
        assert!("not-a-uuid".parse::<ApiKeyId>().is_err());
    }

    #[test]
    fn debug_of_a_minted_key_shows_no_secret() {
        let k = key(5);
        let shown = format!("{k:?}");
        assert!(!shown.contains(&k.plaintext().expose()[30..50]));
    }

    proptest! {
        #[test]
        fn every_minted_key_round_trips(id in any::<[u8; 16]>(), secret in any::<[u8; 32]>()) {
            let k = MintedKey::new(ApiKeyId::from_uuid(Uuid::from_bytes(id)), secret);
            let parsed = PresentedKey::parse(k.plaintext().expose()).unwrap();
            let ok = matches!(parsed, PresentedKey::Minted { id, .. } if id == k.id());
            prop_assert!(ok);
        }

        #[test]
        fn parsing_never_panics(s in "\\PC{0,300}") {
            let _ = PresentedKey::parse(&s);
        }

        #[test]
        fn any_corruption_of_a_minted_key_is_caught(
            secret in any::<[u8; 32]>(), pos in 4usize..MINTED_KEY_LEN, c in "[A-Za-z0-9_-]",
        ) {
            let k = MintedKey::new(ApiKeyId::from_uuid(Uuid::from_bytes([1; 16])), secret);
            let text = k.plaintext().expose().to_owned();
            let mut bytes = text.clone().into_bytes();
            bytes[pos] = c.as_bytes()[0];
            let changed = String::from_utf8(bytes).unwrap();
            prop_assume!(changed != text);
            prop_assert!(PresentedKey::parse(&changed).is_err());
        }
    }
}
