//! The keys a tenant trusts to sign its packages, and whether it requires signatures.
//! Uploads are checked by [`super::PackageStore::store_package`], in the upload's own
//! transaction, against what these methods keep.

use async_trait::async_trait;

use crate::audit::AuditEntry;
use crate::package::{SignaturePolicy, TrustedSigner};
use crate::tenant::TenantName;

use super::{Lookup, StoreError};

/// What registering a signing key did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignerAdded {
    Added(Box<TrustedSigner>),
    /// The tenant has a key of this name already; nothing changed.
    NameTaken,
    /// The tenant trusts this key already, under this name; nothing changed.
    KeyTaken(String),
}

/// A tenant's trusted signing keys and signature policy. Every method runs in the tenant's
/// own scope; `Option` answers are `None` when the tenant does not exist. Each change appends
/// its `audit` entry in its own transaction, only when it changes something.
///
/// # Errors
/// Every method fails with [`StoreError::Unavailable`] when the database cannot be reached
/// and [`StoreError::Unexpected`] for anything it cannot explain.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait SigningStore: Send + Sync {
    async fn add_signer(
        &self,
        tenant: &TenantName,
        signer: &TrustedSigner,
        audit: &AuditEntry,
    ) -> Result<Option<SignerAdded>, StoreError>;

    /// The tenant's trusted keys, by name.
    async fn list_signers(&self, tenant: &TenantName) -> Result<Option<Vec<TrustedSigner>>, StoreError>;

    /// Removes a trusted key by name: uploads signed by it are no longer accepted where
    /// signatures are required (packages stored before keep their signature rows).
    async fn remove_signer(
        &self,
        tenant: &TenantName,
        name: &str,
        audit: &AuditEntry,
    ) -> Result<Lookup<TrustedSigner>, StoreError>;

    async fn signature_policy(&self, tenant: &TenantName) -> Result<Option<SignaturePolicy>, StoreError>;

    /// Sets whether uploads must be signed; returns the policy as it now is.
    async fn set_signature_policy(
        &self,
        tenant: &TenantName,
        policy: &SignaturePolicy,
        audit: &AuditEntry,
    ) -> Result<Option<SignaturePolicy>, StoreError>;
}
