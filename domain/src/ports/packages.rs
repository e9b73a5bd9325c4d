//! A tenant's uploaded packages.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::audit::AuditEntry;
use crate::package::{NewPackage, PackageDeleted, PackageRecord, PackageStored, StoredArchive, StoredManifest};
use crate::tenant::TenantName;

use super::{Lookup, StoreError};

/// A tenant's uploaded packages. Every method runs in the tenant's own scope.
///
/// # Errors
/// Every method fails with [`StoreError::Unavailable`] when the database cannot be reached
/// and [`StoreError::Unexpected`] for anything it cannot explain; a write a schema rule
/// refuses despite the domain's checks is [`StoreError::Constraint`].
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait PackageStore: Send + Sync {
    /// Stores an upload and, in the same transaction, puts its workflows in force unless a
    /// higher version of the same package is (paused flags are kept). What to do is the
    /// domain's decision ([`NewPackage::plan_upload`], [`crate::package::workflows_in_force`]),
    /// taken under a lock of the package name so that concurrent uploads see each other.
    ///
    /// MUST return `None` if the tenant does not exist; [`PackageStored::Existing`], changing
    /// nothing, for bytes uploaded before (also when they were committed by a concurrent
    /// upload); [`PackageStored::Refused`], changing nothing, for the same name and version
    /// with other content or a workflow name another package declares.
    /// `audit` is appended, in the same transaction, only when the upload stores a version.
    async fn store_package(
        &self,
        tenant: &TenantName,
        new: &NewPackage,
        audit: &AuditEntry,
    ) -> Result<Option<PackageStored>, StoreError>;

    /// The tenant's packages, by name then newest version first. `None` if no such tenant.
    async fn list_packages(&self, tenant: &TenantName) -> Result<Option<Vec<PackageRecord>>, StoreError>;

    /// Deletes one version. If its workflows were in force, the highest remaining version's
    /// take their place (paused flags kept); with none left they go.
    ///
    /// MUST return [`PackageDeleted::Deleted`] with the deleted row;
    /// [`PackageDeleted::Refused`], changing nothing, while unfinished executions use the
    /// version ([`PackageRecord::check_delete`]); [`Lookup::NoTenant`] or [`Lookup::Missing`]
    /// when there is no such tenant or version. `audit` is appended, in the same
    /// transaction, only when the version is deleted.
    async fn delete_package(
        &self,
        tenant: &TenantName,
        name: &str,
        version: &str,
        at: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<Lookup<PackageDeleted>, StoreError>;

    /// The id and `package.toml` of one version. MUST return [`Lookup::NoTenant`] or
    /// [`Lookup::Missing`] when there is no such tenant or version.
    async fn package_manifest(
        &self,
        tenant: &TenantName,
        name: &str,
        version: &str,
    ) -> Result<Lookup<StoredManifest>, StoreError>;

    /// The content hash and archive bytes of one version, by id. MUST return
    /// [`Lookup::NoTenant`] or [`Lookup::Missing`] when there is no such tenant or version.
    async fn package_archive(&self, tenant: &TenantName, id: uuid::Uuid) -> Result<Lookup<StoredArchive>, StoreError>;
}
