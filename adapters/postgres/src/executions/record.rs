//! Recording attempts' outcomes, a batch of them in one transaction.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use cloacina_domain::execution::{
    AttemptReport, EventDraft, ExecutionStatus, Hold, Plan, Progress, Recorded, TaskStatus,
};
use cloacina_domain::ports::StoreError;
use serde_json::Value;
use sqlx::types::Json;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use crate::db::translate;

use super::*;

/// One task row as a batch of outcomes leaves it.
pub(super) struct RowWrite {
    pub(super) status: TaskStatus,
    pub(super) ready_at: Option<DateTime<Utc>>,
    pub(super) attempts: i32,
    pub(super) finished_at: Option<DateTime<Utc>>,
    /// The task starts over: its start time, output and error are cleared.
    pub(super) reset: bool,
    /// The attempted task's output and error, when this row is one.
    pub(super) result: Option<(Option<Object>, Option<String>)>,
}

/// An execution as a batch changes it.
pub(super) struct Batched {
    pub(super) status_before: ExecutionStatus,
    pub(super) plan: Plan,
    pub(super) progress: Progress,
    pub(super) owners: Vec<Option<String>>,
    pub(super) error: Option<String>,
}

/// Records a batch of outcomes with set-based statements: the executions locked in id order,
/// the rules applied in memory report by report, then one statement per table. Returns one
/// [`Recorded`] per report and the earliest time a readied task may be claimed.
pub(super) async fn record(
    tx: &mut PgConnection,
    worker: &str,
    reports: &[AttemptReport],
    now: DateTime<Utc>,
) -> Result<(Vec<Recorded>, Option<DateTime<Utc>>), StoreError> {
    let mut ids: Vec<Uuid> = reports.iter().map(|r| r.key.execution_id.as_uuid()).collect();
    ids.sort();
    ids.dedup();
    let locked = sqlx::query("SELECT id, status, plan FROM executions WHERE id = ANY($1) ORDER BY id FOR UPDATE")
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await
        .map_err(translate)?;
    let mut execs: HashMap<Uuid, Batched> = HashMap::new();
    for row in &locked {
        let status: String = row.try_get(1).map_err(translate)?;
        let plan: Json<Value> = row.try_get(2).map_err(translate)?;
        let plan = Plan::from_json(&plan.0).map_err(unexpected)?;
        let n = plan.tasks.len();
        execs.insert(
            row.try_get(0).map_err(translate)?,
            Batched {
                status_before: ExecutionStatus::parse(&status)
                    .ok_or_else(|| unexpected(format!("status '{status}'")))?,
                plan,
                progress: Progress { status: vec![TaskStatus::Waiting; n], attempts: vec![0; n] },
                owners: vec![None; n],
                error: None,
            },
        );
    }
    let rows: Vec<(Uuid, i32, String, i32, Option<String>)> = sqlx::query_as(
        "SELECT execution_id, position, status, attempts, lease_owner FROM execution_tasks WHERE execution_id = ANY($1)",
    )
    .bind(&ids)
    .fetch_all(&mut *tx)
    .await
    .map_err(translate)?;
    for (id, p, status, attempts, owner) in rows {
        let Some(e) = execs.get_mut(&id) else { continue };
        let Some(i) = usize::try_from(p).ok().filter(|&i| i < e.progress.status.len()) else {
            return Err(unexpected(format!("execution {id} has a task row at {p} outside its plan")));
        };
        e.progress.status[i] = task_status(&status).map_err(translate)?;
        e.progress.attempts[i] = u32::try_from(attempts).unwrap_or(0);
        e.owners[i] = owner;
    }
    let mut recorded = Vec::with_capacity(reports.len());
    let mut staged = Staged::default();
    let mut logs = Vec::new();
    let mut events: Vec<(Uuid, EventDraft)> = Vec::new();
    for report in reports {
        let id = report.key.execution_id.as_uuid();
        let pos = report.key.position;
        let Some(e) = execs.get_mut(&id) else {
            recorded.push(Recorded::Stale);
            continue;
        };
        let holds = match (e.progress.status.get(pos), e.progress.attempts.get(pos), e.owners.get(pos)) {
            (Some(&status), Some(&attempts), Some(owner)) => {
                report.holds(worker, Hold { status, attempts, owner: owner.as_deref() })
            }
            _ => false,
        };
        if !holds {
            recorded.push(Recorded::Stale);
            continue;
        }
        let rec = e.plan.record(&mut e.progress, report);
        staged.stage(id, &rec.settled, &e.progress, Some(pos), now);
        if let Some(w) = staged.writes.get_mut(&(id, pos)) {
            w.result = Some((rec.output, rec.error));
        }
        e.error = e.error.take().or(rec.settled.error.clone());
        e.owners[pos] = None;
        logs.push((id, pos, rec.task, report));
        recorded.push(Recorded::Done { readied: rec.settled.readied() });
        events.extend(rec.settled.events.into_iter().map(|ev| (id, ev)));
    }
    let earliest = staged.earliest;
    let execs = execs
        .iter()
        .filter_map(|(id, e)| {
            let status = e.plan.status(&e.progress);
            (status != e.status_before || e.error.is_some()).then(|| ExecWrite {
                id: *id,
                status,
                finished_at: status.is_terminal().then_some(now),
                error: e.error.clone(),
                clear_error: false,
            })
        })
        .collect();
    write_batch(tx, Batch { staged, logs, events, execs }, now).await?;
    Ok((recorded, earliest))
}

/// An execution's row as a step leaves it.
pub(super) struct ExecWrite {
    pub(super) id: Uuid,
    pub(super) status: ExecutionStatus,
    pub(super) finished_at: Option<DateTime<Utc>>,
    /// The first failure's text (kept if one is there already).
    pub(super) error: Option<String>,
    /// The execution starts over (a retry): its error goes.
    pub(super) clear_error: bool,
}

/// Everything a transaction writes once the rules have run: task rows, attempt logs, events
/// (in order), execution rows.
pub(super) struct Batch<'a> {
    pub(super) staged: Staged,
    pub(super) logs: Vec<(Uuid, usize, String, &'a AttemptReport)>,
    pub(super) events: Vec<(Uuid, EventDraft)>,
    pub(super) execs: Vec<ExecWrite>,
}

/// Writes a [`Batch`] in one statement (data-modifying CTEs), stamped `now`.
pub(super) async fn write_batch(tx: &mut PgConnection, batch: Batch<'_>, now: DateTime<Utc>) -> Result<(), StoreError> {
    let Batch { staged, logs, events, execs } = batch;
    let mut w = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut w_output: Vec<Option<Json<Object>>> = Vec::new();
    let mut w_error: Vec<Option<String>> = Vec::new();
    for ((id, p), row) in staged.writes {
        w.0.push(id);
        w.1.push(pos(p));
        w.2.push(row.status.as_str());
        w.3.push(row.ready_at);
        w.4.push(row.attempts);
        w.5.push(row.finished_at);
        w.6.push(row.reset);
        w.7.push(row.result.is_some());
        let (o, e) = row.result.unwrap_or((None, None));
        w_output.push(o.map(Json));
        w_error.push(e);
    }
    let l_ids: Vec<Uuid> = logs.iter().map(|l| l.0).collect();
    let l_pos: Vec<i32> = logs.iter().map(|l| pos(l.1)).collect();
    let l_task: Vec<&str> = logs.iter().map(|l| l.2.as_str()).collect();
    let l_attempt: Vec<i32> = logs.iter().map(|l| i32::try_from(l.3.attempt).unwrap_or(i32::MAX)).collect();
    let l_out: Vec<&str> = logs.iter().map(|l| l.3.stdout.as_str()).collect();
    let l_err: Vec<&str> = logs.iter().map(|l| l.3.stderr.as_str()).collect();
    let l_cut: Vec<bool> = logs.iter().map(|l| l.3.truncated).collect();
    let e_ids: Vec<Uuid> = events.iter().map(|e| e.0).collect();
    let kinds: Vec<&str> = events.iter().map(|e| e.1.kind.as_str()).collect();
    let tasks: Vec<Option<&str>> = events.iter().map(|e| e.1.task.as_deref()).collect();
    let details: Vec<Json<&Value>> = events.iter().map(|e| Json(&e.1.detail)).collect();
    let x_ids: Vec<Uuid> = execs.iter().map(|x| x.id).collect();
    let x_status: Vec<&str> = execs.iter().map(|x| x.status.as_str()).collect();
    let x_finished: Vec<Option<DateTime<Utc>>> = execs.iter().map(|x| x.finished_at).collect();
    let x_error: Vec<Option<&str>> = execs.iter().map(|x| x.error.as_deref()).collect();
    let x_clear: Vec<bool> = execs.iter().map(|x| x.clear_error).collect();
    sqlx::query(
        "WITH task_rows AS (
             UPDATE execution_tasks t SET status = u.status, ready_at = u.ready_at, attempts = u.attempts,
                 lease_owner = NULL, lease_until = NULL, finished_at = u.finished_at,
                 started_at = CASE WHEN u.reset THEN NULL ELSE t.started_at END,
                 output = CASE WHEN u.reset THEN NULL WHEN u.set_result THEN u.output ELSE t.output END,
                 error = CASE WHEN u.reset THEN NULL WHEN u.set_result THEN u.error ELSE t.error END
             FROM unnest($2::uuid[], $3::int[], $4::text[], $5::timestamptz[], $6::int[], $7::timestamptz[],
                         $8::bool[], $9::bool[], $10::jsonb[], $11::text[])
                  AS u(e, p, status, ready_at, attempts, finished_at, reset, set_result, output, error)
             WHERE t.execution_id = u.e AND t.position = u.p),
         logs AS (
             INSERT INTO task_logs (execution_id, position, task_id, attempt, stdout, stderr, truncated, at)
             SELECT e, p, k, a, o, r, c, $1
             FROM unnest($12::uuid[], $13::int[], $14::text[], $15::int[], $16::text[], $17::text[], $18::bool[])
                  WITH ORDINALITY AS x(e, p, k, a, o, r, c, n) ORDER BY n),
         events AS (
             INSERT INTO execution_events (execution_id, at, kind, task, detail)
             SELECT e, $1, k, t, d FROM unnest($19::uuid[], $20::text[], $21::text[], $22::jsonb[])
                  WITH ORDINALITY AS x(e, k, t, d, n) ORDER BY n)
         UPDATE executions x SET status = u.status, finished_at = u.finished_at,
             started_at = CASE WHEN u.status = 'pending' THEN x.started_at ELSE coalesce(x.started_at, $1) END,
             error = CASE WHEN u.clear THEN NULL ELSE coalesce(x.error, u.error) END
         FROM unnest($23::uuid[], $24::text[], $25::timestamptz[], $26::text[], $27::bool[])
              AS u(id, status, finished_at, error, clear)
         WHERE x.id = u.id",
    )
    .bind(now)
    .bind(&w.0)
    .bind(&w.1)
    .bind(&w.2)
    .bind(&w.3)
    .bind(&w.4)
    .bind(&w.5)
    .bind(&w.6)
    .bind(&w.7)
    .bind(&w_output)
    .bind(&w_error)
    .bind(&l_ids)
    .bind(&l_pos)
    .bind(&l_task)
    .bind(&l_attempt)
    .bind(&l_out)
    .bind(&l_err)
    .bind(&l_cut)
    .bind(&e_ids)
    .bind(&kinds)
    .bind(&tasks)
    .bind(&details)
    .bind(&x_ids)
    .bind(&x_status)
    .bind(&x_finished)
    .bind(&x_error)
    .bind(&x_clear)
    .execute(&mut *tx)
    .await
    .map_err(translate)?;
    Ok(())
}
