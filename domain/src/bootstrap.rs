//! The start-up rule for the first god key.

use crate::key::{MIN_SUPPLIED_LEN, PresentedKey};
use crate::secret::Secret;

/// A bootstrap key the operator supplied (`--bootstrap-key` or `CLOACINA_BOOTSTRAP_KEY`).
#[derive(Debug, Clone)]
pub struct SuppliedBootstrapKey {
    text: Secret,
    key: PresentedKey,
}

/// Why a supplied bootstrap key is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BootstrapKeyError {
    #[error("the bootstrap key must be at least 16 characters")]
    TooShort,
    #[error("the bootstrap key must be 16 to 256 visible ASCII characters, without spaces")]
    Invalid,
    #[error("the bootstrap key looks like a Cloacina key but its checksum is wrong")]
    BadChecksum,
}

impl SuppliedBootstrapKey {
    /// Checks a supplied key.
    ///
    /// # Errors
    /// [`BootstrapKeyError`] when it is shorter than 16 characters, holds characters a bearer
    /// token cannot carry, or is a mistyped minted key.
    pub fn parse(text: Secret) -> Result<Self, BootstrapKeyError> {
        if text.expose().chars().count() < MIN_SUPPLIED_LEN {
            return Err(BootstrapKeyError::TooShort);
        }
        match PresentedKey::parse(text.expose()) {
            Ok(key) => Ok(Self { text, key }),
            Err(crate::key::KeyFormatError::BadChecksum) => Err(BootstrapKeyError::BadChecksum),
            Err(crate::key::KeyFormatError::Malformed) => Err(BootstrapKeyError::Invalid),
        }
    }

    /// The key, classified as minted (stored as a digest) or supplied (stored as argon2id).
    pub fn key(&self) -> &PresentedKey {
        &self.key
    }

    /// The key's text, for the bootstrap file.
    pub fn text(&self) -> &Secret {
        &self.text
    }
}

/// What start-up does about the god key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootstrapDecision {
    /// A non-revoked god key exists: do nothing. `supplied_ignored` says a supplied key was
    /// given and will not be used, which the operator is told.
    Skip { supplied_ignored: bool },
    /// Create a god key from the supplied text.
    UseSupplied,
    /// Create a god key from random bytes.
    Generate,
}

/// Decides from the number of non-revoked god keys and whether a key was supplied.
pub fn decide(active_god_keys: u64, supplied: bool) -> BootstrapDecision {
    match (active_god_keys, supplied) {
        (0, true) => BootstrapDecision::UseSupplied,
        (0, false) => BootstrapDecision::Generate,
        (_, supplied) => BootstrapDecision::Skip { supplied_ignored: supplied },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn start_up_creates_a_key_only_when_no_god_key_is_active() {
        assert_eq!(decide(0, false), BootstrapDecision::Generate);
        assert_eq!(decide(0, true), BootstrapDecision::UseSupplied);
        assert_eq!(decide(1, false), BootstrapDecision::Skip { supplied_ignored: false });
        assert_eq!(decide(3, true), BootstrapDecision::Skip { supplied_ignored: true });
    }

    #[test]
    fn a_supplied_key_shorter_than_16_characters_is_refused() {
        assert_eq!(SuppliedBootstrapKey::parse(Secret::new("short-key")).unwrap_err(), BootstrapKeyError::TooShort);
        assert!(SuppliedBootstrapKey::parse(Secret::new("my-secret-admin-key-here")).is_ok());
    }

    #[test]
    fn a_supplied_key_with_spaces_is_refused() {
        assert_eq!(
            SuppliedBootstrapKey::parse(Secret::new("my secret admin key here")).unwrap_err(),
            BootstrapKeyError::Invalid
        );
    }

    proptest! {
        #[test]
        fn supplied_key_parsing_never_panics(s in "\\PC{0,300}") {
            let _ = SuppliedBootstrapKey::parse(Secret::new(s));
        }
    }
}
