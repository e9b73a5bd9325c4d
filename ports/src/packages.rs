//! Uploading and listing packages (docs/packages.md).

use std::path::Path;
use std::sync::Arc;

use cloacina_domain::audit::AuditAction;
use cloacina_domain::authz::authorize;
use cloacina_domain::package::{
    NewPackage, PackageConflict, PackageDeleted, PackageRecord, PackageStored, SignatureRefused,
};
use cloacina_domain::ports::{ArchiveRefused, PackageArchives, PackageStore, StoreError};
use cloacina_domain::{Denied, Permission, Principal, TenantName};

use crate::Deps;

/// A tenant's packages.
#[derive(Clone)]
pub struct Packages {
    deps: Deps,
    store: Arc<dyn PackageStore>,
    archives: Arc<dyn PackageArchives>,
}

impl std::fmt::Debug for Packages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Packages").finish_non_exhaustive()
    }
}

/// Why an upload or a listing failed.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error("tenant '{0}' does not exist")]
    NoSuchTenant(TenantName),
    #[error("package {0} {1} does not exist")]
    NoSuchVersion(String, String),
    /// The archive or its manifest is refused; the text says why, naming the entry or field
    /// at fault.
    #[error("{0}")]
    Invalid(String),
    /// A version uploaded before with other content, a workflow another package declares,
    /// or a version still in use.
    #[error(transparent)]
    Conflict(PackageConflict),
    /// The signature fails the tenant's policy.
    #[error(transparent)]
    Unsigned(SignatureRefused),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An upload as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uploaded {
    pub record: PackageRecord,
    /// `false`: these exact bytes were uploaded before, and nothing changed.
    pub created: bool,
}

impl Packages {
    pub fn new(deps: Deps, store: Arc<dyn PackageStore>, archives: Arc<dyn PackageArchives>) -> Self {
        Self { deps, store, archives }
    }

    /// Checks an uploaded archive (as hostile input, within the limits) and stores it. The
    /// archive is a file the caller spooled the upload to (and removes afterwards): it is
    /// hashed, checked and stored in chunks, never held in memory whole. The same bytes
    /// again answer [`PackageStored::Existing`] and change nothing. `signature` is the
    /// document uploaded beside the archive, checked against the tenant's policy and trusted
    /// keys by the store, in the upload's transaction.
    ///
    /// # Errors
    /// [`PackageError`]: not allowed, no such tenant, an invalid archive or manifest, a
    /// conflicting version or workflow name, the store.
    pub async fn upload(
        &self,
        caller: &Principal,
        tenant: &TenantName,
        archive: &Path,
        signature: Option<String>,
    ) -> Result<Uploaded, PackageError> {
        authorize(caller, Permission::WorkflowUpload, Some(tenant))?;
        let archives = self.archives.clone();
        let path = archive.to_owned();
        let checked = tokio::task::spawn_blocking(move || archives.check(&path))
            .await
            .map_err(|e| StoreError::Unexpected(format!("checking the upload failed: {e}")))?
            .map_err(|refused| match refused {
                ArchiveRefused::Invalid(why) => PackageError::Invalid(why),
                ArchiveRefused::Unreadable(e) => {
                    StoreError::Unexpected(format!("cannot read the spooled upload: {e}")).into()
                }
            })?;
        let new = NewPackage {
            id: self.deps.keygen.key_id().as_uuid(),
            manifest: checked.manifest,
            manifest_text: checked.manifest_text,
            content_hash: checked.content_hash,
            archive: archive.to_owned(),
            size_bytes: checked.size_bytes,
            uploaded_at: self.deps.clock.now(),
            uploaded_by: Some(caller.key_id),
            signature,
        };
        let audit = crate::audit::entry(
            new.uploaded_at,
            caller,
            Some(tenant),
            AuditAction::PackageUpload,
            format!("{}@{}", new.manifest.package.name, new.manifest.package.version),
        )
        .with("content_hash", new.content_hash.as_str())
        .with("bytes", new.size_bytes);
        let stored = self
            .store
            .store_package(tenant, &new, &audit)
            .await?
            .ok_or_else(|| PackageError::NoSuchTenant(tenant.clone()))?;
        match stored {
            PackageStored::Created(r) => {
                tracing::info!(%tenant, package = %r.name, version = %r.version, bytes = r.size_bytes, by = %caller.key_id, "package uploaded");
                Ok(Uploaded { record: r, created: true })
            }
            PackageStored::Existing(r) => Ok(Uploaded { record: r, created: false }),
            PackageStored::Refused(conflict) => Err(PackageError::Conflict(conflict)),
            PackageStored::Unsigned(refused) => Err(PackageError::Unsigned(refused)),
        }
    }

    /// Deletes one version of a package; if it was in force, the newest remaining version's
    /// workflows take its place.
    ///
    /// # Errors
    /// [`PackageError`]: not allowed, no such tenant or version, the store.
    pub async fn delete(
        &self,
        caller: &Principal,
        tenant: &TenantName,
        name: &str,
        version: &str,
    ) -> Result<PackageRecord, PackageError> {
        authorize(caller, Permission::WorkflowDelete, Some(tenant))?;
        let now = self.deps.clock.now();
        let audit =
            crate::audit::entry(now, caller, Some(tenant), AuditAction::PackageDelete, format!("{name}@{version}"));
        let deleted = self.store.delete_package(tenant, name, version, now, &audit).await?;
        let rec = match deleted.found(
            || PackageError::NoSuchTenant(tenant.clone()),
            || PackageError::NoSuchVersion(name.into(), version.into()),
        )? {
            PackageDeleted::Deleted(rec) => rec,
            PackageDeleted::Refused(conflict) => return Err(PackageError::Conflict(conflict)),
        };
        tracing::info!(%tenant, package = name, version, by = %caller.key_id, "package version deleted");
        Ok(rec)
    }

    /// The tenant's packages, every version.
    ///
    /// # Errors
    /// [`PackageError`]: not allowed, no such tenant, the store.
    pub async fn list(&self, caller: &Principal, tenant: &TenantName) -> Result<Vec<PackageRecord>, PackageError> {
        authorize(caller, Permission::WorkflowRead, Some(tenant))?;
        self.store.list_packages(tenant).await?.ok_or_else(|| PackageError::NoSuchTenant(tenant.clone()))
    }
}
