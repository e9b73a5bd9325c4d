//! Executions and the engine's queue on PostgreSQL, in each tenant's schema as its role.
//!
//! Claims take ready rows with `FOR UPDATE SKIP LOCKED` through the partial index of ready
//! rows, so replicas never wait on each other's claims and finished rows never slow one down.
//! Every transaction that changes an execution locks its `executions` row first and its task
//! rows after; claims and lease expiry touch task rows only. That order rules out deadlocks.
//!
//! `public.tenant_work` says which tenants have work due (docs/engine.md): whatever readies
//! tasks lowers the tenant's `due_at` and bumps its `seq` at the end of its transaction, as
//! the login role, and sends `NOTIFY cloacina_work`; a claim writes the exact next due time
//! only if `seq` is unchanged since it began, so a concurrent wake-up is never lost.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cloacina_domain::TenantName;
use cloacina_domain::audit::AuditEntry;
use cloacina_domain::execution::{
    AttemptReport, ClaimedTask, Command, EventDraft, EventRecord, ExecutionCreated, ExecutionId, ExecutionPage,
    ExecutionQuery, ExecutionRecord, ExecutionStatus, NewExecution, OutputPiece, Plan, Recorded, TaskKey, TaskLog,
    TaskRecord, Transition,
};
use cloacina_domain::ports::{DueWork, ExecutionStore, Lookup, StoreError, TaskQueue};
use serde_json::{Map, Value};
use sqlx::AssertSqlSafe;
use sqlx::types::Json;
use uuid::Uuid;

use crate::PgDb;
use crate::db::translate;
use crate::listen::ring;

macro_rules! execution_columns {
    () => {
        "id, workflow, package_id, package_version, status, context, error, origin, idempotency_key, created_at, \
         started_at, finished_at, created_by, trigger, scheduled_at"
    };
}

pub(crate) mod changes;
mod claim;
pub(crate) mod create;
mod feed;
pub(crate) mod queue;
mod record;
pub(crate) mod rows;

use changes::*;
use claim::*;
use create::*;
use queue::*;
use record::*;
use rows::*;

/// The channel that wakes workers; the payload is the tenant's name.
pub const WORK_CHANNEL: &str = "cloacina_work";

const EXECUTION_COLUMNS: &str = execution_columns!();

type Object = Map<String, Value>;

fn decode<E: std::error::Error + Send + Sync + 'static>(e: E) -> sqlx::Error {
    sqlx::Error::Decode(Box::new(e))
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Bad(String);

fn pos(p: usize) -> i32 {
    i32::try_from(p).unwrap_or(i32::MAX)
}

fn later(at: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    at + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

fn unexpected(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unexpected(e.to_string())
}

#[async_trait]
impl ExecutionStore for PgDb {
    async fn create_execution(
        &self,
        tenant: &TenantName,
        new: &NewExecution,
        audit: &AuditEntry,
    ) -> Result<Option<ExecutionCreated>, StoreError> {
        let Some(mut tx) = self.begin_tenant(tenant).await? else { return Ok(None) };
        let (created, readied) = create(&mut tx, new).await?;
        if matches!(created, ExecutionCreated::Created(_)) {
            crate::audit::append(&mut tx, audit).await?;
        }
        if readied {
            wake(&mut tx, tenant, new.created_at).await?;
        }
        if matches!(created, ExecutionCreated::Created(_)) {
            ring(&mut tx, tenant).await?;
        }
        tx.commit().await.map_err(translate)?;
        if readied {
            self.work.notify_one();
        }
        Ok(Some(created))
    }

    async fn list_executions(
        &self,
        tenant: &TenantName,
        query: &ExecutionQuery,
    ) -> Result<Option<ExecutionPage>, StoreError> {
        let Some(mut tx) = self.begin_tenant(tenant).await? else { return Ok(None) };
        // The trigger is the last parameter of each statement.
        let filter = |t: u8| {
            format!(
                "($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR workflow = $2) AND (${t}::text IS NULL OR trigger = ${t})"
            )
        };
        let status = query.status.map(ExecutionStatus::as_str);
        let total: i64 =
            sqlx::query_scalar(AssertSqlSafe(format!("SELECT count(*) FROM executions WHERE {}", filter(3))))
                .bind(status)
                .bind(&query.workflow)
                .bind(&query.trigger)
                .fetch_one(&mut *tx)
                .await
                .map_err(translate)?;
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {EXECUTION_COLUMNS} FROM executions WHERE {} ORDER BY created_at DESC, id DESC LIMIT $3 OFFSET $4",
            filter(5)
        )))
        .bind(status)
        .bind(&query.workflow)
        .bind(i64::from(query.limit))
        .bind(i64::try_from(query.offset).unwrap_or(i64::MAX))
        .bind(&query.trigger)
        .fetch_all(&mut *tx)
        .await
        .map_err(translate)?;
        tx.commit().await.map_err(translate)?;
        let executions = rows.iter().map(execution).collect::<Result<_, _>>().map_err(translate)?;
        Ok(Some(ExecutionPage { executions, total: total.unsigned_abs() }))
    }

    async fn get_execution(&self, tenant: &TenantName, id: ExecutionId) -> Result<Lookup<ExecutionRecord>, StoreError> {
        let Some(mut tx) = self.begin_tenant(tenant).await? else { return Ok(Lookup::NoTenant) };
        let found = find_execution(&mut tx, id, false).await?;
        tx.commit().await.map_err(translate)?;
        Ok(Lookup::from_option(found))
    }

    async fn execution_tasks(
        &self,
        tenant: &TenantName,
        id: ExecutionId,
    ) -> Result<Lookup<Vec<TaskRecord>>, StoreError> {
        let Some(mut tx) = self.begin_tenant(tenant).await? else { return Ok(Lookup::NoTenant) };
        let plan: Option<Json<Value>> = sqlx::query_scalar("SELECT plan FROM executions WHERE id = $1")
            .bind(id.as_uuid())
            .fetch_optional(&mut *tx)
            .await
            .map_err(translate)?;
        let Some(plan) = plan else { return Ok(Lookup::Missing) };
        let plan = Plan::from_json(&plan.0).map_err(unexpected)?;
        let rows = sqlx::query(
            "SELECT position, task_id, status, attempts, ready_at, started_at, finished_at, output, error
             FROM execution_tasks WHERE execution_id = $1 ORDER BY position",
        )
        .bind(id.as_uuid())
        .fetch_all(&mut *tx)
        .await
        .map_err(translate)?;
        tx.commit().await.map_err(translate)?;
        rows.iter().map(|r| task(r, &plan)).collect::<Result<Vec<_>, _>>().map(Lookup::Found).map_err(translate)
    }

    async fn execution_events(
        &self,
        tenant: &TenantName,
        id: ExecutionId,
        since: i64,
        limit: u32,
    ) -> Result<Lookup<Vec<EventRecord>>, StoreError> {
        let Some(mut tx) = self.begin_tenant(tenant).await? else { return Ok(Lookup::NoTenant) };
        if !exists(&mut tx, id).await? {
            return Ok(Lookup::Missing);
        }
        let rows: Vec<(i64, DateTime<Utc>, String, Option<String>, Json<Value>)> = sqlx::query_as(
            "SELECT id, at, kind, task, detail FROM execution_events WHERE execution_id = $1 AND id > $2 ORDER BY id LIMIT $3",
        )
        .bind(id.as_uuid())
        .bind(since)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await
        .map_err(translate)?;
        tx.commit().await.map_err(translate)?;
        let events = rows
            .into_iter()
            .map(|(eid, at, kind, task, detail)| {
                Ok(EventRecord { id: eid, execution_id: id, at, kind: event_kind(&kind)?, task, detail: detail.0 })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(translate)?;
        Ok(Lookup::Found(events))
    }

    async fn task_logs(
        &self,
        tenant: &TenantName,
        id: ExecutionId,
        task_id: &str,
    ) -> Result<Lookup<Vec<TaskLog>>, StoreError> {
        let Some(mut tx) = self.begin_tenant(tenant).await? else { return Ok(Lookup::NoTenant) };
        if !exists(&mut tx, id).await? {
            return Ok(Lookup::Missing);
        }
        let rows: Vec<(String, i32, String, String, bool, DateTime<Utc>, bool)> = sqlx::query_as(
            "SELECT task_id, attempt, stdout, stderr, truncated, at, ended FROM task_logs
             WHERE execution_id = $1 AND task_id = $2 ORDER BY id",
        )
        .bind(id.as_uuid())
        .bind(task_id)
        .fetch_all(&mut *tx)
        .await
        .map_err(translate)?;
        tx.commit().await.map_err(translate)?;
        Ok(Lookup::Found(
            rows.into_iter()
                .map(|(task_id, attempt, stdout, stderr, truncated, at, ended)| TaskLog {
                    task_id,
                    attempt: u32::try_from(attempt).unwrap_or(0),
                    stdout,
                    stderr,
                    truncated,
                    at,
                    ended,
                })
                .collect(),
        ))
    }

    async fn cancel_execution(
        &self,
        tenant: &TenantName,
        id: ExecutionId,
        at: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<Option<Transition>, StoreError> {
        let Some(mut tx) = self.begin_tenant(tenant).await? else { return Ok(None) };
        let (t, _) = transition(&mut tx, id, at, Command::Cancel).await?;
        if matches!(t, Transition::Done(_)) {
            crate::audit::append(&mut tx, audit).await?;
        }
        ring(&mut tx, tenant).await?;
        tx.commit().await.map_err(translate)?;
        Ok(Some(t))
    }

    async fn retry_execution(
        &self,
        tenant: &TenantName,
        id: ExecutionId,
        at: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<Option<Transition>, StoreError> {
        let Some(mut tx) = self.begin_tenant(tenant).await? else { return Ok(None) };
        let (t, due) = transition(&mut tx, id, at, Command::Retry).await?;
        if matches!(t, Transition::Done(_)) {
            crate::audit::append(&mut tx, audit).await?;
        }
        if let Some(due) = due {
            wake(&mut tx, tenant, due).await?;
        }
        ring(&mut tx, tenant).await?;
        tx.commit().await.map_err(translate)?;
        if due.is_some() {
            self.work.notify_one();
        }
        Ok(Some(t))
    }

    async fn prune_executions(&self, tenant: &TenantName, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let Some(mut tx) = self.begin_tenant(tenant).await? else { return Ok(0) };
        let n: i64 = sqlx::query_scalar(
            "WITH gone AS (
                 DELETE FROM executions WHERE finished_at IS NOT NULL AND finished_at < $1
                   AND status IN ('succeeded', 'failed', 'cancelled')
                 RETURNING id),
             tasks AS (DELETE FROM execution_tasks WHERE execution_id IN (SELECT id FROM gone)),
             events AS (DELETE FROM execution_events WHERE execution_id IN (SELECT id FROM gone)),
             logs AS (DELETE FROM task_logs WHERE execution_id IN (SELECT id FROM gone))
             SELECT count(*) FROM gone",
        )
        .bind(before)
        .fetch_one(&mut *tx)
        .await
        .map_err(translate)?;
        let n = n.unsigned_abs();
        tx.commit().await.map_err(translate)?;
        Ok(n)
    }
}

#[async_trait]
impl TaskQueue for PgDb {
    async fn due_tenants(&self, now: DateTime<Utc>) -> Result<DueWork, StoreError> {
        let rows: Vec<(String, DateTime<Utc>)> =
            sqlx::query_as("SELECT tenant, due_at FROM public.tenant_work ORDER BY due_at LIMIT 10000")
                .fetch_all(&self.pool)
                .await
                .map_err(translate)?;
        let mut due = DueWork::default();
        for (tenant, at) in rows {
            if at <= now {
                if let Ok(t) = TenantName::parse(&tenant) {
                    due.tenants.push(t);
                }
            } else {
                due.next = Some(due.next.map_or(at, |n: DateTime<Utc>| n.min(at)));
            }
        }
        Ok(due)
    }

    async fn claim(
        &self,
        tenant: &TenantName,
        worker: &str,
        now: DateTime<Utc>,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<ClaimedTask>, StoreError> {
        let Some(ClaimStart { mut tx, seq, network }) = self.begin_claim(tenant).await? else {
            return Ok(Vec::new());
        };
        let (claimed, expired) = claim(&mut tx, worker, now, lease, limit, network).await?;
        if !claimed.is_empty() || expired {
            ring(&mut tx, tenant).await?;
        }
        let due = next_due(&mut tx).await?;
        settle_due(&mut tx, DueTable::Work, tenant, seq, due).await?;
        tx.commit().await.map_err(translate)?;
        Ok(claimed)
    }

    async fn renew(
        &self,
        tenant: &TenantName,
        worker: &str,
        keys: Vec<TaskKey>,
        until: DateTime<Utc>,
    ) -> Result<Vec<TaskKey>, StoreError> {
        let Some(mut tx) = self.begin_tenant(tenant).await? else { return Ok(Vec::new()) };
        let ids: Vec<Uuid> = keys.iter().map(|k| k.execution_id.as_uuid()).collect();
        let positions: Vec<i32> = keys.iter().map(|k| pos(k.position)).collect();
        let held: Vec<(Uuid, i32)> = sqlx::query_as(
            "UPDATE execution_tasks t SET lease_until = $2
             FROM unnest($3::uuid[], $4::int[]) AS k(e, p)
             WHERE t.execution_id = k.e AND t.position = k.p AND t.lease_owner = $1 AND t.status = 'running'
             RETURNING t.execution_id, t.position",
        )
        .bind(worker)
        .bind(until)
        .bind(&ids)
        .bind(&positions)
        .fetch_all(&mut *tx)
        .await
        .map_err(translate)?;
        tx.commit().await.map_err(translate)?;
        Ok(held
            .into_iter()
            .filter_map(|(e, p)| {
                Some(TaskKey { execution_id: ExecutionId::from_uuid(e), position: usize::try_from(p).ok()? })
            })
            .collect())
    }

    async fn record(
        &self,
        tenant: &TenantName,
        worker: &str,
        reports: Vec<AttemptReport>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Recorded>, StoreError> {
        let Some(mut tx) = self.begin_tenant(tenant).await? else { return Ok(vec![Recorded::Stale; reports.len()]) };
        let (recorded, due) = record(&mut tx, worker, &reports, now).await?;
        if let Some(due) = due {
            wake(&mut tx, tenant, due).await?;
        }
        ring(&mut tx, tenant).await?;
        tx.commit().await.map_err(translate)?;
        Ok(recorded)
    }

    async fn append_output(
        &self,
        tenant: &TenantName,
        piece: OutputPiece,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let Some(mut tx) = self.begin_tenant(tenant).await? else { return Ok(()) };
        // Not for an execution pruned meanwhile: nothing would ever remove the row.
        sqlx::query(
            "INSERT INTO task_logs (execution_id, position, task_id, attempt, stdout, stderr, truncated, at, ended)
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9 WHERE EXISTS (SELECT 1 FROM executions WHERE id = $1)",
        )
        .bind(piece.key.execution_id.as_uuid())
        .bind(pos(piece.key.position))
        .bind(&piece.task_id)
        .bind(i32::try_from(piece.attempt).unwrap_or(i32::MAX))
        .bind(&piece.stdout)
        .bind(&piece.stderr)
        .bind(piece.truncated)
        .bind(now)
        .bind(piece.ended)
        .execute(&mut *tx)
        .await
        .map_err(translate)?;
        ring(&mut tx, tenant).await?;
        tx.commit().await.map_err(translate)
    }

    async fn release(
        &self,
        tenant: &TenantName,
        worker: &str,
        keys: Vec<TaskKey>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let Some(mut tx) = self.begin_tenant(tenant).await? else { return Ok(()) };
        let ids: Vec<Uuid> = keys.iter().map(|k| k.execution_id.as_uuid()).collect();
        let positions: Vec<i32> = keys.iter().map(|k| pos(k.position)).collect();
        let released: Vec<(Uuid, String)> = sqlx::query_as(
            "UPDATE execution_tasks t SET status = 'ready', ready_at = $2, attempts = greatest(t.attempts - 1, 0),
                lease_owner = NULL, lease_until = NULL
             FROM unnest($3::uuid[], $4::int[]) AS k(e, p)
             WHERE t.execution_id = k.e AND t.position = k.p AND t.lease_owner = $1 AND t.status = 'running'
             RETURNING t.execution_id, t.task_id",
        )
        .bind(worker)
        .bind(now)
        .bind(&ids)
        .bind(&positions)
        .fetch_all(&mut *tx)
        .await
        .map_err(translate)?;
        let given_back: Vec<(Uuid, EventDraft)> =
            released.iter().map(|(id, t)| (*id, EventDraft::released(t, worker))).collect();
        insert_events(&mut tx, now, &given_back).await?;
        if !released.is_empty() {
            wake(&mut tx, tenant, now).await?;
            ring(&mut tx, tenant).await?;
        }
        tx.commit().await.map_err(translate)?;
        Ok(())
    }

    async fn wait_for_work(&self, max: Duration) {
        let _ = tokio::time::timeout(max, self.work.notified()).await;
    }
}
