//! The `api_keys` table.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::audit::AuditEntry;
use crate::key::ApiKeyId;
use crate::record::{KeyRecord, NewKey};
use crate::tenant::TenantName;

use super::StoreError;

/// What a revocation did.
#[derive(Debug, Clone, PartialEq)]
pub enum RevokeOutcome {
    /// The key is now revoked; the row as it was before.
    Revoked(KeyRecord),
    /// It was revoked already; nothing changed.
    AlreadyRevoked(KeyRecord),
    /// No key has this id.
    NotFound,
    /// It is the last active god key; nothing changed.
    LastGodKey,
}

/// The `api_keys` table.
///
/// # Errors
/// Every method fails with [`StoreError::Unavailable`] when the database cannot be reached
/// (callers retry later), and [`StoreError::Unexpected`] for anything it cannot explain.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// Inserts a new row.
    ///
    /// # Errors
    /// MUST fail with a unique [`StoreError::Constraint`], leaving the table unchanged, if an
    /// unrevoked key of the same tenant (for a god key: an unrevoked god key) has the name, or
    /// if the id exists (ids are random: a bug, never a business case). Appends `audit` to
    /// its chain in the same transaction: no row, no key.
    async fn insert(&self, key: &NewKey, audit: &AuditEntry) -> Result<(), StoreError>;

    /// Inserts `key`, a god key, only if no active god key exists at `now`; the check and the
    /// insert are one atomic step, so concurrent callers (replicas) create exactly one. An
    /// expired, unrevoked god key holding `key`'s name is revoked at `now` in the same step.
    ///
    /// MUST return `true` if it inserted (with `audit` appended in the same step), `false`
    /// (no row) if an active god key already existed.
    async fn insert_first_god_key(
        &self,
        key: &NewKey,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<bool, StoreError>;

    /// The row with this id, revoked or not. MUST return `None` if there is none.
    async fn find(&self, id: ApiKeyId) -> Result<Option<KeyRecord>, StoreError>;

    /// Every row (`tenant` = `None`) or the rows of one tenant's keys, revoked ones included,
    /// oldest first.
    async fn list(&self, tenant: Option<TenantName>) -> Result<Vec<KeyRecord>, StoreError>;

    /// The active (at `now`) rows whose secret is an argon2id hash: operator-supplied keys.
    async fn active_supplied_keys(&self, now: DateTime<Utc>) -> Result<Vec<KeyRecord>, StoreError>;

    /// The number of active (at `now`) god keys.
    async fn count_active_god_keys(&self, now: DateTime<Utc>) -> Result<u64, StoreError>;

    /// Marks a key revoked at `at`. Refuses, atomically, to revoke the last active god key.
    ///
    /// MUST return [`RevokeOutcome::NotFound`] for an unknown id,
    /// [`RevokeOutcome::AlreadyRevoked`] (unchanged) for a revoked key,
    /// [`RevokeOutcome::LastGodKey`] (unchanged) when no other active god key would remain.
    /// Appends `audit` in the same transaction when, and only when, it revokes.
    async fn revoke(&self, id: ApiKeyId, at: DateTime<Utc>, audit: &AuditEntry) -> Result<RevokeOutcome, StoreError>;

    /// Records when keys were last used. Unknown ids are ignored; an older time never
    /// replaces a newer one.
    async fn record_last_used(&self, uses: Vec<(ApiKeyId, DateTime<Utc>)>) -> Result<(), StoreError>;
}
