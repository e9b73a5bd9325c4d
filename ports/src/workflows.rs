//! Workflow use cases. Listing arrives with tenants (seed 002's isolation checks use it);
//! upload, execution and the rest build on it.

use std::sync::Arc;

use cloacina_domain::authz::authorize;
use cloacina_domain::ports::{Clock, StoreError, WorkflowStore};
use cloacina_domain::{Denied, Permission, Principal, TenantName, WorkflowSummary};

/// A tenant's workflows.
#[derive(Clone)]
pub struct Workflows {
    store: Arc<dyn WorkflowStore>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Workflows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Workflows")
    }
}

/// Why workflows could not be listed.
#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error("tenant '{0}' does not exist")]
    NoSuchTenant(TenantName),
    #[error("workflow '{0}' does not exist")]
    NoSuchWorkflow(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Workflows {
    pub fn new(store: Arc<dyn WorkflowStore>, clock: Arc<dyn Clock>) -> Self {
        Self { store, clock }
    }

    /// The tenant's workflows by name.
    ///
    /// # Errors
    /// [`WorkflowError`]: not allowed, no such tenant, or the store's failure.
    pub async fn list(&self, caller: &Principal, tenant: &TenantName) -> Result<Vec<WorkflowSummary>, WorkflowError> {
        authorize(caller, Permission::WorkflowRead, Some(tenant))?;
        self.store.list_workflows(tenant).await?.ok_or_else(|| WorkflowError::NoSuchTenant(tenant.clone()))
    }

    /// One workflow.
    ///
    /// # Errors
    /// [`WorkflowError`]: not allowed, no such tenant or workflow, or the store's failure.
    pub async fn get(
        &self,
        caller: &Principal,
        tenant: &TenantName,
        name: &str,
    ) -> Result<WorkflowSummary, WorkflowError> {
        authorize(caller, Permission::WorkflowRead, Some(tenant))?;
        let found = self.store.get_workflow(tenant, name).await?;
        found
            .ok_or_else(|| WorkflowError::NoSuchTenant(tenant.clone()))?
            .ok_or_else(|| WorkflowError::NoSuchWorkflow(name.into()))
    }

    /// Pauses (`true`) or resumes a workflow; doing it twice changes nothing.
    ///
    /// # Errors
    /// [`WorkflowError`]: not allowed, no such tenant or workflow, or the store's failure.
    pub async fn set_paused(
        &self,
        caller: &Principal,
        tenant: &TenantName,
        name: &str,
        paused: bool,
    ) -> Result<WorkflowSummary, WorkflowError> {
        authorize(caller, Permission::WorkflowPause, Some(tenant))?;
        let done = self.store.set_paused(tenant, name, paused, self.clock.now()).await?;
        let w = done
            .ok_or_else(|| WorkflowError::NoSuchTenant(tenant.clone()))?
            .ok_or_else(|| WorkflowError::NoSuchWorkflow(name.into()))?;
        tracing::info!(%tenant, workflow = name, paused, by = %caller.key_id, "workflow paused state set");
        Ok(w)
    }
}
