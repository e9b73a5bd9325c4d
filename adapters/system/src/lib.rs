//! Adapters to the machine itself: the system clock, the operating system's random source,
//! and argon2id hashing with a concurrency cap.
//!
//! # Layout
//! - [`SystemClock`]: [`Clock`] from the wall clock.
//! - [`OsKeyGenerator`]: [`KeyGenerator`] from a CSPRNG seeded by the OS.
//! - [`Argon2Hasher`]: [`SecretHasher`] with the OWASP parameters (19 MiB, t=2, p=1), at most
//!   one hash per core at a time, off the async threads.

use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cloacina_domain::ports::{Clock, HashError, KeyGenerator, SecretHasher};
use cloacina_domain::{ApiKeyId, Secret};
use rand::Rng;
use tokio::sync::Semaphore;

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// Random ids and secrets from the thread-local CSPRNG (ChaCha, seeded and reseeded from the OS).
#[derive(Debug, Default, Clone, Copy)]
pub struct OsKeyGenerator;

impl KeyGenerator for OsKeyGenerator {
    fn key_id(&self) -> ApiKeyId {
        let bytes: [u8; 16] = rand::rng().random();
        ApiKeyId::from_uuid(uuid::Builder::from_random_bytes(bytes).into_uuid())
    }

    fn secret(&self) -> [u8; 32] {
        rand::rng().random()
    }
}

/// argon2id hashing for operator-supplied keys.
#[derive(Debug, Clone)]
pub struct Argon2Hasher {
    permits: Arc<Semaphore>,
    params: Params,
    runs: Arc<std::sync::atomic::AtomicU64>,
}

impl Argon2Hasher {
    /// OWASP's argon2id parameters: m = 19 MiB, t = 2, p = 1.
    ///
    /// # Panics
    /// Never: the constant parameters are valid.
    pub fn new() -> Self {
        #[allow(clippy::unwrap_used)]
        let params = Params::new(19 * 1024, 2, 1, None).unwrap();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self { permits: Arc::new(Semaphore::new(cores)), params, runs: Arc::default() }
    }

    /// How many hashes or verifications have run: the benchmarks report it.
    pub fn runs(&self) -> u64 {
        self.runs.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    async fn blocking<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T, HashError> {
        let _permit = self.permits.acquire().await.map_err(|e| HashError(e.to_string()))?;
        self.runs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tokio::task::spawn_blocking(f).await.map_err(|e| HashError(e.to_string()))
    }
}

impl Default for Argon2Hasher {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl SecretHasher for Argon2Hasher {
    async fn hash(&self, secret: &Secret) -> Result<String, HashError> {
        let argon2 = self.argon2();
        let secret = secret.clone();
        let salt_bytes: [u8; 16] = rand::rng().random();
        self.blocking(move || {
            let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| HashError(e.to_string()))?;
            argon2
                .hash_password(secret.expose().as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(|e| HashError(e.to_string()))
        })
        .await?
    }

    async fn verify(&self, secret: &Secret, hash: &str) -> Result<bool, HashError> {
        let argon2 = self.argon2();
        let secret = secret.clone();
        let hash = hash.to_owned();
        self.blocking(move || {
            let parsed = PasswordHash::new(&hash).map_err(|e| HashError(e.to_string()))?;
            Ok(argon2.verify_password(secret.expose().as_bytes(), &parsed).is_ok())
        })
        .await?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_own_secret_and_nothing_else() {
        let h = Argon2Hasher::new();
        let phc = h.hash(&Secret::new("my-secret-admin-key-here")).await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(h.verify(&Secret::new("my-secret-admin-key-here"), &phc).await.unwrap());
        assert!(!h.verify(&Secret::new("my-secret-admin-key-herE"), &phc).await.unwrap());
        assert!(h.verify(&Secret::new("x"), "not a phc string").await.is_err());
        assert_eq!(h.runs(), 4);
    }

    #[test]
    fn generated_ids_and_secrets_differ() {
        let g = OsKeyGenerator;
        assert_ne!(g.key_id(), g.key_id());
        assert_ne!(g.secret(), g.secret());
    }
}
