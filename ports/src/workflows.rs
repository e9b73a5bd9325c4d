//! Workflow use cases. Listing arrives with tenants (seed 002's isolation checks use it);
//! upload, execution and the rest build on it.

use std::sync::Arc;

use cloacina_domain::authz::authorize;
use cloacina_domain::ports::{StoreError, WorkflowStore};
use cloacina_domain::{Denied, Permission, Principal, TenantName, WorkflowSummary};

/// A tenant's workflows.
#[derive(Clone)]
pub struct Workflows {
    store: Arc<dyn WorkflowStore>,
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
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Workflows {
    pub fn new(store: Arc<dyn WorkflowStore>) -> Self {
        Self { store }
    }

    /// The tenant's workflows by name.
    ///
    /// # Errors
    /// [`WorkflowError`]: not allowed, no such tenant, or the store's failure.
    pub async fn list(&self, caller: &Principal, tenant: &TenantName) -> Result<Vec<WorkflowSummary>, WorkflowError> {
        authorize(caller, Permission::WorkflowRead, Some(tenant))?;
        self.store.list_workflows(tenant).await?.ok_or_else(|| WorkflowError::NoSuchTenant(tenant.clone()))
    }
}
