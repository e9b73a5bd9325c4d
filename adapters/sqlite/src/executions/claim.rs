//! Claiming ready tasks, lost leases first, with the context each one receives.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use cloacina_domain::execution::{ClaimedTask, EventDraft, ExecutionId, Plan, TaskKey};
use cloacina_domain::ports::StoreError;
use rusqlite::{Connection, Transaction, TransactionBehavior, params};
use serde_json::{Map, Value};

use crate::db::translate;
use crate::keys::ts;

use super::*;

/// The context a claimed task receives: its ancestors' outputs merged into the initial one.
pub(super) fn context_for(
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

pub(super) fn claim(
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
        insert_event(&tx, id, now, &EventDraft::started(&task_id, attempt, worker)).map_err(translate)?;
        claimed.push(ClaimedTask {
            key: TaskKey { execution_id: id, position },
            attempt,
            task_id,
            package_id: *package,
            command: step.command.clone(),
            env: step.env.clone(),
            secrets: step.secrets.clone(),
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
pub(super) fn reclaim_expired(tx: &Transaction<'_>, now: DateTime<Utc>) -> rusqlite::Result<usize> {
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
        insert_event(tx, id, now, &EventDraft::lease_expired(task))?;
    }
    Ok(lost.len())
}
