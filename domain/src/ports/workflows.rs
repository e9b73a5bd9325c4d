//! A tenant's workflows.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::audit::AuditEntry;
use crate::tenant::TenantName;
use crate::workflow::WorkflowSummary;

use super::{Lookup, StoreError};

/// A tenant's workflows. Every method runs in the tenant's own scope (on PostgreSQL, as its
/// database role in its schema).
///
/// # Errors
/// Every method fails with [`StoreError::Unavailable`] when the database cannot be reached
/// and [`StoreError::Unexpected`] for anything it cannot explain.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait WorkflowStore: Send + Sync {
    /// The tenant's workflows by name. MUST return `None` if the tenant does not exist.
    async fn list_workflows(&self, tenant: &TenantName) -> Result<Option<Vec<WorkflowSummary>>, StoreError>;

    /// One workflow. MUST return [`Lookup::NoTenant`] if the tenant does not exist,
    /// [`Lookup::Missing`] if the workflow does not.
    async fn get_workflow(&self, tenant: &TenantName, name: &str) -> Result<Lookup<WorkflowSummary>, StoreError>;

    /// Pauses or resumes a workflow (idempotent), returning it as it now is; absences as for
    /// [`WorkflowStore::get_workflow`]. `audit` is appended in the same transaction when the
    /// workflow exists.
    async fn set_paused(
        &self,
        tenant: &TenantName,
        name: &str,
        paused: bool,
        at: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<Lookup<WorkflowSummary>, StoreError>;
}
