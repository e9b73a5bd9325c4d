//! Storing a new execution and its tasks, once per idempotency key.

use cloacina_domain::execution::{EventDraft, ExecutionCreated, NewExecution, TaskStatus};
use cloacina_domain::ports::StoreError;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde_json::Value;

use crate::db::translate;
use crate::keys::ts;

use super::*;

/// Appends `audit` with the execution when, and only when, it stores one.
pub(super) fn create(
    conn: &mut Connection,
    new: &NewExecution,
    audit: &cloacina_domain::audit::AuditEntry,
) -> Result<(ExecutionCreated, bool), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(translate)?;
    let created = create_in(&tx, new)?;
    if matches!(created.0, ExecutionCreated::Created(_)) {
        crate::audit::append(&tx, audit).map_err(translate)?;
    }
    tx.commit().map_err(translate)?;
    Ok(created)
}

/// [`create`] inside a transaction the caller commits (a trigger's fires commit with it).
pub(crate) fn create_in(
    tx: &rusqlite::Transaction<'_>,
    new: &NewExecution,
) -> Result<(ExecutionCreated, bool), StoreError> {
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
                                 idempotency_key, created_at, created_by, trigger, scheduled_at)
         VALUES (?1, ?2, ?3, ?4, 'pending', ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
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
            new.fired.as_ref().map(|f| f.trigger.as_str()),
            new.fired.as_ref().map(|f| ts(f.scheduled_at)),
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
    let created = EventDraft::created(new);
    insert_event(tx, new.id, new.created_at, &created).map_err(translate)?;
    let record = find_execution(tx, new.id)
        .map_err(translate)?
        .ok_or_else(|| StoreError::Unexpected("lost the new execution".into()))?;
    Ok((ExecutionCreated::Created(record), readied))
}
