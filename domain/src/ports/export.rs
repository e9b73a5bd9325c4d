//! A tenant's data as one portable stream, and a tenant made again from one (`tenant export`,
//! `tenant import`; docs/tenants.md). The stream is JSON lines: a header, then one line per
//! row of each of the tenant's tables (`{"table", "row"}`), its keys' metadata last (never a
//! hash); secrets stay behind (their data key is bound to the deployment's master key).

use async_trait::async_trait;

use crate::audit::AuditEntry;
use crate::tenant::{NewTenant, TenantName, TenantRecord};

use super::StoreError;

/// Where an export's lines go. `false`: the reader went away; the export stops.
#[async_trait]
pub trait ExportSink: Send {
    async fn line(&mut self, line: String) -> bool;
}

/// Where an import's lines come from: `None` at the end, `Err` for a line that could not be
/// read (not text, too long, the body cut off).
#[async_trait]
pub trait ExportSource: Send {
    async fn next_line(&mut self) -> Option<Result<String, String>>;
}

/// What an export or an import moved.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExportSummary {
    /// Rows of the tenant's tables.
    pub rows: u64,
    /// Keys' metadata lines (exported; never imported: keys are minted anew).
    pub keys: u64,
}

/// What an import did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TenantImported {
    Imported(TenantRecord, ExportSummary),
    /// A tenant has this name already; nothing changed.
    NameTaken,
    /// The stream is not an export this server reads: the line and why. Nothing changed.
    Invalid(u64, String),
}

/// Exporting and importing whole tenants.
///
/// # Errors
/// [`StoreError::Unsupported`] on a single-tenant backend; [`StoreError::Unavailable`] when
/// the database cannot be reached.
#[async_trait]
pub trait TenantArchive: Send + Sync {
    /// Writes the tenant's data to `sink`, from one consistent snapshot. MUST return `None`
    /// when there is no such tenant.
    async fn export_tenant(
        &self,
        tenant: &TenantName,
        sink: &mut dyn ExportSink,
    ) -> Result<Option<ExportSummary>, StoreError>;

    /// Creates `new` and fills it from `source`, all in one transaction with `audit` (in the
    /// control chain): all of it or nothing.
    async fn import_tenant(
        &self,
        new: &NewTenant,
        source: &mut dyn ExportSource,
        audit: &AuditEntry,
    ) -> Result<TenantImported, StoreError>;
}
