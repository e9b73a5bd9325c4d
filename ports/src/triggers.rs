//! Trigger use cases (docs/triggers.md): list, inspect (next fire times, recent executions),
//! pause, resume, and fire by hand. Scheduled fires are the scheduler's (`scheduler.rs`).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use cloacina_domain::audit::AuditAction;
use cloacina_domain::authz::authorize;
use cloacina_domain::execution::{ExecutionCreated, ExecutionId, ExecutionQuery, ExecutionRecord};
use cloacina_domain::ports::{ExecutionStore, PackageStore, StoreError, TriggerPage, TriggerStore, WorkflowStore};
use cloacina_domain::trigger::{FireKind, StoredVersion, TriggerRecord, execution_for};
use cloacina_domain::{Denied, Permission, Principal, TenantName};
use serde_json::{Map, Value};

use crate::Deps;

/// How many next fire times and recent executions an inspection shows.
pub const UPCOMING: usize = 5;
pub const RECENT: u32 = 10;

/// A tenant's triggers.
#[derive(Clone)]
pub struct Triggers {
    deps: Deps,
    store: Arc<dyn TriggerStore>,
    workflows: Arc<dyn WorkflowStore>,
    packages: Arc<dyn PackageStore>,
    executions: Arc<dyn ExecutionStore>,
}

impl std::fmt::Debug for Triggers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Triggers")
    }
}

/// Why a trigger operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TriggerError {
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error("tenant '{0}' does not exist")]
    NoSuchTenant(TenantName),
    #[error("trigger '{0}' does not exist")]
    NoSuchTrigger(String),
    #[error("workflow '{0}' is paused: resume it to fire its triggers")]
    WorkflowPaused(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A trigger as inspected.
#[derive(Debug, Clone, PartialEq)]
pub struct TriggerDetail {
    pub trigger: TriggerRecord,
    /// Its next scheduled times (none while paused).
    pub upcoming: Vec<DateTime<Utc>>,
    /// The executions it started, newest first.
    pub recent: Vec<ExecutionRecord>,
}

impl Triggers {
    pub fn new(
        deps: Deps,
        store: Arc<dyn TriggerStore>,
        workflows: Arc<dyn WorkflowStore>,
        packages: Arc<dyn PackageStore>,
        executions: Arc<dyn ExecutionStore>,
    ) -> Self {
        Self { deps, store, workflows, packages, executions }
    }

    fn missing(tenant: &TenantName, name: &str) -> (impl FnOnce() -> TriggerError, impl FnOnce() -> TriggerError) {
        let (tenant, name) = (tenant.clone(), name.to_owned());
        (move || TriggerError::NoSuchTenant(tenant), move || TriggerError::NoSuchTrigger(name))
    }

    /// A page of the tenant's triggers, by name.
    ///
    /// # Errors
    /// [`TriggerError`]: not allowed, no such tenant, the store.
    pub async fn list(
        &self,
        caller: &Principal,
        tenant: &TenantName,
        limit: u32,
        offset: u64,
    ) -> Result<TriggerPage, TriggerError> {
        authorize(caller, Permission::TriggerRead, Some(tenant))?;
        self.store.list_triggers(tenant, limit, offset).await?.ok_or_else(|| TriggerError::NoSuchTenant(tenant.clone()))
    }

    /// One trigger, its next fire times and its recent executions.
    ///
    /// # Errors
    /// [`TriggerError`]: not allowed, no such tenant or trigger, the store.
    pub async fn get(
        &self,
        caller: &Principal,
        tenant: &TenantName,
        name: &str,
    ) -> Result<TriggerDetail, TriggerError> {
        authorize(caller, Permission::TriggerRead, Some(tenant))?;
        let (no_tenant, no_trigger) = Self::missing(tenant, name);
        let trigger = self.store.get_trigger(tenant, name).await?.found(no_tenant, no_trigger)?;
        let upcoming = if trigger.paused {
            Vec::new()
        } else {
            let from = trigger.next_fire_at.map_or_else(|| self.deps.clock.now(), |n| n - chrono::Duration::seconds(1));
            trigger.def.cron.upcoming(from, trigger.def.timezone, UPCOMING)
        };
        let query = ExecutionQuery { trigger: Some(name.to_owned()), limit: RECENT, ..ExecutionQuery::default() };
        let recent = self
            .executions
            .list_executions(tenant, &query)
            .await?
            .ok_or_else(|| TriggerError::NoSuchTenant(tenant.clone()))?
            .executions;
        Ok(TriggerDetail { trigger, upcoming, recent })
    }

    /// Pauses or resumes a trigger (idempotent); returns it as it now is.
    ///
    /// # Errors
    /// [`TriggerError`]: not allowed, no such tenant or trigger, the store.
    pub async fn set_paused(
        &self,
        caller: &Principal,
        tenant: &TenantName,
        name: &str,
        paused: bool,
    ) -> Result<TriggerRecord, TriggerError> {
        authorize(caller, Permission::TriggerManage, Some(tenant))?;
        let (no_tenant, no_trigger) = Self::missing(tenant, name);
        let now = self.deps.clock.now();
        let action = if paused { AuditAction::TriggerPause } else { AuditAction::TriggerResume };
        let audit = crate::audit::entry(now, caller, Some(tenant), action, name);
        let t = self.store.set_trigger_paused(tenant, name, paused, now, &audit).await?.found(no_tenant, no_trigger)?;
        tracing::info!(%tenant, trigger = name, paused, by = %caller.key_id, "trigger paused or resumed");
        Ok(t)
    }

    /// Fires a trigger by hand, now: one new execution of its workflow's version in force,
    /// with `event` merged over the trigger's context; its origin says it was by hand. A
    /// paused trigger fires too (the pause stops the schedule only).
    ///
    /// # Errors
    /// [`TriggerError`]: not allowed, no such tenant or trigger, its workflow paused, the
    /// store.
    pub async fn fire(
        &self,
        caller: &Principal,
        tenant: &TenantName,
        name: &str,
        event: Map<String, Value>,
    ) -> Result<ExecutionRecord, TriggerError> {
        authorize(caller, Permission::TriggerManage, Some(tenant))?;
        let (no_tenant, no_trigger) = Self::missing(tenant, name);
        let trigger = self.store.get_trigger(tenant, name).await?.found(no_tenant, no_trigger)?;
        let gone = || TriggerError::NoSuchTrigger(name.to_owned());
        let no_tenant = || TriggerError::NoSuchTenant(tenant.clone());
        let summary = self.workflows.get_workflow(tenant, &trigger.workflow).await?.found(no_tenant, gone)?;
        let stored = self
            .packages
            .package_manifest(tenant, &summary.package_name, &summary.version)
            .await?
            .found(no_tenant, gone)?;
        let version = StoredVersion::read(&summary.package_name, stored.id, &summary.version, &stored.manifest)
            .map_err(StoreError::Unexpected)?;
        let def = version.workflow(&trigger.workflow).ok_or_else(gone)?;
        let now = self.deps.clock.now();
        let id = ExecutionId::from_uuid(self.deps.keygen.key_id().as_uuid());
        let mut new =
            execution_for(&trigger, now, FireKind::ByHand { id, event }, def, stored.id, &summary.version, now);
        new.created_by = Some(caller.key_id);
        let audit = crate::audit::entry(now, caller, Some(tenant), AuditAction::TriggerFire, name)
            .with("execution", id.to_string())
            .with("workflow", trigger.workflow.as_str());
        match self.executions.create_execution(tenant, &new, &audit).await?.ok_or_else(no_tenant)? {
            ExecutionCreated::Created(e) | ExecutionCreated::Existing(e) => {
                tracing::info!(%tenant, trigger = name, execution = %e.id, by = %caller.key_id, "trigger fired by hand");
                Ok(e)
            }
            ExecutionCreated::Paused => Err(TriggerError::WorkflowPaused(trigger.workflow)),
            ExecutionCreated::Gone => Err(gone()),
        }
    }
}
