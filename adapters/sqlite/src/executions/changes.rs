//! What a change of an execution loads, the settled rows and events it writes back, and the cancel and retry transitions.

use chrono::{DateTime, Utc};
use cloacina_domain::execution::{
    Command, EventDraft, ExecutionId, ExecutionRecord, ExecutionStatus, Plan, Progress, Settled, TaskStatus, Transition,
};
use cloacina_domain::ports::StoreError;
use rusqlite::{Connection, TransactionBehavior, params};
use serde_json::Value;

use crate::db::translate;
use crate::keys::ts;

use super::*;

/// One execution as the rules need it, read inside a write transaction.
pub(super) struct Loaded {
    pub(super) record: ExecutionRecord,
    pub(super) plan: Plan,
    pub(super) progress: Progress,
}

pub(super) fn load(tx: &Connection, id: ExecutionId) -> Result<Option<Loaded>, StoreError> {
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

pub(super) fn insert_event(
    tx: &Connection,
    id: ExecutionId,
    at: DateTime<Utc>,
    e: &EventDraft,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO execution_events (execution_id, at, kind, task, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![id.to_string(), ts(at), e.kind.as_str(), e.task, e.detail.to_string()])
    .map(drop)
}

/// Writes what a step changed: task rows, the execution's status, the events.
pub(super) fn write_settled(
    tx: &Connection,
    loaded: &Loaded,
    settled: &Settled,
    attempted: Option<usize>,
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
                        lease_until = NULL, finished_at = NULL,
                        started_at = CASE WHEN ?5 THEN NULL ELSE started_at END,
                        output = CASE WHEN ?5 THEN NULL ELSE output END,
                        error = CASE WHEN ?5 THEN NULL ELSE error END
                     WHERE execution_id = ?1 AND position = ?2",
                )?
                .execute(params![id, pos, ts(at), attempts, settled.reset])?;
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
    if settled.status != before || settled.error.is_some() || settled.reset {
        let finished = settled.status.is_terminal().then(|| ts(now));
        let started = (settled.status != ExecutionStatus::Pending).then(|| ts(now));
        tx.prepare_cached(
            "UPDATE executions SET status = ?2, finished_at = ?3, started_at = coalesce(started_at, ?4),
                error = CASE WHEN ?6 THEN NULL ELSE coalesce(error, ?5) END
             WHERE id = ?1",
        )?
        .execute(params![id, settled.status.as_str(), finished, started, settled.error, settled.reset])?;
    }
    for e in &settled.events {
        insert_event(tx, loaded.record.id, now, e)?;
    }
    Ok(())
}

pub(super) fn transition(
    conn: &mut Connection,
    id: ExecutionId,
    at: DateTime<Utc>,
    command: Command,
    audit: &cloacina_domain::audit::AuditEntry,
) -> Result<(Transition, bool), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(translate)?;
    let done = transition_in(&tx, id, at, command)?;
    if matches!(done.0, Transition::Done(_)) {
        crate::audit::append(&tx, audit).map_err(translate)?;
    }
    tx.commit().map_err(translate)?;
    Ok(done)
}

/// [`transition`] inside a transaction the caller commits.
pub(crate) fn transition_in(
    tx: &rusqlite::Transaction<'_>,
    id: ExecutionId,
    at: DateTime<Utc>,
    command: Command,
) -> Result<(Transition, bool), StoreError> {
    let Some(mut loaded) = load(tx, id)? else { return Ok((Transition::NotFound, false)) };
    let mut progress = loaded.progress.clone();
    let Some(settled) = loaded.plan.command(command, loaded.record.status, &mut progress) else {
        return Ok((Transition::Refused(loaded.record), false));
    };
    loaded.progress = progress;
    write_settled(tx, &loaded, &settled, None, at).map_err(translate)?;
    let record = find_execution(tx, id)
        .map_err(translate)?
        .ok_or_else(|| StoreError::Unexpected("lost the execution".into()))?;
    Ok((Transition::Done(record), settled.readied()))
}
