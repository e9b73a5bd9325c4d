//! Executions and the engine's queue on SQLite (the single tenant, `public`).
//!
//! Every change runs on the one writer connection as a `BEGIN IMMEDIATE` transaction, so
//! claims never collide: the single writer is SQLite's `SKIP LOCKED`. The rules (what a
//! success, a failure, a cancel or a retry changes) are the domain's; this module stores them:
//! `rows` (decoding, listings), `create`, `claim`, `record`, `changes` (what a change loads and
//! writes back, cancel and retry); the trait impls are here.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cloacina_domain::TenantName;
use cloacina_domain::audit::AuditEntry;
use cloacina_domain::execution::{
    AttemptReport, ClaimedTask, Command, EventDraft, EventRecord, ExecutionCreated, ExecutionId, ExecutionPage,
    ExecutionQuery, ExecutionRecord, NewExecution, OutputPiece, Plan, Recorded, TaskKey, TaskLog, TaskRecord,
    Transition,
};
use cloacina_domain::ports::{DueWork, ExecutionStore, Lookup, StoreError, TaskQueue};
use rusqlite::{OptionalExtension, TransactionBehavior, params};

use crate::SqliteDb;
use crate::keys::ts;

pub(crate) mod changes;
mod claim;
pub(crate) mod create;
mod feed;
mod record;
pub(crate) mod rows;

use changes::*;
use claim::*;
use create::*;
use record::*;
use rows::*;

const EXECUTION_COLUMNS: &str = "id, workflow, package_id, package_version, status, context, error, origin, \
    idempotency_key, created_at, started_at, finished_at, created_by, trigger, scheduled_at";

const TASK_COLUMNS: &str = "position, task_id, status, attempts, ready_at, started_at, finished_at, output, error";

fn later(at: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    at + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

#[async_trait]
impl ExecutionStore for SqliteDb {
    async fn create_execution(
        &self,
        tenant: &TenantName,
        new: &NewExecution,
        audit: &AuditEntry,
    ) -> Result<Option<ExecutionCreated>, StoreError> {
        if !tenant.is_public() {
            return Ok(None);
        }
        let (new, audit) = (new.clone(), audit.clone());
        let (created, readied) = self.write_store(move |conn| create(conn, &new, &audit)).await?;
        if readied {
            self.inner.work.notify_one();
        }
        if matches!(created, ExecutionCreated::Created(_)) {
            self.inner.bell.ring(tenant);
        }
        Ok(Some(created))
    }

    async fn list_executions(
        &self,
        tenant: &TenantName,
        query: &ExecutionQuery,
    ) -> Result<Option<ExecutionPage>, StoreError> {
        if !tenant.is_public() {
            return Ok(None);
        }
        let query = query.clone();
        self.read(move |conn| list(conn, &query)).await.map(Some)
    }

    async fn get_execution(&self, tenant: &TenantName, id: ExecutionId) -> Result<Lookup<ExecutionRecord>, StoreError> {
        if !tenant.is_public() {
            return Ok(Lookup::NoTenant);
        }
        self.read(move |conn| find_execution(conn, id)).await.map(Lookup::from_option)
    }

    async fn execution_tasks(
        &self,
        tenant: &TenantName,
        id: ExecutionId,
    ) -> Result<Lookup<Vec<TaskRecord>>, StoreError> {
        if !tenant.is_public() {
            return Ok(Lookup::NoTenant);
        }
        self.read(move |conn| {
            let plan: Option<String> = conn
                .prepare_cached("SELECT plan FROM executions WHERE id = ?1")?
                .query_row([id.to_string()], |r| r.get(0))
                .optional()?;
            let Some(plan) = plan else { return Ok(None) };
            let plan = serde_json::from_str(&plan)
                .map_err(|e| e.to_string())
                .and_then(|v| Plan::from_json(&v).map_err(|e| e.to_string()))
                .map_err(|e| conv(0, Bad(e)))?;
            conn.prepare_cached(&format!(
                "SELECT {TASK_COLUMNS} FROM execution_tasks WHERE execution_id = ?1 ORDER BY position"
            ))?
            .query_map([id.to_string()], |r| task(r, &plan))?
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
        })
        .await
        .map(Lookup::from_option)
    }

    async fn execution_events(
        &self,
        tenant: &TenantName,
        id: ExecutionId,
        since: i64,
        limit: u32,
    ) -> Result<Lookup<Vec<EventRecord>>, StoreError> {
        if !tenant.is_public() {
            return Ok(Lookup::NoTenant);
        }
        self.read(move |conn| {
            if !exists(conn, id)? {
                return Ok(None);
            }
            conn.prepare_cached(
                "SELECT id, at, kind, task, detail FROM execution_events WHERE execution_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
            )?
            .query_map(params![id.to_string(), since, limit], |r| {
                let detail: String = r.get(4)?;
                Ok(EventRecord {
                    id: r.get(0)?,
                    execution_id: id,
                    at: required_time(r, 1)?,
                    kind: event_kind(r, 2)?,
                    task: r.get(3)?,
                    detail: serde_json::from_str(&detail).map_err(|e| conv(4, e))?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
        })
        .await
        .map(Lookup::from_option)
    }

    async fn task_logs(
        &self,
        tenant: &TenantName,
        id: ExecutionId,
        task: &str,
    ) -> Result<Lookup<Vec<TaskLog>>, StoreError> {
        if !tenant.is_public() {
            return Ok(Lookup::NoTenant);
        }
        let task = task.to_owned();
        self.read(move |conn| {
            if !exists(conn, id)? {
                return Ok(None);
            }
            conn.prepare_cached(
                "SELECT task_id, attempt, stdout, stderr, truncated, at, ended FROM task_logs WHERE execution_id = ?1 AND task_id = ?2 ORDER BY id",
            )?
            .query_map(params![id.to_string(), task], |r| {
                Ok(TaskLog {
                    task_id: r.get(0)?,
                    attempt: r.get::<_, i64>(1)?.try_into().map_err(|e| conv(1, e))?,
                    stdout: r.get(2)?,
                    stderr: r.get(3)?,
                    truncated: r.get(4)?,
                    at: required_time(r, 5)?,
                    ended: r.get(6)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
        })
        .await
        .map(Lookup::from_option)
    }

    async fn cancel_execution(
        &self,
        tenant: &TenantName,
        id: ExecutionId,
        at: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<Option<Transition>, StoreError> {
        if !tenant.is_public() {
            return Ok(None);
        }
        let audit = audit.clone();
        let (t, _) = self.write_store(move |conn| transition(conn, id, at, Command::Cancel, &audit)).await?;
        self.inner.bell.ring(tenant);
        Ok(Some(t))
    }

    async fn retry_execution(
        &self,
        tenant: &TenantName,
        id: ExecutionId,
        at: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<Option<Transition>, StoreError> {
        if !tenant.is_public() {
            return Ok(None);
        }
        let audit = audit.clone();
        let (t, readied) = self.write_store(move |conn| transition(conn, id, at, Command::Retry, &audit)).await?;
        if readied {
            self.inner.work.notify_one();
        }
        self.inner.bell.ring(tenant);
        Ok(Some(t))
    }

    async fn prune_executions(&self, tenant: &TenantName, before: DateTime<Utc>) -> Result<u64, StoreError> {
        if !tenant.is_public() {
            return Ok(0);
        }
        self.write(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let gone = "SELECT id FROM executions WHERE finished_at IS NOT NULL AND finished_at < ?1
                          AND status IN ('succeeded', 'failed', 'cancelled')";
            // Tasks are deleted as PostgreSQL deletes them, not left to the key's cascade.
            tx.execute(&format!("DELETE FROM execution_tasks WHERE execution_id IN ({gone})"), [ts(before)])?;
            tx.execute(&format!("DELETE FROM execution_events WHERE execution_id IN ({gone})"), [ts(before)])?;
            tx.execute(&format!("DELETE FROM task_logs WHERE execution_id IN ({gone})"), [ts(before)])?;
            let n = tx.execute(&format!("DELETE FROM executions WHERE id IN ({gone})"), [ts(before)])?;
            tx.commit()?;
            Ok(n as u64)
        })
        .await
    }
}

#[async_trait]
impl TaskQueue for SqliteDb {
    async fn due_tenants(&self, now: DateTime<Utc>) -> Result<DueWork, StoreError> {
        let next: Option<String> = self
            .read(|conn| {
                conn.prepare_cached(
                    "SELECT min(t) FROM (
                        SELECT min(ready_at) AS t FROM execution_tasks WHERE status = 'ready'
                        UNION ALL SELECT min(lease_until) FROM execution_tasks WHERE status = 'running')",
                )?
                .query_row([], |r| r.get(0))
            })
            .await?;
        let next = next.and_then(|s| DateTime::parse_from_rfc3339(&s).ok()).map(|t| t.with_timezone(&Utc));
        Ok(match next {
            Some(t) if t <= now => DueWork { tenants: vec![TenantName::public()], next: None },
            other => DueWork { tenants: Vec::new(), next: other },
        })
    }

    async fn claim(
        &self,
        tenant: &TenantName,
        worker: &str,
        now: DateTime<Utc>,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<ClaimedTask>, StoreError> {
        if !tenant.is_public() || limit == 0 {
            return Ok(Vec::new());
        }
        let worker = worker.to_owned();
        let (claimed, expired) = self.write_store(move |conn| claim(conn, &worker, now, lease, limit)).await?;
        if !claimed.is_empty() || expired {
            self.inner.bell.ring(tenant);
        }
        Ok(claimed)
    }

    async fn renew(
        &self,
        tenant: &TenantName,
        worker: &str,
        keys: Vec<TaskKey>,
        until: DateTime<Utc>,
    ) -> Result<Vec<TaskKey>, StoreError> {
        if !tenant.is_public() {
            return Ok(Vec::new());
        }
        let worker = worker.to_owned();
        self.write(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut held = Vec::new();
            {
                let mut stmt = tx.prepare_cached(
                    "UPDATE execution_tasks SET lease_until = ?4
                     WHERE execution_id = ?1 AND position = ?2 AND lease_owner = ?3 AND status = 'running'",
                )?;
                for k in keys {
                    if stmt.execute(params![
                        k.execution_id.to_string(),
                        i64::try_from(k.position).unwrap_or(i64::MAX),
                        worker,
                        ts(until)
                    ])? == 1
                    {
                        held.push(k);
                    }
                }
            }
            tx.commit()?;
            Ok(held)
        })
        .await
    }

    async fn record(
        &self,
        tenant: &TenantName,
        worker: &str,
        reports: Vec<AttemptReport>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Recorded>, StoreError> {
        if !tenant.is_public() {
            return Ok(vec![Recorded::Stale; reports.len()]);
        }
        let worker = worker.to_owned();
        let recorded = self.write_store(move |conn| record(conn, &worker, &reports, now)).await?;
        self.inner.bell.ring(tenant);
        if recorded.iter().any(|r| matches!(r, Recorded::Done { readied: true })) {
            self.inner.work.notify_one();
        }
        Ok(recorded)
    }

    async fn append_output(
        &self,
        tenant: &TenantName,
        piece: OutputPiece,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        if !tenant.is_public() {
            return Ok(());
        }
        self.write(move |conn| {
            // Not for an execution pruned meanwhile: nothing would ever remove the row.
            conn.prepare_cached(
                "INSERT INTO task_logs (execution_id, position, task_id, attempt, stdout, stderr, truncated, at, ended)
                 SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9 WHERE EXISTS (SELECT 1 FROM executions WHERE id = ?1)",
            )?
            .execute(params![
                piece.key.execution_id.to_string(),
                i64::try_from(piece.key.position).unwrap_or(i64::MAX),
                piece.task_id,
                piece.attempt,
                piece.stdout,
                piece.stderr,
                piece.truncated,
                ts(now),
                piece.ended
            ])
            .map(drop)
        })
        .await?;
        self.inner.bell.ring(tenant);
        Ok(())
    }

    async fn release(
        &self,
        tenant: &TenantName,
        worker: &str,
        keys: Vec<TaskKey>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        if !tenant.is_public() {
            return Ok(());
        }
        let worker = worker.to_owned();
        self.write(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            {
                let mut stmt = tx.prepare_cached(
                    "UPDATE execution_tasks SET status = 'ready', ready_at = ?4, attempts = max(attempts - 1, 0),
                        lease_owner = NULL, lease_until = NULL
                     WHERE execution_id = ?1 AND position = ?2 AND lease_owner = ?3 AND status = 'running'
                     RETURNING task_id",
                )?;
                for k in keys {
                    let task: Option<String> = stmt
                        .query_row(
                            params![
                                k.execution_id.to_string(),
                                i64::try_from(k.position).unwrap_or(i64::MAX),
                                worker,
                                ts(now)
                            ],
                            |r| r.get(0),
                        )
                        .optional()?;
                    if let Some(task) = task {
                        insert_event(&tx, k.execution_id, now, &EventDraft::released(&task, &worker))?;
                    }
                }
            }
            tx.commit()
        })
        .await?;
        self.inner.work.notify_one();
        self.inner.bell.ring(tenant);
        Ok(())
    }

    async fn wait_for_work(&self, max: Duration) {
        let _ = tokio::time::timeout(max, self.inner.work.notified()).await;
    }
}
