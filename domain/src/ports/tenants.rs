//! The tenant registry, which tenants exist, what replicas must forget, and the database's health.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::audit::AuditEntry;
use crate::key::ApiKeyId;
use crate::task_network::TenantChange;
use crate::tenant::{NewTenant, TenantName, TenantRecord};

use super::StoreError;

/// Which tenants exist.
///
/// # Errors
/// Every method fails with [`StoreError::Unavailable`] when the database cannot be reached
/// (callers retry later), and [`StoreError::Unexpected`] for anything it cannot explain.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait TenantDirectory: Send + Sync {
    /// MUST return `true` for `public` always, and for every tenant created and not deleted.
    async fn exists(&self, tenant: &TenantName) -> Result<bool, StoreError>;
}

/// What creating a tenant did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantCreated {
    Created(TenantRecord),
    /// A tenant has this name already; nothing changed.
    NameTaken,
}

/// What deleting a tenant did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantDeleted {
    /// Gone: its keys revoked (this many were active), its schema and role dropped.
    Deleted { revoked_keys: u64 },
    /// No tenant has this name.
    NotFound,
}

/// The tenant registry and the database objects behind each tenant.
///
/// # Errors
/// Every method fails with [`StoreError::Unavailable`] when the database cannot be reached
/// (callers retry later), and [`StoreError::Unexpected`] for anything it cannot explain.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait TenantStore: Send + Sync {
    /// Creates the registry row, the schema, the database role (with `new.db_password`), its
    /// grants and the tenant migrations: all of it, or (on any failure) none of it.
    ///
    /// MUST return [`TenantCreated::NameTaken`] if the name is taken (also when a concurrent
    /// create of it committed first).
    ///
    /// # Errors
    /// [`StoreError::Unsupported`] on a single-tenant backend; [`StoreError::Unavailable`]
    /// when the database cannot be reached.
    /// `audit` is appended to the control chain in the same transaction.
    async fn create_tenant(&self, new: &NewTenant, audit: &AuditEntry) -> Result<TenantCreated, StoreError>;

    /// Every tenant, `public` first, then by name.
    async fn list_tenants(&self) -> Result<Vec<TenantRecord>, StoreError>;

    /// One tenant. MUST return `None` if there is none.
    async fn get_tenant(&self, name: &TenantName) -> Result<Option<TenantRecord>, StoreError>;

    /// Applies `change` to the tenant's settings and returns the tenant as it now is; a
    /// claim begun after this returns sees the new settings. MUST return `None` if there is
    /// no such tenant (on a single-tenant backend, every tenant but `public`).
    /// `audit` is appended to the control chain in the same transaction.
    async fn update_tenant(
        &self,
        name: &TenantName,
        change: &TenantChange,
        audit: &AuditEntry,
    ) -> Result<Option<TenantRecord>, StoreError>;

    /// In one transaction: revokes the tenant's active keys (at `at`), drops its schema and
    /// role, deletes its row, and tells every replica to forget what it cached of it.
    ///
    /// MUST return [`StoreError::Unsupported`] on a single-tenant backend; callers never pass
    /// `public`.
    /// `audit` is appended to the control chain in the same transaction (the tenant's own
    /// chain goes with its schema).
    async fn delete_tenant(
        &self,
        name: &TenantName,
        at: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<TenantDeleted, StoreError>;
}

/// What another replica (or this one) changed that caches must forget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalidation {
    /// One key was revoked.
    Key(ApiKeyId),
    /// A tenant was deleted (its keys were revoked with it).
    Tenant(TenantName),
    /// The feed was interrupted: anything may have changed.
    Everything,
}

/// Whether the database answers and its schema is current.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait DatabaseHealth: Send + Sync {
    /// One cheap round trip. MUST fail with [`StoreError::Unavailable`] when the database
    /// cannot be queried.
    async fn ping(&self) -> Result<(), StoreError>;
}
