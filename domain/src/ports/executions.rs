//! A tenant's executions.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::execution::{
    EventRecord, ExecutionCreated, ExecutionId, ExecutionPage, ExecutionQuery, ExecutionRecord, NewExecution, TaskLog,
    TaskRecord, Transition,
};
use crate::tenant::TenantName;

use super::StoreError;

/// A tenant's executions. Every method runs in the tenant's own scope; `None` means no such
/// tenant and `Some(None)` (where it appears) no such execution.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait ExecutionStore: Send + Sync {
    /// In one transaction: unless the idempotency key was used before (then
    /// [`ExecutionCreated::Existing`] with the first execution) and unless the workflow is
    /// paused ([`ExecutionCreated::Paused`]) or its package version gone
    /// ([`ExecutionCreated::Gone`]), stores the execution, its tasks as the plan starts them,
    /// and an `execution_created` event, and wakes the workers.
    async fn create_execution(
        &self,
        tenant: &TenantName,
        new: &NewExecution,
    ) -> Result<Option<ExecutionCreated>, StoreError>;

    /// A page of executions, newest first, and the number matching in all.
    async fn list_executions(
        &self,
        tenant: &TenantName,
        query: &ExecutionQuery,
    ) -> Result<Option<ExecutionPage>, StoreError>;

    async fn get_execution(
        &self,
        tenant: &TenantName,
        id: ExecutionId,
    ) -> Result<Option<Option<ExecutionRecord>>, StoreError>;

    /// The execution's tasks in plan order.
    async fn execution_tasks(
        &self,
        tenant: &TenantName,
        id: ExecutionId,
    ) -> Result<Option<Option<Vec<TaskRecord>>>, StoreError>;

    /// Up to `limit` events with an id above `since`, oldest first.
    async fn execution_events(
        &self,
        tenant: &TenantName,
        id: ExecutionId,
        since: i64,
        limit: u32,
    ) -> Result<Option<Option<Vec<EventRecord>>>, StoreError>;

    /// The captured output of every attempt of one task, oldest first (empty if it never ran).
    async fn task_logs(
        &self,
        tenant: &TenantName,
        id: ExecutionId,
        task: &str,
    ) -> Result<Option<Option<Vec<TaskLog>>>, StoreError>;

    /// Cancels every unfinished task of an unfinished execution, atomically.
    /// [`Transition::Refused`] (unchanged) if it had finished.
    async fn cancel_execution(
        &self,
        tenant: &TenantName,
        id: ExecutionId,
        at: DateTime<Utc>,
    ) -> Result<Option<Transition>, StoreError>;

    /// Runs the unsuccessful tasks of a failed or cancelled execution again (domain
    /// `Plan::settle_retry`), atomically. [`Transition::Refused`] (unchanged) otherwise.
    async fn retry_execution(
        &self,
        tenant: &TenantName,
        id: ExecutionId,
        at: DateTime<Utc>,
    ) -> Result<Option<Transition>, StoreError>;

    /// Deletes finished executions (with their tasks, events and logs) that finished before
    /// `before`; returns how many.
    async fn prune_executions(&self, tenant: &TenantName, before: DateTime<Utc>) -> Result<u64, StoreError>;
}
