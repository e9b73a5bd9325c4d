//! What a change of an execution loads under its lock, stages and writes back, and the cancel and retry transitions.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use cloacina_domain::execution::{
    Command, EventDraft, ExecutionId, ExecutionRecord, Plan, Progress, Settled, TaskStatus, Transition,
};
use cloacina_domain::ports::StoreError;
use serde_json::Value;
use sqlx::PgConnection;
use sqlx::types::Json;
use uuid::Uuid;

use crate::db::translate;

use super::*;

pub(super) struct Loaded {
    pub(super) record: ExecutionRecord,
    pub(super) plan: Plan,
    pub(super) progress: Progress,
}

/// Locks the execution's row and reads what the rules need.
pub(super) async fn load(tx: &mut PgConnection, id: ExecutionId) -> Result<Option<Loaded>, StoreError> {
    let Some(record) = find_execution(tx, id, true).await? else { return Ok(None) };
    let plan: Json<Value> = sqlx::query_scalar("SELECT plan FROM executions WHERE id = $1")
        .bind(id.as_uuid())
        .fetch_one(&mut *tx)
        .await
        .map_err(translate)?;
    let plan = Plan::from_json(&plan.0).map_err(unexpected)?;
    let rows: Vec<(String, i32)> =
        sqlx::query_as("SELECT status, attempts FROM execution_tasks WHERE execution_id = $1 ORDER BY position")
            .bind(id.as_uuid())
            .fetch_all(&mut *tx)
            .await
            .map_err(translate)?;
    if rows.len() != plan.tasks.len() {
        return Err(unexpected(format!(
            "execution {id} has {} task rows for a plan of {}",
            rows.len(),
            plan.tasks.len()
        )));
    }
    let progress = Progress {
        status: rows.iter().map(|r| task_status(&r.0)).collect::<Result<_, _>>().map_err(translate)?,
        attempts: rows.iter().map(|r| u32::try_from(r.1).unwrap_or(0)).collect(),
    };
    Ok(Some(Loaded { record, plan, progress }))
}

/// Stores events, each of its execution, in the order given, in one statement.
pub(super) async fn insert_events(
    tx: &mut PgConnection,
    at: DateTime<Utc>,
    events: &[(Uuid, EventDraft)],
) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = events.iter().map(|e| e.0).collect();
    let kinds: Vec<&str> = events.iter().map(|e| e.1.kind.as_str()).collect();
    let tasks: Vec<Option<&str>> = events.iter().map(|e| e.1.task.as_deref()).collect();
    let details: Vec<Json<&Value>> = events.iter().map(|e| Json(&e.1.detail)).collect();
    sqlx::query(
        "INSERT INTO execution_events (execution_id, at, kind, task, detail)
         SELECT e, $1, k, t, d FROM unnest($2::uuid[], $3::text[], $4::text[], $5::jsonb[])
              WITH ORDINALITY AS x(e, k, t, d, n) ORDER BY n",
    )
    .bind(at)
    .bind(&ids)
    .bind(&kinds)
    .bind(&tasks)
    .bind(&details)
    .execute(&mut *tx)
    .await
    .map_err(translate)?;
    Ok(())
}

/// Task rows changed by one or more steps, as they will be written, and the first time a
/// task they readied may be claimed.
#[derive(Default)]
pub(super) struct Staged {
    pub(super) writes: HashMap<(Uuid, usize), RowWrite>,
    pub(super) earliest: Option<DateTime<Utc>>,
}

impl Staged {
    /// Adds what one step of execution `id` changed. `attempted` is the task whose outcome
    /// this is.
    pub(super) fn stage(
        &mut self,
        id: Uuid,
        settled: &Settled,
        progress: &Progress,
        attempted: Option<usize>,
        now: DateTime<Utc>,
    ) {
        for c in &settled.changes {
            let ready_at = (c.status == TaskStatus::Ready).then(|| match (attempted, settled.retry_after) {
                (Some(a), Some(wait)) if a == c.position => later(now, wait),
                _ => now,
            });
            if let Some(at) = ready_at {
                self.earliest = Some(self.earliest.map_or(at, |x| x.min(at)));
            }
            let result = self.writes.remove(&(id, c.position)).and_then(|w| w.result);
            self.writes.insert(
                (id, c.position),
                RowWrite {
                    status: c.status,
                    ready_at,
                    attempts: i32::try_from(progress.attempts[c.position]).unwrap_or(i32::MAX),
                    finished_at: c.status.is_terminal().then_some(now),
                    reset: settled.reset,
                    result,
                },
            );
        }
    }
}

pub(crate) async fn transition(
    tx: &mut PgConnection,
    id: ExecutionId,
    at: DateTime<Utc>,
    command: Command,
) -> Result<(Transition, Option<DateTime<Utc>>), StoreError> {
    let Some(mut loaded) = load(tx, id).await? else { return Ok((Transition::NotFound, None)) };
    let Some(settled) = loaded.plan.command(command, loaded.record.status, &mut loaded.progress) else {
        return Ok((Transition::Refused(loaded.record), None));
    };
    let mut staged = Staged::default();
    staged.stage(id.as_uuid(), &settled, &loaded.progress, None, at);
    let due = staged.earliest;
    let exec = ExecWrite {
        id: id.as_uuid(),
        status: settled.status,
        finished_at: settled.status.is_terminal().then_some(at),
        error: None,
        clear_error: settled.reset,
    };
    let events: Vec<(Uuid, EventDraft)> = settled.events.into_iter().map(|e| (id.as_uuid(), e)).collect();
    write_batch(tx, Batch { staged, logs: Vec::new(), events, execs: vec![exec] }, at).await?;
    let record = find_execution(tx, id, false).await?.ok_or_else(|| unexpected("lost the execution"))?;
    Ok((Transition::Done(record), due))
}
