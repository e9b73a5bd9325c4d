//! Workflow use cases. Listing arrives with tenants (seed 002's isolation checks use it);
//! upload, execution and the rest build on it.

use std::sync::Arc;

use cloacina_domain::audit::AuditAction;
use cloacina_domain::authz::authorize;
use cloacina_domain::package::{Manifest, TaskNode, WorkflowDef};
use cloacina_domain::ports::{Clock, PackageStore, StoreError, WorkflowStore};
use cloacina_domain::{Denied, Permission, Principal, TenantName, WorkflowSummary};

/// A tenant's workflows.
#[derive(Clone)]
pub struct Workflows {
    store: Arc<dyn WorkflowStore>,
    packages: Arc<dyn PackageStore>,
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
    pub fn new(store: Arc<dyn WorkflowStore>, packages: Arc<dyn PackageStore>, clock: Arc<dyn Clock>) -> Self {
        Self { store, packages, clock }
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
        found.found(|| WorkflowError::NoSuchTenant(tenant.clone()), || WorkflowError::NoSuchWorkflow(name.into()))
    }

    /// One workflow and its task graph, read from the manifest of its version in force.
    ///
    /// # Errors
    /// As [`Workflows::get`]; a version deleted meanwhile is no such workflow.
    pub async fn detail(
        &self,
        caller: &Principal,
        tenant: &TenantName,
        name: &str,
    ) -> Result<(WorkflowSummary, Vec<TaskNode>), WorkflowError> {
        let summary = self.get(caller, tenant, name).await?;
        let stored = self
            .packages
            .package_manifest(tenant, &summary.package_name, &summary.version)
            .await?
            .into_found()
            .ok_or_else(|| WorkflowError::NoSuchWorkflow(name.into()))?;
        let manifest = Manifest::parse(&stored.manifest)
            .map_err(|e| StoreError::Unexpected(format!("stored manifest of {}: {e}", summary.package_name)))?;
        let graph = manifest
            .workflows
            .iter()
            .find(|w| w.name.as_str() == name)
            .map(WorkflowDef::graph)
            .ok_or_else(|| WorkflowError::NoSuchWorkflow(name.into()))?;
        Ok((summary, graph))
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
        let now = self.clock.now();
        let action = if paused { AuditAction::WorkflowPause } else { AuditAction::WorkflowResume };
        let audit = crate::audit::entry(now, caller, Some(tenant), action, name);
        let done = self.store.set_paused(tenant, name, paused, now, &audit).await?;
        let w =
            done.found(|| WorkflowError::NoSuchTenant(tenant.clone()), || WorkflowError::NoSuchWorkflow(name.into()))?;
        tracing::info!(%tenant, workflow = name, paused, by = %caller.key_id, "workflow paused state set");
        Ok(w)
    }
}
