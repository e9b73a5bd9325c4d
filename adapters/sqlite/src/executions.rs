//! Executions and the engine's queue on SQLite (the single tenant, `public`).
//!
//! Every change runs on the one writer connection as a `BEGIN IMMEDIATE` transaction, so
//! claims never collide: the single writer is SQLite's `SKIP LOCKED`. The rules (what a
//! success, a failure, a cancel or a retry changes) are the domain's; this file stores them.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cloacina_domain::execution::{
    Attempt, AttemptReport, ClaimedTask, EventDraft, EventRecord, ExecutionCreated, ExecutionId, ExecutionPage,
    ExecutionQuery, ExecutionRecord, ExecutionStatus, NewExecution, Plan, Progress, Recorded, Settled, TaskKey,
    TaskLog, TaskRecord, TaskStatus, Transition,
};
use cloacina_domain::ports::{DueWork, ExecutionStore, StoreError, TaskQueue};
use cloacina_domain::{ApiKeyId, TenantName};
use rusqlite::types::Type;
use rusqlite::{Connection, OptionalExtension, Row, Transaction, TransactionBehavior, params};
use serde_json::{Map, Value, json};

use crate::SqliteDb;
use crate::db::translate;
use crate::keys::ts;

const EXECUTION_COLUMNS: &str = "id, workflow, package_id, package_version, status, context, error, origin, \
    idempotency_key, created_at, started_at, finished_at, created_by";

const TASK_COLUMNS: &str = "position, task_id, status, attempts, ready_at, started_at, finished_at, output, error";

fn conv<E: std::error::Error + Send + Sync + 'static>(col: usize, e: E) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(col, Type::Text, Box::new(e))
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Bad(String);

fn time(row: &Row<'_>, col: usize) -> rusqlite::Result<Option<DateTime<Utc>>> {
    row.get::<_, Option<String>>(col)?
        .map(|s| DateTime::parse_from_rfc3339(&s).map(|t| t.with_timezone(&Utc)).map_err(|e| conv(col, e)))
        .transpose()
}

fn required_time(row: &Row<'_>, col: usize) -> rusqlite::Result<DateTime<Utc>> {
    time(row, col)?.ok_or_else(|| conv(col, Bad("missing time".into())))
}

fn object(row: &Row<'_>, col: usize) -> rusqlite::Result<Option<Map<String, Value>>> {
    row.get::<_, Option<String>>(col)?
        .map(|s| serde_json::from_str::<Map<String, Value>>(&s).map_err(|e| conv(col, e)))
        .transpose()
}

fn execution_status(row: &Row<'_>, col: usize) -> rusqlite::Result<ExecutionStatus> {
    let s: String = row.get(col)?;
    ExecutionStatus::parse(&s).ok_or_else(|| conv(col, Bad(format!("unknown execution status '{s}'"))))
}

fn task_status(row: &Row<'_>, col: usize) -> rusqlite::Result<TaskStatus> {
    let s: String = row.get(col)?;
    TaskStatus::parse(&s).ok_or_else(|| conv(col, Bad(format!("unknown task status '{s}'"))))
}

fn execution_id(row: &Row<'_>, col: usize) -> rusqlite::Result<ExecutionId> {
    row.get::<_, String>(col)?.parse().map_err(|e| conv(col, e))
}

fn execution(row: &Row<'_>) -> rusqlite::Result<ExecutionRecord> {
    Ok(ExecutionRecord {
        id: execution_id(row, 0)?,
        workflow: row.get(1)?,
        package_id: row.get::<_, String>(2)?.parse().map_err(|e| conv(2, e))?,
        package_version: row.get(3)?,
        status: execution_status(row, 4)?,
        context: object(row, 5)?.unwrap_or_default(),
        error: row.get(6)?,
        origin: row.get(7)?,
        idempotency_key: row.get(8)?,
        created_at: required_time(row, 9)?,
        started_at: time(row, 10)?,
        finished_at: time(row, 11)?,
        created_by: row
            .get::<_, Option<String>>(12)?
            .map(|s| s.parse::<ApiKeyId>().map_err(|e| conv(12, e)))
            .transpose()?,
    })
}

fn task(row: &Row<'_>, plan: &Plan) -> rusqlite::Result<TaskRecord> {
    let position: usize = row.get::<_, i64>(0)?.try_into().map_err(|e| conv(0, e))?;
    Ok(TaskRecord {
        max_attempts: plan.tasks.get(position).map_or(1, |t| t.retry.max_attempts()),
        position: row.get::<_, i64>(0)?.try_into().map_err(|e| conv(0, e))?,
        task_id: row.get(1)?,
        status: task_status(row, 2)?,
        attempts: row.get::<_, i64>(3)?.try_into().map_err(|e| conv(3, e))?,
        ready_at: time(row, 4)?,
        started_at: time(row, 5)?,
        finished_at: time(row, 6)?,
        output: object(row, 7)?,
        error: row.get(8)?,
    })
}

fn find_execution(conn: &Connection, id: ExecutionId) -> rusqlite::Result<Option<ExecutionRecord>> {
    conn.prepare_cached(&format!("SELECT {EXECUTION_COLUMNS} FROM executions WHERE id = ?1"))?
        .query_row([id.to_string()], execution)
        .optional()
}

fn later(at: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    at + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// One execution as the rules need it, read inside a write transaction.
struct Loaded {
    record: ExecutionRecord,
    plan: Plan,
    progress: Progress,
}

fn load(tx: &Connection, id: ExecutionId) -> Result<Option<Loaded>, StoreError> {
    let Some(record) = find_execution(tx, id).map_err(translate)? else { return Ok(None) };
    let plan_text: String =
        tx.query_row("SELECT plan FROM executions WHERE id = ?1", [id.to_string()], |r| r.get(0)).map_err(translate)?;
    let plan_json: Value = serde_json::from_str(&plan_text).map_err(|e| StoreError::Unexpected(e.to_string()))?;
    let plan = Plan::from_json(&plan_json).map_err(|e| StoreError::Unexpected(e.to_string()))?;
    let mut stmt = tx
        .prepare_cached("SELECT status, attempts FROM execution_tasks WHERE execution_id = ?1 ORDER BY position")
        .map_err(translate)?;
    let rows = stmt
        .query_map([id.to_string()], |r| Ok((task_status(r, 0)?, r.get::<_, i64>(1)?)))
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(translate)?;
    if rows.len() != plan.tasks.len() {
        return Err(StoreError::Unexpected(format!(
            "execution {id} has {} task rows for a plan of {}",
            rows.len(),
            plan.tasks.len()
        )));
    }
    let progress = Progress {
        status: rows.iter().map(|r| r.0).collect(),
        attempts: rows.iter().map(|r| u32::try_from(r.1).unwrap_or(0)).collect(),
    };
    Ok(Some(Loaded { record, plan, progress }))
}

fn insert_event(tx: &Connection, id: ExecutionId, at: DateTime<Utc>, e: &EventDraft) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO execution_events (execution_id, at, kind, task, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![id.to_string(), ts(at), e.kind, e.task, e.detail.to_string()])
    .map(drop)
}

/// Writes what a step changed: task rows, the execution's status, the events.
fn write_settled(
    tx: &Connection,
    loaded: &Loaded,
    settled: &Settled,
    attempted: Option<usize>,
    error: Option<String>,
    now: DateTime<Utc>,
) -> rusqlite::Result<()> {
    let id = loaded.record.id.to_string();
    for c in &settled.changes {
        let attempts = i64::from(loaded.progress.attempts[c.position]);
        let pos = i64::try_from(c.position).unwrap_or(i64::MAX);
        match c.status {
            TaskStatus::Ready => {
                let at = match (attempted, settled.retry_after) {
                    (Some(a), Some(wait)) if a == c.position => later(now, wait),
                    _ => now,
                };
                tx.prepare_cached(
                    "UPDATE execution_tasks SET status = 'ready', ready_at = ?3, attempts = ?4, lease_owner = NULL,
                        lease_until = NULL, finished_at = NULL WHERE execution_id = ?1 AND position = ?2",
                )?
                .execute(params![id, pos, ts(at), attempts])?;
            }
            TaskStatus::Waiting => {
                tx.prepare_cached(
                    "UPDATE execution_tasks SET status = 'waiting', ready_at = NULL, attempts = ?3, lease_owner = NULL,
                        lease_until = NULL, started_at = NULL, finished_at = NULL, output = NULL, error = NULL
                     WHERE execution_id = ?1 AND position = ?2",
                )?
                .execute(params![id, pos, attempts])?;
            }
            other => {
                tx.prepare_cached(
                    "UPDATE execution_tasks SET status = ?3, ready_at = NULL, lease_owner = NULL, lease_until = NULL,
                        finished_at = ?4 WHERE execution_id = ?1 AND position = ?2",
                )?
                .execute(params![id, pos, other.as_str(), ts(now)])?;
            }
        }
    }
    let before = loaded.record.status;
    if settled.status != before || error.is_some() {
        let finished = settled.status.is_terminal().then(|| ts(now));
        let started = (settled.status != ExecutionStatus::Pending).then(|| ts(now));
        tx.prepare_cached(
            "UPDATE executions SET status = ?2, finished_at = ?3, started_at = coalesce(started_at, ?4),
                error = coalesce(error, ?5)
             WHERE id = ?1",
        )?
        .execute(params![id, settled.status.as_str(), finished, started, error])?;
    }
    for e in &settled.events {
        insert_event(tx, loaded.record.id, now, e)?;
    }
    Ok(())
}

fn create(conn: &mut Connection, new: &NewExecution) -> Result<(ExecutionCreated, bool), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(translate)?;
    if let Some(key) = &new.idempotency_key {
        let first = tx
            .query_row(
                &format!("SELECT {EXECUTION_COLUMNS} FROM executions WHERE idempotency_key = ?1"),
                [key],
                execution,
            )
            .optional()
            .map_err(translate)?;
        if let Some(first) = first {
            return Ok((ExecutionCreated::Existing(first), false));
        }
    }
    let paused: Option<bool> = tx
        .query_row("SELECT paused FROM workflows WHERE name = ?1", [&new.workflow], |r| r.get(0))
        .optional()
        .map_err(translate)?;
    match paused {
        None => return Ok((ExecutionCreated::Gone, false)),
        Some(true) => return Ok((ExecutionCreated::Paused, false)),
        Some(false) => {}
    }
    let package: Option<i64> = tx
        .query_row("SELECT 1 FROM packages WHERE id = ?1", [new.package_id.to_string()], |r| r.get(0))
        .optional()
        .map_err(translate)?;
    if package.is_none() {
        return Ok((ExecutionCreated::Gone, false));
    }
    let id = new.id.to_string();
    let at = ts(new.created_at);
    tx.execute(
        "INSERT INTO executions (id, workflow, package_id, package_version, status, plan, context, origin,
                                 idempotency_key, created_at, created_by)
         VALUES (?1, ?2, ?3, ?4, 'pending', ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            id,
            new.workflow,
            new.package_id.to_string(),
            new.package_version,
            new.plan.to_json().to_string(),
            Value::Object(new.context.clone()).to_string(),
            new.origin,
            new.idempotency_key,
            at,
            new.created_by.map(|k| k.to_string()),
        ],
    )
    .map_err(translate)?;
    let start = new.plan.start();
    let mut readied = false;
    {
        let mut insert = tx
            .prepare_cached(
                "INSERT INTO execution_tasks (execution_id, position, task_id, status, ready_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .map_err(translate)?;
        for (i, (t, s)) in new.plan.tasks.iter().zip(&start.status).enumerate() {
            let ready_at = (*s == TaskStatus::Ready).then(|| at.clone());
            readied |= ready_at.is_some();
            insert
                .execute(params![id, i64::try_from(i).unwrap_or(i64::MAX), t.id.as_str(), s.as_str(), ready_at])
                .map_err(translate)?;
        }
    }
    let created = EventDraft::new(
        "execution_created",
        None,
        json!({"workflow": new.workflow, "package_version": new.package_version, "origin": new.origin}),
    );
    insert_event(&tx, new.id, new.created_at, &created).map_err(translate)?;
    let record = find_execution(&tx, new.id)
        .map_err(translate)?
        .ok_or_else(|| StoreError::Unexpected("lost the new execution".into()))?;
    tx.commit().map_err(translate)?;
    Ok((ExecutionCreated::Created(record), readied))
}

/// The context a claimed task receives: its ancestors' outputs merged into the initial one.
fn context_for(
    tx: &Connection,
    id: ExecutionId,
    position: usize,
    plan: &Plan,
    initial: &Map<String, Value>,
) -> rusqlite::Result<Map<String, Value>> {
    let mut outputs: Vec<Option<Map<String, Value>>> = vec![None; plan.tasks.len()];
    let mut stmt = tx.prepare_cached(
        "SELECT position, output FROM execution_tasks WHERE execution_id = ?1 AND output IS NOT NULL",
    )?;
    let rows = stmt.query_map([id.to_string()], |r| Ok((r.get::<_, i64>(0)?, object(r, 1)?)))?;
    for row in rows {
        let (pos, out) = row?;
        if let Some(slot) = usize::try_from(pos).ok().and_then(|p| outputs.get_mut(p)) {
            *slot = out;
        }
    }
    Ok(plan.context_for(position, initial, &outputs))
}

fn claim(
    conn: &mut Connection,
    worker: &str,
    now: DateTime<Utc>,
    lease: Duration,
    limit: usize,
) -> Result<(Vec<ClaimedTask>, bool), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(translate)?;
    let reclaimed = reclaim_expired(&tx, now).map_err(translate)?;
    let until = ts(later(now, lease));
    let rows: Vec<(ExecutionId, usize, String, u32)> = {
        let mut stmt = tx
            .prepare_cached(
                "UPDATE execution_tasks SET status = 'running', attempts = attempts + 1, lease_owner = ?1,
                    lease_until = ?2, started_at = ?3, ready_at = NULL
                 WHERE (execution_id, position) IN (
                     SELECT execution_id, position FROM execution_tasks
                     WHERE status = 'ready' AND ready_at <= ?3 ORDER BY ready_at LIMIT ?4)
                 RETURNING execution_id, position, task_id, attempts",
            )
            .map_err(translate)?;
        stmt.query_map(params![worker, until, ts(now), i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
            Ok((
                execution_id(r, 0)?,
                r.get::<_, i64>(1)?.try_into().map_err(|e| conv(1, e))?,
                r.get(2)?,
                r.get::<_, i64>(3)?.try_into().map_err(|e| conv(3, e))?,
            ))
        })
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(translate)?
    };
    let network = if rows.is_empty() { None } else { crate::tenants::stored_network(&tx)? };
    let mut plans: HashMap<ExecutionId, (Plan, Map<String, Value>, uuid::Uuid)> = HashMap::new();
    let mut claimed = Vec::with_capacity(rows.len());
    for (id, position, task_id, attempt) in rows {
        if let std::collections::hash_map::Entry::Vacant(slot) = plans.entry(id) {
            let (plan, context, package): (String, String, String) = tx
                .query_row("SELECT plan, context, package_id FROM executions WHERE id = ?1", [id.to_string()], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .map_err(translate)?;
            let plan = serde_json::from_str(&plan)
                .map_err(|e| e.to_string())
                .and_then(|v| Plan::from_json(&v).map_err(|e| e.to_string()))
                .map_err(StoreError::Unexpected)?;
            let context = serde_json::from_str(&context).map_err(|e| StoreError::Unexpected(e.to_string()))?;
            let package = package.parse().map_err(|e: uuid::Error| StoreError::Unexpected(e.to_string()))?;
            tx.execute(
                "UPDATE executions SET status = 'running', started_at = coalesce(started_at, ?2) WHERE id = ?1 AND status = 'pending'",
                params![id.to_string(), ts(now)],
            )
            .map_err(translate)?;
            slot.insert((plan, context, package));
        }
        let (plan, initial, package) = &plans[&id];
        let Some(step) = plan.tasks.get(position) else {
            return Err(StoreError::Unexpected(format!("execution {id} has no task at {position}")));
        };
        let context = context_for(&tx, id, position, plan, initial).map_err(translate)?;
        insert_event(
            &tx,
            id,
            now,
            &EventDraft::new("task_started", Some(task_id.clone()), json!({"attempt": attempt, "worker": worker})),
        )
        .map_err(translate)?;
        claimed.push(ClaimedTask {
            key: TaskKey { execution_id: id, position },
            attempt,
            task_id,
            package_id: *package,
            command: step.command.clone(),
            env: step.env.clone(),
            timeout: step.timeout,
            limits: step.limits,
            context,
            network,
        });
    }
    tx.commit().map_err(translate)?;
    Ok((claimed, reclaimed > 0))
}

/// Running tasks whose lease ran out go back to ready; the lost attempt does not count.
fn reclaim_expired(tx: &Transaction<'_>, now: DateTime<Utc>) -> rusqlite::Result<usize> {
    let lost: Vec<(String, String)> = tx
        .prepare_cached(
            "UPDATE execution_tasks SET status = 'ready', ready_at = ?1, attempts = max(attempts - 1, 0),
                lease_owner = NULL, lease_until = NULL
             WHERE status = 'running' AND lease_until < ?1
             RETURNING execution_id, task_id",
        )?
        .query_map([ts(now)], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    for (id, task) in &lost {
        let id: ExecutionId = id.parse().map_err(|e| conv(0, e))?;
        insert_event(tx, id, now, &EventDraft::new("task_lease_expired", Some(task.clone()), json!({})))?;
    }
    Ok(lost.len())
}

fn record_one(
    tx: &Connection,
    worker: &str,
    report: &AttemptReport,
    now: DateTime<Utc>,
) -> Result<Recorded, StoreError> {
    let id = report.key.execution_id;
    let pos = i64::try_from(report.key.position).unwrap_or(i64::MAX);
    let held: Option<(String, i64, Option<String>)> = tx
        .query_row(
            "SELECT status, attempts, lease_owner FROM execution_tasks WHERE execution_id = ?1 AND position = ?2",
            params![id.to_string(), pos],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()
        .map_err(translate)?;
    let ours =
        matches!(&held, Some((s, a, Some(o))) if s == "running" && *a == i64::from(report.attempt) && o == worker);
    if !ours {
        return Ok(Recorded::Stale);
    }
    let Some(mut loaded) = load(tx, id)? else { return Ok(Recorded::Stale) };
    let mut progress = loaded.progress.clone();
    let settled = loaded.plan.settle(&mut progress, report.key.position, &report.outcome);
    let task_name = loaded.plan.tasks.get(report.key.position).map(|t| t.id.to_string()).unwrap_or_default();
    let (output, error) = match &report.outcome {
        Attempt::Succeeded => (report.output.as_ref().map(|o| Value::Object(o.clone()).to_string()), None),
        Attempt::Failed(reason) => (None, Some(reason.clone())),
    };
    tx.execute(
        "UPDATE execution_tasks SET output = ?3, error = ?4 WHERE execution_id = ?1 AND position = ?2",
        params![id.to_string(), pos, output, error],
    )
    .map_err(translate)?;
    tx.execute(
        "INSERT INTO task_logs (execution_id, position, task_id, attempt, stdout, stderr, truncated, at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            id.to_string(),
            pos,
            task_name,
            report.attempt,
            report.stdout,
            report.stderr,
            report.truncated,
            ts(now)
        ],
    )
    .map_err(translate)?;
    let failed_for_good =
        settled.changes.iter().any(|c| c.position == report.key.position && c.status == TaskStatus::Failed);
    let execution_error = match &report.outcome {
        Attempt::Failed(reason) if failed_for_good => {
            Some(format!("task '{task_name}' failed after {} attempt(s): {reason}", report.attempt))
        }
        _ => None,
    };
    loaded.progress = progress;
    write_settled(tx, &loaded, &settled, Some(report.key.position), execution_error, now).map_err(translate)?;
    Ok(Recorded::Done { readied: settled.readied() })
}

/// Records a batch of outcomes in one transaction.
fn record(
    conn: &mut Connection,
    worker: &str,
    reports: &[AttemptReport],
    now: DateTime<Utc>,
) -> Result<Vec<Recorded>, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(translate)?;
    let recorded = reports.iter().map(|r| record_one(&tx, worker, r, now)).collect::<Result<Vec<_>, _>>()?;
    tx.commit().map_err(translate)?;
    Ok(recorded)
}

fn transition(
    conn: &mut Connection,
    id: ExecutionId,
    at: DateTime<Utc>,
    retry: bool,
) -> Result<(Transition, bool), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(translate)?;
    let Some(mut loaded) = load(&tx, id)? else { return Ok((Transition::NotFound, false)) };
    let allowed = if retry {
        matches!(loaded.record.status, ExecutionStatus::Failed | ExecutionStatus::Cancelled)
    } else {
        !loaded.record.status.is_terminal()
    };
    if !allowed {
        return Ok((Transition::Refused(loaded.record), false));
    }
    let mut progress = loaded.progress.clone();
    let settled =
        if retry { loaded.plan.settle_retry(&mut progress) } else { loaded.plan.settle_cancel(&mut progress) };
    loaded.progress = progress;
    write_settled(&tx, &loaded, &settled, None, None, at).map_err(translate)?;
    if retry {
        // The tasks that start over keep nothing of their earlier runs but their logs.
        tx.execute(
            "UPDATE execution_tasks SET started_at = NULL, output = NULL, error = NULL
             WHERE execution_id = ?1 AND status IN ('ready', 'waiting')",
            [id.to_string()],
        )
        .map_err(translate)?;
        tx.execute(
            "UPDATE executions SET status = ?2, error = NULL, finished_at = NULL WHERE id = ?1",
            params![id.to_string(), settled.status.as_str()],
        )
        .map_err(translate)?;
    } else {
        tx.execute(
            "UPDATE executions SET status = 'cancelled', finished_at = coalesce(finished_at, ?2) WHERE id = ?1",
            params![id.to_string(), ts(at)],
        )
        .map_err(translate)?;
    }
    let record = find_execution(&tx, id)
        .map_err(translate)?
        .ok_or_else(|| StoreError::Unexpected("lost the execution".into()))?;
    tx.commit().map_err(translate)?;
    Ok((Transition::Done(record), settled.readied()))
}

fn list(conn: &Connection, q: &ExecutionQuery) -> rusqlite::Result<ExecutionPage> {
    let filter = "(?1 IS NULL OR status = ?1) AND (?2 IS NULL OR workflow = ?2)";
    let status = q.status.map(ExecutionStatus::as_str);
    let total: i64 = conn
        .prepare_cached(&format!("SELECT count(*) FROM executions WHERE {filter}"))?
        .query_row(params![status, q.workflow], |r| r.get(0))?;
    let executions = conn
        .prepare_cached(&format!(
            "SELECT {EXECUTION_COLUMNS} FROM executions WHERE {filter} ORDER BY created_at DESC, id DESC LIMIT ?3 OFFSET ?4"
        ))?
        .query_map(params![status, q.workflow, q.limit, i64::try_from(q.offset).unwrap_or(i64::MAX)], execution)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ExecutionPage { executions, total: total.unsigned_abs() })
}

fn exists(conn: &Connection, id: ExecutionId) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT 1 FROM executions WHERE id = ?1")?
        .query_row([id.to_string()], |_| Ok(()))
        .optional()
        .map(|r| r.is_some())
}

#[async_trait]
impl ExecutionStore for SqliteDb {
    async fn create_execution(
        &self,
        tenant: &TenantName,
        new: &NewExecution,
    ) -> Result<Option<ExecutionCreated>, StoreError> {
        if !tenant.is_public() {
            return Ok(None);
        }
        let new = new.clone();
        let (created, readied) = self.write_store(move |conn| create(conn, &new)).await?;
        if readied {
            self.inner.work.notify_one();
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

    async fn get_execution(
        &self,
        tenant: &TenantName,
        id: ExecutionId,
    ) -> Result<Option<Option<ExecutionRecord>>, StoreError> {
        if !tenant.is_public() {
            return Ok(None);
        }
        self.read(move |conn| find_execution(conn, id)).await.map(Some)
    }

    async fn execution_tasks(
        &self,
        tenant: &TenantName,
        id: ExecutionId,
    ) -> Result<Option<Option<Vec<TaskRecord>>>, StoreError> {
        if !tenant.is_public() {
            return Ok(None);
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
        .map(Some)
    }

    async fn execution_events(
        &self,
        tenant: &TenantName,
        id: ExecutionId,
        since: i64,
        limit: u32,
    ) -> Result<Option<Option<Vec<EventRecord>>>, StoreError> {
        if !tenant.is_public() {
            return Ok(None);
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
                    kind: r.get(2)?,
                    task: r.get(3)?,
                    detail: serde_json::from_str(&detail).map_err(|e| conv(4, e))?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
        })
        .await
        .map(Some)
    }

    async fn task_logs(
        &self,
        tenant: &TenantName,
        id: ExecutionId,
        task: &str,
    ) -> Result<Option<Option<Vec<TaskLog>>>, StoreError> {
        if !tenant.is_public() {
            return Ok(None);
        }
        let task = task.to_owned();
        self.read(move |conn| {
            if !exists(conn, id)? {
                return Ok(None);
            }
            conn.prepare_cached(
                "SELECT task_id, attempt, stdout, stderr, truncated, at FROM task_logs WHERE execution_id = ?1 AND task_id = ?2 ORDER BY id",
            )?
            .query_map(params![id.to_string(), task], |r| {
                Ok(TaskLog {
                    task_id: r.get(0)?,
                    attempt: r.get::<_, i64>(1)?.try_into().map_err(|e| conv(1, e))?,
                    stdout: r.get(2)?,
                    stderr: r.get(3)?,
                    truncated: r.get(4)?,
                    at: required_time(r, 5)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
        })
        .await
        .map(Some)
    }

    async fn cancel_execution(
        &self,
        tenant: &TenantName,
        id: ExecutionId,
        at: DateTime<Utc>,
    ) -> Result<Option<Transition>, StoreError> {
        if !tenant.is_public() {
            return Ok(None);
        }
        self.write_store(move |conn| transition(conn, id, at, false)).await.map(|(t, _)| Some(t))
    }

    async fn retry_execution(
        &self,
        tenant: &TenantName,
        id: ExecutionId,
        at: DateTime<Utc>,
    ) -> Result<Option<Transition>, StoreError> {
        if !tenant.is_public() {
            return Ok(None);
        }
        let (t, readied) = self.write_store(move |conn| transition(conn, id, at, true)).await?;
        if readied {
            self.inner.work.notify_one();
        }
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
        let (claimed, _) = self.write_store(move |conn| claim(conn, &worker, now, lease, limit)).await?;
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
        if recorded.iter().any(|r| matches!(r, Recorded::Done { readied: true })) {
            self.inner.work.notify_one();
        }
        Ok(recorded)
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
                        insert_event(
                            &tx,
                            k.execution_id,
                            now,
                            &EventDraft::new("task_released", Some(task), json!({"worker": worker})),
                        )?;
                    }
                }
            }
            tx.commit()
        })
        .await?;
        self.inner.work.notify_one();
        Ok(())
    }

    async fn wait_for_work(&self, max: Duration) {
        let _ = tokio::time::timeout(max, self.inner.work.notified()).await;
    }
}
