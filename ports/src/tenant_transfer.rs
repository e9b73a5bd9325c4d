//! A tenant exported whole, and made again from an export on another deployment (god keys;
//! docs/tenants.md). The stores stream the rows; this decides who may, names the new tenant
//! and records both in the control chain of the audit trail.

use std::sync::Arc;

use cloacina_domain::audit::AuditAction;
use cloacina_domain::authz::authorize;
use cloacina_domain::ports::{AuditStore, ExportSink, ExportSource, ExportSummary, TenantArchive, TenantImported};
use cloacina_domain::tenant::role_password;
use cloacina_domain::{NewTenant, Permission, Principal, TenantDescription, TenantName, TenantRecord};

use crate::{Deps, TenantError};

/// Export and import of whole tenants.
#[derive(Clone)]
pub struct TenantTransfer {
    deps: Deps,
    archive: Arc<dyn TenantArchive>,
    audit: Arc<dyn AuditStore>,
}

impl std::fmt::Debug for TenantTransfer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TenantTransfer")
    }
}

impl TenantTransfer {
    pub fn new(deps: Deps, archive: Arc<dyn TenantArchive>, audit: Arc<dyn AuditStore>) -> Self {
        Self { deps, archive, audit }
    }

    /// Checks that `caller` may export, before a byte is sent.
    ///
    /// # Errors
    /// [`TenantError::Denied`] for anything but a god key.
    pub fn may_export(&self, caller: &Principal) -> Result<(), TenantError> {
        authorize(caller, Permission::TenantRead, None)?;
        Ok(())
    }

    /// Streams `tenant`'s data to `sink`.
    ///
    /// # Errors
    /// [`TenantError`]: not a god key, no such tenant, a single-tenant backend, the store.
    pub async fn export(
        &self,
        caller: &Principal,
        tenant: &TenantName,
        sink: &mut dyn ExportSink,
    ) -> Result<ExportSummary, TenantError> {
        self.may_export(caller)?;
        let done =
            self.archive.export_tenant(tenant, sink).await?.ok_or_else(|| TenantError::NotFound(tenant.clone()))?;
        let entry =
            crate::audit::entry(self.deps.clock.now(), caller, None, AuditAction::TenantExport, tenant.as_str())
                .with("rows", done.rows)
                .with("keys", done.keys);
        if let Err(e) = self.audit.append_audit(&[entry]).await {
            tracing::warn!(%tenant, error = %e, "the export was sent but its audit row could not be written");
        }
        tracing::info!(%tenant, rows = done.rows, by = %caller.key_id, "tenant exported");
        Ok(done)
    }

    /// Creates `name` from an export: its data as it was, new keys to be minted.
    ///
    /// # Errors
    /// [`TenantError`]: not a god key, the name taken, an invalid export, a single-tenant
    /// backend, the store.
    pub async fn import(
        &self,
        caller: &Principal,
        name: TenantName,
        description: Option<TenantDescription>,
        source: &mut dyn ExportSource,
    ) -> Result<(TenantRecord, ExportSummary), TenantError> {
        authorize(caller, Permission::TenantCreate, None)?;
        let now = self.deps.clock.now();
        let new = NewTenant {
            name: name.clone(),
            description,
            db_password: role_password(self.deps.keygen.secret()),
            created_at: now,
        };
        let audit = crate::audit::entry(now, caller, None, AuditAction::TenantImport, name.as_str());
        match self.archive.import_tenant(&new, source, &audit).await? {
            TenantImported::Imported(record, summary) => {
                tracing::info!(tenant = %name, rows = summary.rows, by = %caller.key_id, "tenant imported");
                Ok((record, summary))
            }
            TenantImported::NameTaken => Err(TenantError::Exists(name)),
            TenantImported::Invalid(line, why) => Err(TenantError::Invalid(line, why)),
        }
    }
}
