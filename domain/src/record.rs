//! Stored API key rows.

use std::fmt;

use chrono::{DateTime, Utc};

use crate::key::{ApiKeyId, KeyDigest};
use crate::principal::{Authority, Principal};

/// A key's human name: 1 to 128 characters, no control characters.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyName(String);

/// Why a string is not a key name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyNameError {
    #[error("key name must not be empty")]
    Empty,
    #[error("key name must be at most 128 characters")]
    TooLong,
    #[error("key name must not contain control characters")]
    ControlCharacter,
}

impl KeyName {
    /// Checks a name.
    ///
    /// # Errors
    /// A [`KeyNameError`] naming the broken rule.
    pub fn parse(input: &str) -> Result<Self, KeyNameError> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(KeyNameError::Empty);
        }
        if trimmed.chars().count() > 128 {
            return Err(KeyNameError::TooLong);
        }
        if trimmed.chars().any(char::is_control) {
            return Err(KeyNameError::ControlCharacter);
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for KeyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyName({:?})", self.0)
    }
}

/// How a key's secret is kept.
#[derive(Clone, PartialEq, Eq)]
pub enum StoredSecret {
    /// A minted key: the SHA-256 digest of its text.
    Sha256(KeyDigest),
    /// An operator-supplied key: an argon2id PHC string.
    Argon2(String),
}

impl fmt::Debug for StoredSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoredSecret::Sha256(_) => f.write_str("Sha256(..)"),
            StoredSecret::Argon2(_) => f.write_str("Argon2(..)"),
        }
    }
}

/// One row of `api_keys`. Rows are never deleted: revocation is a flag.
#[derive(Clone, Debug, PartialEq)]
pub struct KeyRecord {
    pub id: ApiKeyId,
    pub name: KeyName,
    pub authority: Authority,
    pub secret: StoredSecret,
    pub created_at: DateTime<Utc>,
    pub created_by: Option<ApiKeyId>,
    pub revoked: bool,
    pub revoked_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

/// What creating a key row needs; the rest starts empty.
#[derive(Clone, Debug)]
pub struct NewKey {
    pub id: ApiKeyId,
    pub name: KeyName,
    pub authority: Authority,
    pub secret: StoredSecret,
    pub created_at: DateTime<Utc>,
    pub created_by: Option<ApiKeyId>,
    pub expires_at: Option<DateTime<Utc>>,
}

impl From<NewKey> for KeyRecord {
    fn from(k: NewKey) -> Self {
        KeyRecord {
            id: k.id,
            name: k.name,
            authority: k.authority,
            secret: k.secret,
            created_at: k.created_at,
            created_by: k.created_by,
            revoked: false,
            revoked_at: None,
            expires_at: k.expires_at,
            last_used_at: None,
        }
    }
}

impl KeyRecord {
    /// Whether the key authenticates at `now`: not revoked and not expired.
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        !self.revoked && self.expires_at.is_none_or(|e| e > now)
    }

    /// The caller this key authenticates as.
    pub fn principal(&self) -> Principal {
        Principal {
            key_id: self.id,
            key_name: self.name.as_str().to_owned(),
            authority: self.authority.clone(),
            expires_at: self.expires_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn key_names_are_trimmed_and_checked() {
        assert_eq!(KeyName::parse("  ci-deploy ").unwrap().as_str(), "ci-deploy");
        assert_eq!(KeyName::parse("   ").unwrap_err(), KeyNameError::Empty);
        assert_eq!(KeyName::parse("a\nb").unwrap_err(), KeyNameError::ControlCharacter);
        assert_eq!(KeyName::parse(&"x".repeat(129)).unwrap_err(), KeyNameError::TooLong);
    }

    proptest! {
        #[test]
        fn an_accepted_key_name_is_never_blank_or_controlled(s in "\\PC{0,200}") {
            if let Ok(n) = KeyName::parse(&s) {
                prop_assert!(!n.as_str().is_empty());
                prop_assert!(n.as_str().chars().count() <= 128);
                prop_assert!(!n.as_str().chars().any(char::is_control));
            }
        }
    }
}
