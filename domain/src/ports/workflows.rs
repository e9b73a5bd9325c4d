//! A tenant's workflows.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::tenant::TenantName;
use crate::workflow::WorkflowSummary;

use super::StoreError;

/// A tenant's workflows. Every method runs in the tenant's own scope (on PostgreSQL, as its
/// database role in its schema).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait WorkflowStore: Send + Sync {
    /// The tenant's workflows by name. MUST return `None` if the tenant does not exist.
    async fn list_workflows(&self, tenant: &TenantName) -> Result<Option<Vec<WorkflowSummary>>, StoreError>;

    /// One workflow. MUST return `None` if the tenant does not exist, `Some(None)` if the
    /// workflow does not.
    async fn get_workflow(
        &self,
        tenant: &TenantName,
        name: &str,
    ) -> Result<Option<Option<WorkflowSummary>>, StoreError>;

    /// Pauses or resumes a workflow (idempotent), returning it as it now is; `None` and
    /// `Some(None)` as for [`WorkflowStore::get_workflow`].
    async fn set_paused(
        &self,
        tenant: &TenantName,
        name: &str,
        paused: bool,
        at: DateTime<Utc>,
    ) -> Result<Option<Option<WorkflowSummary>>, StoreError>;
}
