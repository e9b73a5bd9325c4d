//! A tenant's sealed secrets and its wrapped data key. Stores keep ciphertext only: sealing
//! and opening are the use case's, with the master key ([`crate::secrets`]).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::audit::AuditEntry;
use crate::secrets::{SealedSecret, SecretName, SecretRecord, SecretWrite, WrappedKey};
use crate::tenant::TenantName;

use super::{Lookup, StoreError};

/// Whether a write makes a new secret or replaces an existing one's fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretMode {
    Create,
    Rotate,
}

/// What a write did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretPut {
    /// Stored; the record as it now is.
    Stored(SecretRecord),
    /// Create: the name is taken. Nothing changed.
    Exists,
    /// Rotate: there is no such secret. Nothing changed.
    Missing,
    /// The write was sealed under a data key that is no longer the tenant's (another replica
    /// made the first one meanwhile): seal again under the one returned. Nothing changed.
    KeyChanged(WrappedKey),
}

/// What a task's secrets need opened: the tenant's data key (if it has one) and the sealed
/// secrets asked for that exist.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedForTask {
    pub key: Option<WrappedKey>,
    pub secrets: Vec<(SecretName, SealedSecret)>,
}

/// A tenant's secrets. `Option` answers are `None` when the tenant does not exist.
///
/// # Errors
/// Every method fails with [`StoreError::Unavailable`] when the database cannot be reached
/// and [`StoreError::Unexpected`] for anything it cannot explain.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait SecretStore: Send + Sync {
    /// The tenant's wrapped data key, if it has one yet (`Some(None)`: not yet).
    async fn data_key(&self, tenant: &TenantName) -> Result<Option<Option<WrappedKey>>, StoreError>;

    /// Writes a secret sealed under `key`, the tenant's data key: in one transaction, the
    /// key is stored first if the tenant has none (`first_key`), or checked to be the one
    /// stored ([`SecretPut::KeyChanged`] otherwise), and `audit` is appended when it stores.
    async fn put_secret(
        &self,
        tenant: &TenantName,
        write: &SecretWrite,
        key: &WrappedKey,
        first_key: bool,
        mode: SecretMode,
        audit: &AuditEntry,
    ) -> Result<Option<SecretPut>, StoreError>;

    /// The tenant's secrets, by name: metadata only.
    async fn list_secrets(&self, tenant: &TenantName) -> Result<Option<Vec<SecretRecord>>, StoreError>;

    async fn get_secret(&self, tenant: &TenantName, name: &SecretName) -> Result<Lookup<SecretRecord>, StoreError>;

    /// Deletes a secret, appending `audit` when it does.
    async fn delete_secret(
        &self,
        tenant: &TenantName,
        name: &SecretName,
        audit: &AuditEntry,
    ) -> Result<Lookup<SecretRecord>, StoreError>;

    /// The data key and the sealed secrets of these names (those that exist), for a task.
    async fn sealed_secrets(
        &self,
        tenant: &TenantName,
        names: &[SecretName],
    ) -> Result<Option<SealedForTask>, StoreError>;

    /// Replaces the tenant's wrapped data key with `new` if it is still `old` (a rewrap by
    /// master key; nothing else changes). MUST return `false`, changing nothing, when the
    /// stored key is not `old`.
    async fn rewrap_data_key(
        &self,
        tenant: &TenantName,
        old: &WrappedKey,
        new: &WrappedKey,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
}
