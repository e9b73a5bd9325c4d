//! Time, randomness and slow hashing.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::key::ApiKeyId;
use crate::secret::Secret;

/// The time. Adapters and services never call `now()` themselves.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// Ids and secret bytes.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait KeyGenerator: Send + Sync {
    /// A fresh random key id.
    fn key_id(&self) -> ApiKeyId;
    /// 32 bytes from a cryptographically secure source.
    fn secret(&self) -> [u8; 32];
}

/// Hashing failed (bad parameters or a corrupt stored hash).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(pub String);

/// Slow, salted hashing for operator-supplied keys (argon2id).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait SecretHasher: Send + Sync {
    /// A PHC string for `secret`.
    ///
    /// # Errors
    /// [`HashError`] when the hasher fails (never because of the secret's content).
    async fn hash(&self, secret: &Secret) -> Result<String, HashError>;
    /// Whether `secret` matches the PHC string `hash`. A secret that does not match is
    /// `Ok(false)`, never an error.
    ///
    /// # Errors
    /// [`HashError`] for a `hash` that is not a PHC string this hasher reads.
    async fn verify(&self, secret: &Secret, hash: &str) -> Result<bool, HashError>;
}
