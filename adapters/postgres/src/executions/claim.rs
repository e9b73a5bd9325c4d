//! Claiming ready tasks: lost leases first, then `FOR UPDATE SKIP LOCKED`.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use cloacina_domain::TaskNetwork;
use cloacina_domain::execution::{ClaimedTask, EventDraft, ExecutionId, Plan, TaskKey};
use cloacina_domain::ports::StoreError;
use serde_json::Value;
use sqlx::types::Json;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use crate::db::translate;

use super::*;

/// A claimed task's execution as accepted: its plan, initial context, package version, and
/// the outputs of its finished tasks by position.
pub(super) struct Frozen {
    pub(super) plan: Plan,
    pub(super) initial: Object,
    pub(super) package: Uuid,
    pub(super) outputs: Vec<Option<Object>>,
}

pub(super) async fn claim(
    tx: &mut PgConnection,
    worker: &str,
    now: DateTime<Utc>,
    lease: Duration,
    limit: usize,
    network: Option<TaskNetwork>,
) -> Result<(Vec<ClaimedTask>, bool), StoreError> {
    let lost: Vec<(Uuid, String)> = sqlx::query_as(
        "UPDATE execution_tasks SET status = 'ready', ready_at = $1, attempts = greatest(attempts - 1, 0),
            lease_owner = NULL, lease_until = NULL
         WHERE status = 'running' AND lease_until < $1
         RETURNING execution_id, task_id",
    )
    .bind(now)
    .fetch_all(&mut *tx)
    .await
    .map_err(translate)?;
    let expired: Vec<(Uuid, EventDraft)> = lost.iter().map(|(id, t)| (*id, EventDraft::lease_expired(t))).collect();
    insert_events(tx, now, &expired).await?;
    let rows: Vec<(Uuid, i32, String, i32)> = sqlx::query_as(
        "WITH picked AS (
             SELECT execution_id, position FROM execution_tasks
             WHERE status = 'ready' AND ready_at <= $3 ORDER BY ready_at LIMIT $4 FOR UPDATE SKIP LOCKED)
         UPDATE execution_tasks t SET status = 'running', attempts = t.attempts + 1, lease_owner = $1,
             lease_until = $2, started_at = $3, ready_at = NULL
         FROM picked WHERE t.execution_id = picked.execution_id AND t.position = picked.position
         RETURNING t.execution_id, t.position, t.task_id, t.attempts",
    )
    .bind(worker)
    .bind(later(now, lease))
    .bind(now)
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(&mut *tx)
    .await
    .map_err(translate)?;
    if rows.is_empty() {
        return Ok((Vec::new(), !lost.is_empty()));
    }
    let ids: Vec<Uuid> = rows.iter().map(|r| r.0).collect();
    // Pending executions start running. SKIP LOCKED keeps the lock order (a claim never
    // waits for an execution row); one skipped is set by its next recorded outcome.
    sqlx::query(
        "UPDATE executions SET status = 'running', started_at = coalesce(started_at, $2)
         WHERE id IN (SELECT id FROM executions WHERE id = ANY($1) AND status = 'pending' FOR UPDATE SKIP LOCKED)",
    )
    .bind(&ids)
    .bind(now)
    .execute(&mut *tx)
    .await
    .map_err(translate)?;
    let execs = sqlx::query("SELECT id, plan, context, package_id FROM executions WHERE id = ANY($1)")
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await
        .map_err(translate)?;
    let mut plans: HashMap<Uuid, Frozen> = HashMap::new();
    for row in &execs {
        let plan: Json<Value> = row.try_get(1).map_err(translate)?;
        let plan = Plan::from_json(&plan.0).map_err(unexpected)?;
        let context: Json<Object> = row.try_get(2).map_err(translate)?;
        let outputs = vec![None; plan.tasks.len()];
        plans.insert(
            row.try_get(0).map_err(translate)?,
            Frozen { plan, initial: context.0, package: row.try_get(3).map_err(translate)?, outputs },
        );
    }
    let outputs = sqlx::query(
        "SELECT execution_id, position, output FROM execution_tasks WHERE execution_id = ANY($1) AND output IS NOT NULL",
    )
    .bind(&ids)
    .fetch_all(&mut *tx)
    .await
    .map_err(translate)?;
    for row in &outputs {
        let id: Uuid = row.try_get(0).map_err(translate)?;
        let p: i32 = row.try_get(1).map_err(translate)?;
        let out: Json<Object> = row.try_get(2).map_err(translate)?;
        if let Some(slot) = plans.get_mut(&id).and_then(|e| e.outputs.get_mut(usize::try_from(p).unwrap_or(usize::MAX)))
        {
            *slot = Some(out.0);
        }
    }
    let mut claimed = Vec::with_capacity(rows.len());
    let mut kinds = Vec::with_capacity(rows.len());
    for (id, position, task_id, attempt) in rows {
        let position = usize::try_from(position).map_err(unexpected)?;
        let Frozen { plan, initial, package, outputs } =
            plans.get(&id).ok_or_else(|| unexpected("claimed a task of no execution"))?;
        let step =
            plan.tasks.get(position).ok_or_else(|| unexpected(format!("execution {id} has no task at {position}")))?;
        let attempt = u32::try_from(attempt).map_err(unexpected)?;
        kinds.push((id, task_id.clone(), attempt));
        claimed.push(ClaimedTask {
            key: TaskKey { execution_id: ExecutionId::from_uuid(id), position },
            attempt,
            task_id,
            package_id: *package,
            command: step.command.clone(),
            env: step.env.clone(),
            secrets: step.secrets.clone(),
            timeout: step.timeout,
            limits: step.limits,
            context: plan.context_for(position, initial, outputs),
            network,
        });
    }
    let started: Vec<(Uuid, EventDraft)> =
        kinds.iter().map(|(id, task, attempt)| (*id, EventDraft::started(task, *attempt, worker))).collect();
    insert_events(tx, now, &started).await?;
    Ok((claimed, !lost.is_empty()))
}
