//! A tenant's executions.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::audit::AuditEntry;
use crate::execution::{
    EventRecord, ExecutionCreated, ExecutionId, ExecutionPage, ExecutionQuery, ExecutionRecord, NewExecution, TaskLog,
    TaskRecord, Transition,
};
use crate::tenant::TenantName;

use super::{Lookup, StoreError};

/// A tenant's executions. Every method runs in the tenant's own scope. Where a method returns
/// an `Option`, it MUST be `None` when there is no such tenant; where a [`Lookup`], it MUST
/// be [`Lookup::NoTenant`] then, and [`Lookup::Missing`] when there is no such execution.
///
/// # Errors
/// Every method fails with [`StoreError::Unavailable`] when the database cannot be reached
/// and [`StoreError::Unexpected`] for anything it cannot explain (a stored plan that no
/// longer decodes, for one).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait ExecutionStore: Send + Sync {
    /// In one transaction: unless the idempotency key was used before (then
    /// [`ExecutionCreated::Existing`] with the first execution) and unless the workflow is
    /// paused ([`ExecutionCreated::Paused`]) or its package version gone
    /// ([`ExecutionCreated::Gone`]), stores the execution, its tasks as the plan starts them,
    /// and an `execution_created` event, and wakes the workers; `audit` is appended in the
    /// same transaction when, and only when, it stores the execution.
    async fn create_execution(
        &self,
        tenant: &TenantName,
        new: &NewExecution,
        audit: &AuditEntry,
    ) -> Result<Option<ExecutionCreated>, StoreError>;

    /// A page of executions, newest first, and the number matching in all.
    async fn list_executions(
        &self,
        tenant: &TenantName,
        query: &ExecutionQuery,
    ) -> Result<Option<ExecutionPage>, StoreError>;

    async fn get_execution(&self, tenant: &TenantName, id: ExecutionId) -> Result<Lookup<ExecutionRecord>, StoreError>;

    /// The execution's tasks in plan order.
    async fn execution_tasks(
        &self,
        tenant: &TenantName,
        id: ExecutionId,
    ) -> Result<Lookup<Vec<TaskRecord>>, StoreError>;

    /// Up to `limit` events with an id above `since`, oldest first.
    async fn execution_events(
        &self,
        tenant: &TenantName,
        id: ExecutionId,
        since: i64,
        limit: u32,
    ) -> Result<Lookup<Vec<EventRecord>>, StoreError>;

    /// The kept pieces of every attempt's output of one task, in the order they were kept
    /// (empty if it never ran); [`TaskLog::merge`] makes them one log per attempt.
    async fn task_logs(
        &self,
        tenant: &TenantName,
        id: ExecutionId,
        task: &str,
    ) -> Result<Lookup<Vec<TaskLog>>, StoreError>;

    /// Applies the domain's [`crate::execution::Command::Cancel`] to the execution under its
    /// lock: every unfinished task cancelled, atomically. MUST return
    /// [`Transition::Refused`], changing nothing, if it had finished. `audit` is appended in
    /// the same transaction when, and only when, the cancel happens.
    async fn cancel_execution(
        &self,
        tenant: &TenantName,
        id: ExecutionId,
        at: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<Option<Transition>, StoreError>;

    /// Applies the domain's [`crate::execution::Command::Retry`] under the execution's lock:
    /// the unsuccessful tasks of a failed or cancelled execution run again, atomically. MUST
    /// return [`Transition::Refused`], changing nothing, from any other status. `audit` as
    /// for [`ExecutionStore::cancel_execution`].
    async fn retry_execution(
        &self,
        tenant: &TenantName,
        id: ExecutionId,
        at: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<Option<Transition>, StoreError>;

    /// Deletes finished executions (with their tasks, events and logs) that finished before
    /// `before`; returns how many.
    async fn prune_executions(&self, tenant: &TenantName, before: DateTime<Utc>) -> Result<u64, StoreError>;
}
