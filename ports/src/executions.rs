//! Running workflows and following their executions (docs/engine.md): execute, list, inspect,
//! tasks, events, logs, cancel, retry, and pruning old executions.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use cloacina_domain::audit::AuditAction;
use cloacina_domain::authz::authorize;
use cloacina_domain::execution::{
    EventRecord, ExecutionCreated, ExecutionId, ExecutionPage, ExecutionQuery, ExecutionRecord, MAX_IDEMPOTENCY_KEY,
    NewExecution, Plan, TaskLog, TaskRecord, Transition,
};
use cloacina_domain::package::Manifest;
use cloacina_domain::ports::{ExecutionStore, PackageStore, StoreError, TenantStore, WorkflowStore};
use cloacina_domain::{Denied, Permission, Principal, TenantName};
use serde_json::{Map, Value};

use crate::Deps;

/// A tenant's executions.
#[derive(Clone)]
pub struct Executions {
    deps: Deps,
    workflows: Arc<dyn WorkflowStore>,
    packages: Arc<dyn PackageStore>,
    store: Arc<dyn ExecutionStore>,
}

impl std::fmt::Debug for Executions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Executions")
    }
}

/// Why an execution operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ExecutionError {
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error("tenant '{0}' does not exist")]
    NoSuchTenant(TenantName),
    #[error("workflow '{0}' does not exist")]
    NoSuchWorkflow(String),
    #[error("execution {0} does not exist")]
    NoSuchExecution(ExecutionId),
    #[error("execution {0} has no task '{1}'")]
    NoSuchTask(ExecutionId, String),
    #[error("workflow '{0}' is paused: resume it to run it")]
    Paused(String),
    /// The `Idempotency-Key` is malformed.
    #[error(
        "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters, not starting with 'cloacina:' (reserved for scheduled fires)"
    )]
    BadIdempotencyKey,
    /// The `Idempotency-Key` was used for an execution of another workflow.
    #[error("Idempotency-Key was used before for execution {0} of workflow '{1}'")]
    IdempotencyKeyReused(ExecutionId, String),
    /// Cancel of a finished execution, retry of one that has not failed.
    #[error("{0}")]
    WrongState(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An accepted execution: `replayed` when the idempotency key returned an earlier one.
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted {
    pub execution: ExecutionRecord,
    pub replayed: bool,
}

fn no_tenant(tenant: &TenantName) -> impl FnOnce() -> ExecutionError + '_ {
    move || ExecutionError::NoSuchTenant(tenant.clone())
}

impl Executions {
    pub fn new(
        deps: Deps,
        workflows: Arc<dyn WorkflowStore>,
        packages: Arc<dyn PackageStore>,
        store: Arc<dyn ExecutionStore>,
    ) -> Self {
        Self { deps, workflows, packages, store }
    }

    /// Accepts an execution of the workflow's version in force, with `context`, from
    /// `origin` (`api`, `trigger:<name>`). A repeated idempotency key returns the first.
    ///
    /// # Errors
    /// [`ExecutionError`]: not allowed, no such tenant or workflow, paused, a bad or reused
    /// idempotency key, the store.
    pub async fn execute(
        &self,
        caller: &Principal,
        tenant: &TenantName,
        workflow: &str,
        context: Map<String, Value>,
        idempotency_key: Option<String>,
    ) -> Result<Accepted, ExecutionError> {
        authorize(caller, Permission::WorkflowExecute, Some(tenant))?;
        if let Some(k) = &idempotency_key
            && (k.is_empty()
                || k.len() > MAX_IDEMPOTENCY_KEY
                || !k.bytes().all(|b| b.is_ascii_graphic())
                || k.starts_with(cloacina_domain::trigger::RESERVED_KEY_PREFIX))
        {
            return Err(ExecutionError::BadIdempotencyKey);
        }
        let summary = self
            .workflows
            .get_workflow(tenant, workflow)
            .await?
            .found(no_tenant(tenant), || ExecutionError::NoSuchWorkflow(workflow.into()))?;
        let stored = self
            .packages
            .package_manifest(tenant, &summary.package_name, &summary.version)
            .await?
            .found(no_tenant(tenant), || ExecutionError::NoSuchWorkflow(workflow.into()))?;
        let manifest = Manifest::parse(&stored.manifest).map_err(|e| {
            StoreError::Unexpected(format!(
                "stored manifest of {} {} no longer parses: {e}",
                summary.package_name, summary.version
            ))
        })?;
        let def = manifest
            .workflows
            .iter()
            .find(|w| w.name.as_str() == workflow)
            .ok_or_else(|| ExecutionError::NoSuchWorkflow(workflow.into()))?;
        let new = NewExecution {
            id: ExecutionId::from_uuid(self.deps.keygen.key_id().as_uuid()),
            workflow: workflow.to_owned(),
            package_id: stored.id,
            package_version: summary.version.clone(),
            plan: Plan::of(def),
            context,
            origin: "api".into(),
            idempotency_key,
            created_at: self.deps.clock.now(),
            created_by: Some(caller.key_id),
            fired: None,
        };
        let audit =
            crate::audit::entry(new.created_at, caller, Some(tenant), AuditAction::WorkflowExecute, new.id.to_string())
                .with("workflow", workflow)
                .with("version", new.package_version.as_str());
        match self.store.create_execution(tenant, &new, &audit).await?.ok_or_else(no_tenant(tenant))? {
            ExecutionCreated::Created(execution) => {
                tracing::info!(%tenant, workflow, execution = %execution.id, by = %caller.key_id, "execution accepted");
                Ok(Accepted { execution, replayed: false })
            }
            ExecutionCreated::Existing(execution) if execution.workflow == workflow => {
                Ok(Accepted { execution, replayed: true })
            }
            ExecutionCreated::Existing(other) => Err(ExecutionError::IdempotencyKeyReused(other.id, other.workflow)),
            ExecutionCreated::Paused => Err(ExecutionError::Paused(workflow.into())),
            ExecutionCreated::Gone => Err(ExecutionError::NoSuchWorkflow(workflow.into())),
        }
    }

    /// A page of the tenant's executions, newest first, with the total that match.
    ///
    /// # Errors
    /// [`ExecutionError`]: not allowed, no such tenant, the store.
    pub async fn list(
        &self,
        caller: &Principal,
        tenant: &TenantName,
        query: &ExecutionQuery,
    ) -> Result<ExecutionPage, ExecutionError> {
        authorize(caller, Permission::ExecutionRead, Some(tenant))?;
        self.store.list_executions(tenant, query).await?.ok_or_else(no_tenant(tenant))
    }

    /// One execution.
    ///
    /// # Errors
    /// [`ExecutionError`]: not allowed, no such tenant or execution, the store.
    pub async fn get(
        &self,
        caller: &Principal,
        tenant: &TenantName,
        id: ExecutionId,
    ) -> Result<ExecutionRecord, ExecutionError> {
        authorize(caller, Permission::ExecutionRead, Some(tenant))?;
        self.store.get_execution(tenant, id).await?.found(no_tenant(tenant), || ExecutionError::NoSuchExecution(id))
    }

    /// An execution's tasks in plan order.
    ///
    /// # Errors
    /// [`ExecutionError`]: not allowed, no such tenant or execution, the store.
    pub async fn tasks(
        &self,
        caller: &Principal,
        tenant: &TenantName,
        id: ExecutionId,
    ) -> Result<Vec<TaskRecord>, ExecutionError> {
        authorize(caller, Permission::ExecutionRead, Some(tenant))?;
        self.store.execution_tasks(tenant, id).await?.found(no_tenant(tenant), || ExecutionError::NoSuchExecution(id))
    }

    /// Up to `limit` (1 to 1,000) events after event `since`, oldest first.
    ///
    /// # Errors
    /// [`ExecutionError`]: not allowed, no such tenant or execution, the store.
    pub async fn events(
        &self,
        caller: &Principal,
        tenant: &TenantName,
        id: ExecutionId,
        since: i64,
        limit: u32,
    ) -> Result<Vec<EventRecord>, ExecutionError> {
        authorize(caller, Permission::ExecutionRead, Some(tenant))?;
        self.store
            .execution_events(tenant, id, since, limit.clamp(1, 1000))
            .await?
            .found(no_tenant(tenant), || ExecutionError::NoSuchExecution(id))
    }

    /// The captured output of every attempt of one task, a running attempt's as far as it
    /// has come.
    ///
    /// # Errors
    /// [`ExecutionError`]: not allowed, no such tenant, execution or task, the store.
    pub async fn logs(
        &self,
        caller: &Principal,
        tenant: &TenantName,
        id: ExecutionId,
        task: &str,
    ) -> Result<Vec<TaskLog>, ExecutionError> {
        let tasks = self.tasks(caller, tenant, id).await?;
        if !tasks.iter().any(|t| t.task_id == task) {
            return Err(ExecutionError::NoSuchTask(id, task.into()));
        }
        let pieces = self
            .store
            .task_logs(tenant, id, task)
            .await?
            .found(no_tenant(tenant), || ExecutionError::NoSuchExecution(id))?;
        Ok(TaskLog::merge(pieces))
    }

    /// Cancels an unfinished execution: its tasks that have not finished are cancelled, and
    /// running attempts are stopped when their workers next renew their leases.
    ///
    /// # Errors
    /// [`ExecutionError`]: not allowed, no such tenant or execution, already finished, the
    /// store.
    pub async fn cancel(
        &self,
        caller: &Principal,
        tenant: &TenantName,
        id: ExecutionId,
    ) -> Result<ExecutionRecord, ExecutionError> {
        authorize(caller, Permission::ExecutionCancel, Some(tenant))?;
        let now = self.deps.clock.now();
        let audit = crate::audit::entry(now, caller, Some(tenant), AuditAction::ExecutionCancel, id.to_string());
        let done = self.store.cancel_execution(tenant, id, now, &audit).await?;
        let e = transition(done.ok_or_else(no_tenant(tenant))?, id, "cancel")?;
        tracing::info!(%tenant, execution = %id, by = %caller.key_id, "execution cancelled");
        Ok(e)
    }

    /// Runs the unsuccessful tasks of a failed or cancelled execution again; what succeeded
    /// keeps its output.
    ///
    /// # Errors
    /// [`ExecutionError`]: not allowed, no such tenant or execution, not failed or cancelled,
    /// the store.
    pub async fn retry(
        &self,
        caller: &Principal,
        tenant: &TenantName,
        id: ExecutionId,
    ) -> Result<ExecutionRecord, ExecutionError> {
        authorize(caller, Permission::ExecutionRetry, Some(tenant))?;
        let now = self.deps.clock.now();
        let audit = crate::audit::entry(now, caller, Some(tenant), AuditAction::ExecutionRetry, id.to_string());
        let done = self.store.retry_execution(tenant, id, now, &audit).await?;
        let e = transition(done.ok_or_else(no_tenant(tenant))?, id, "retry")?;
        tracing::info!(%tenant, execution = %id, by = %caller.key_id, "execution retried");
        Ok(e)
    }

    /// Deletes, in every tenant, the executions that finished more than `retention` ago;
    /// returns how many. A tenant that fails is logged and skipped.
    ///
    /// # Errors
    /// The store error if the tenants cannot be listed.
    pub async fn prune(&self, tenants: &dyn TenantStore, retention: std::time::Duration) -> Result<u64, StoreError> {
        let before: DateTime<Utc> =
            self.deps.clock.now() - chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
        let mut pruned = 0;
        for t in tenants.list_tenants().await? {
            match self.store.prune_executions(&t.name, before).await {
                Ok(n) => pruned += n,
                Err(e) => tracing::warn!(tenant = %t.name, error = %e, "could not prune finished executions"),
            }
        }
        self.deps.metrics.retention_pruned(pruned);
        if pruned > 0 {
            tracing::info!(pruned, %before, "pruned finished executions");
        }
        Ok(pruned)
    }
}

fn transition(t: Transition, id: ExecutionId, verb: &str) -> Result<ExecutionRecord, ExecutionError> {
    match t {
        Transition::Done(e) => Ok(e),
        Transition::NotFound => Err(ExecutionError::NoSuchExecution(id)),
        Transition::Refused(e) => Err(ExecutionError::WrongState(match verb {
            "cancel" => format!("execution {id} has finished ({}): there is nothing to cancel", e.status.as_str()),
            _ => {
                format!("execution {id} is {}: only a failed or cancelled execution can be retried", e.status.as_str())
            }
        })),
    }
}
