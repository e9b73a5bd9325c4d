//! Authenticate a bearer token: the hot path of every request.
//!
//! Cost model (docs/api.md, "Keys and roles"):
//! - a malformed token or a bad checksum: refused by [`PresentedKey::parse`], no I/O, no hash;
//! - a well-formed minted key: one SHA-256, then the verified-key cache; on a miss, one
//!   primary-key lookup whose result (a hit *or* a miss) is cached for the TTL;
//! - any other 16–256 character token may be an operator-supplied key: it is checked with
//!   argon2id against the (few) active supplied-key rows, concurrent attempts with the same
//!   token coalesced into one, and the verdict cached for the TTL. With no such rows, no hash.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use cloacina_domain::key::KeyFormatError;
use cloacina_domain::ports::{Clock, KeyStore, SecretHasher, StoreError};
use cloacina_domain::{ApiKeyId, KeyDigest, PresentedKey, Principal, Secret, StoredSecret};
use quick_cache::sync::Cache;
use sha2::{Digest, Sha256};

use cloacina_domain::ports::{AuthOutcome, Metrics};

/// `last_used_at` is written at most this often per key.
const LAST_USED_GRANULARITY_SECS: i64 = 60;

/// Why a token does not authenticate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("malformed API key")]
    Malformed,
    #[error("API key checksum mismatch")]
    BadChecksum,
    #[error("invalid API key")]
    Unknown,
    #[error("API key has been revoked")]
    Revoked,
    #[error("API key has expired")]
    Expired,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl AuthError {
    fn outcome(&self) -> AuthOutcome {
        match self {
            AuthError::Malformed => AuthOutcome::Malformed,
            AuthError::BadChecksum => AuthOutcome::BadChecksum,
            AuthError::Unknown => AuthOutcome::Unknown,
            AuthError::Revoked => AuthOutcome::Revoked,
            AuthError::Expired => AuthOutcome::Expired,
            AuthError::Store(_) => AuthOutcome::Error,
        }
    }
}

/// A verified key as the cache holds it.
#[derive(Debug)]
struct Known {
    principal: Arc<Principal>,
    revoked: bool,
    /// Unix seconds of the last use queued for `last_used_at`.
    last_noted: AtomicI64,
}

#[derive(Clone, Debug)]
enum Entry {
    /// No such key (or, for supplied tokens, no matching one).
    Missing { loaded: DateTime<Utc> },
    /// A minted key's row: its digest and who it is.
    Minted { digest: KeyDigest, known: Arc<Known>, loaded: DateTime<Utc> },
    /// A supplied token that verified.
    Supplied { known: Arc<Known>, loaded: DateTime<Utc> },
}

impl Entry {
    fn loaded(&self) -> DateTime<Utc> {
        match self {
            Entry::Missing { loaded } | Entry::Minted { loaded, .. } | Entry::Supplied { loaded, .. } => *loaded,
        }
    }
}

/// Turns bearer tokens into principals. One per process, shared by every request.
pub struct Authenticator {
    store: Arc<dyn KeyStore>,
    hasher: Arc<dyn SecretHasher>,
    clock: Arc<dyn Clock>,
    metrics: Arc<dyn Metrics>,
    ttl: chrono::Duration,
    minted: Cache<ApiKeyId, Entry>,
    /// Keyed by the SHA-256 of the token (held in memory only).
    supplied: Cache<[u8; 32], Entry>,
    pending_uses: Mutex<HashMap<ApiKeyId, DateTime<Utc>>>,
    /// Told of every [`Forgot`], so what keeps a key's rights beyond one request (a live
    /// socket) can look again.
    observers: std::sync::RwLock<Vec<OnForget>>,
}

/// What the authenticator was told to forget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forgot {
    Key(ApiKeyId),
    Everything,
}

/// Called with each [`Forgot`]; it must return at once.
pub type OnForget = Arc<dyn Fn(Forgot) + Send + Sync>;

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator").field("ttl", &self.ttl).finish_non_exhaustive()
    }
}

impl Authenticator {
    /// Builds an authenticator whose cached verdicts live at most `ttl`.
    pub fn new(deps: &crate::Deps, ttl: Duration, capacity: usize) -> Self {
        Self {
            store: deps.keys.clone(),
            hasher: deps.hasher.clone(),
            clock: deps.clock.clone(),
            metrics: deps.metrics.clone(),
            ttl: chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::seconds(30)),
            minted: Cache::new(capacity.max(16)),
            supplied: Cache::new(1024),
            pending_uses: Mutex::new(HashMap::new()),
            observers: std::sync::RwLock::default(),
        }
    }

    /// Authenticates `token` (the text after `Bearer `).
    ///
    /// # Errors
    /// An [`AuthError`] saying why the token is refused; [`AuthError::Store`] when the
    /// database could not be asked.
    pub async fn authenticate(&self, token: &str) -> Result<Arc<Principal>, AuthError> {
        let result = self.verify(token).await;
        self.metrics.auth_outcome(match &result {
            Ok(_) => AuthOutcome::Success,
            Err(e) => e.outcome(),
        });
        result
    }

    async fn verify(&self, token: &str) -> Result<Arc<Principal>, AuthError> {
        let presented = PresentedKey::parse(token).map_err(|e| match e {
            KeyFormatError::Malformed => AuthError::Malformed,
            KeyFormatError::BadChecksum => AuthError::BadChecksum,
        })?;
        let now = self.clock.now();
        let known = match presented {
            PresentedKey::Minted { id, digest } => {
                match self.cached(&self.minted, &id, now, self.load_minted(id, now)).await? {
                    Entry::Minted { digest: stored, known, .. } if stored == digest => known,
                    _ => return Err(AuthError::Unknown),
                }
            }
            PresentedKey::Supplied(secret) => {
                let fingerprint: [u8; 32] = Sha256::digest(secret.expose().as_bytes()).into();
                match self.cached(&self.supplied, &fingerprint, now, self.load_supplied(&secret, now)).await? {
                    Entry::Supplied { known, .. } => known,
                    _ => return Err(AuthError::Unknown),
                }
            }
        };
        if known.revoked {
            return Err(AuthError::Revoked);
        }
        if known.principal.expires_at.is_some_and(|e| e <= now) {
            return Err(AuthError::Expired);
        }
        self.note_use(&known, now);
        Ok(known.principal.clone())
    }

    /// A cache read that honours the TTL; on a miss or a stale entry, `load` runs once for
    /// all concurrent callers with the same key.
    async fn cached<K>(
        &self,
        cache: &Cache<K, Entry>,
        key: &K,
        now: DateTime<Utc>,
        load: impl Future<Output = Result<Entry, AuthError>>,
    ) -> Result<Entry, AuthError>
    where
        K: Eq + std::hash::Hash + Clone,
    {
        if let Some(entry) = cache.get(key) {
            if now - entry.loaded() < self.ttl {
                self.metrics.auth_cache(true);
                return Ok(entry);
            }
            cache.remove(key);
        }
        self.metrics.auth_cache(false);
        cache.get_or_insert_async(key, load).await
    }

    async fn load_minted(&self, id: ApiKeyId, now: DateTime<Utc>) -> Result<Entry, AuthError> {
        Ok(match self.store.find(id).await? {
            Some(record) => match record.secret {
                StoredSecret::Sha256(digest) => Entry::Minted { digest, known: known(&record), loaded: now },
                StoredSecret::Argon2(_) => Entry::Missing { loaded: now },
            },
            None => Entry::Missing { loaded: now },
        })
    }

    async fn load_supplied(&self, secret: &Secret, now: DateTime<Utc>) -> Result<Entry, AuthError> {
        for record in self.store.active_supplied_keys(now).await? {
            let StoredSecret::Argon2(phc) = &record.secret else { continue };
            self.metrics.argon2_verification();
            match self.hasher.verify(secret, phc).await {
                Ok(true) => return Ok(Entry::Supplied { known: known(&record), loaded: now }),
                Ok(false) => {}
                Err(e) => tracing::warn!(key_id = %record.id, error = %e, "stored argon2 hash could not be checked"),
            }
        }
        Ok(Entry::Missing { loaded: now })
    }

    /// Forgets what the cache knows of one key (after a create or a revoke), and every
    /// supplied-token verdict, which are few and cheap to rebuild.
    pub fn forget(&self, id: ApiKeyId) {
        self.minted.remove(&id);
        self.supplied.clear();
        self.tell(Forgot::Key(id));
    }

    /// Forgets everything (a tenant was deleted, or another replica said something changed).
    pub fn forget_all(&self) {
        self.minted.clear();
        self.supplied.clear();
        self.tell(Forgot::Everything);
    }

    /// From now on, `observer` is told of every forget.
    pub fn on_forget(&self, observer: OnForget) {
        if let Ok(mut observers) = self.observers.write() {
            observers.push(observer);
        }
    }

    fn tell(&self, what: Forgot) {
        let observers = self.observers.read().map(|o| o.clone()).unwrap_or_default();
        for observer in observers {
            observer(what);
        }
    }

    fn note_use(&self, known: &Known, now: DateTime<Utc>) {
        let secs = now.timestamp();
        let last = known.last_noted.load(Ordering::Relaxed);
        if secs - last < LAST_USED_GRANULARITY_SECS {
            return;
        }
        if known.last_noted.compare_exchange(last, secs, Ordering::Relaxed, Ordering::Relaxed).is_ok()
            && let Ok(mut pending) = self.pending_uses.lock()
        {
            pending.insert(known.principal.key_id, now);
        }
    }

    /// Writes the queued `last_used_at` times. The server calls this on a timer, off the
    /// request path.
    ///
    /// # Errors
    /// The store's error; the queued times are then kept for the next call.
    pub async fn flush_last_used(&self) -> Result<usize, StoreError> {
        let batch: Vec<_> = match self.pending_uses.lock() {
            Ok(mut pending) => pending.drain().collect(),
            Err(_) => return Ok(0),
        };
        if batch.is_empty() {
            return Ok(0);
        }
        let n = batch.len();
        if let Err(e) = self.store.record_last_used(batch.clone()).await {
            if let Ok(mut pending) = self.pending_uses.lock() {
                for (id, at) in batch {
                    pending.entry(id).or_insert(at);
                }
            }
            return Err(e);
        }
        Ok(n)
    }
}

fn known(record: &cloacina_domain::KeyRecord) -> Arc<Known> {
    Arc::new(Known {
        principal: Arc::new(record.principal()),
        revoked: record.revoked,
        last_noted: AtomicI64::new(i64::MIN / 2),
    })
}

#[cfg(test)]
pub(crate) mod tests;
