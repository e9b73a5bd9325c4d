//! A tenant's uploaded packages.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::package::{NewPackage, PackageRecord, PackageStored, StoredArchive, StoredManifest};
use crate::tenant::TenantName;

use super::StoreError;

/// A tenant's uploaded packages. Every method runs in the tenant's own scope.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait PackageStore: Send + Sync {
    /// Stores an upload and, in the same transaction, puts its workflows in force unless a
    /// higher version of the same package is (paused flags are kept). MUST return `None` if
    /// the tenant does not exist; [`PackageStored::Existing`], changing nothing, for bytes
    /// uploaded before; [`StoreError::Conflict`] for the same name and version with other
    /// content, or a workflow name another package declares.
    async fn store_package(&self, tenant: &TenantName, new: &NewPackage) -> Result<Option<PackageStored>, StoreError>;

    /// The tenant's packages, by name then newest version first. `None` if no such tenant.
    async fn list_packages(&self, tenant: &TenantName) -> Result<Option<Vec<PackageRecord>>, StoreError>;

    /// Deletes one version. If its workflows were in force, the highest remaining version's
    /// take their place (paused flags kept); with none left they go. Returns the deleted row;
    /// `None` if no such tenant, `Some(None)` if no such version.
    async fn delete_package(
        &self,
        tenant: &TenantName,
        name: &str,
        version: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<Option<PackageRecord>>, StoreError>;

    /// The id and `package.toml` of one version. `None` if no such tenant, `Some(None)` if no
    /// such version.
    async fn package_manifest(
        &self,
        tenant: &TenantName,
        name: &str,
        version: &str,
    ) -> Result<Option<Option<StoredManifest>>, StoreError>;

    /// The content hash and archive bytes of one version, by id. `None` if no such tenant,
    /// `Some(None)` if no such version.
    async fn package_archive(
        &self,
        tenant: &TenantName,
        id: uuid::Uuid,
    ) -> Result<Option<Option<StoredArchive>>, StoreError>;
}
