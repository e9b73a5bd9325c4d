//! The statements of a trigger pass (`pass`), each naming the tenant's schema so that
//! its plan survives on the tenant's lane: the read of the due triggers with all a decision
//! needs, and the write of all the decision changed.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use cloacina_domain::execution::{EventDraft, NewExecution, TaskStatus};
use cloacina_domain::ports::StoreError;
use cloacina_domain::trigger::TriggerRecord;
use serde_json::Value;
use sqlx::types::Json;
use sqlx::{AssertSqlSafe, PgConnection};
use uuid::Uuid;

use super::{COLUMNS, n};
use crate::db::translate;

/// How many of the read's columns are the trigger's own ([`COLUMNS`]); the rest follow.
pub(super) const TRIGGER_COLUMNS: usize = 22;

/// The due triggers (at most `$2`, due by `$1`), locked `FOR UPDATE SKIP LOCKED`, each with its
/// workflow's `paused`, package and version, and that version's id (locked `FOR SHARE` against
/// a concurrent delete until the pass commits); and the ids of the trigger's unfinished
/// executions when its overlap policy is one of `$3` (those that weigh them; the rest get an
/// empty array). A version's manifest is read apart ([`manifest`]), only when the server has
/// not parsed it yet. `schema` is a quoted identifier.
pub(super) fn read(schema: &str) -> String {
    format!(
        "WITH due AS MATERIALIZED (
             SELECT {COLUMNS} FROM {schema}.triggers WHERE due_at <= $1 ORDER BY due_at LIMIT $2
             FOR UPDATE SKIP LOCKED)
         SELECT due.*, w.paused, w.package_name, w.version, p.id,
                CASE WHEN due.overlap = ANY($3) THEN
                    ARRAY(SELECT e.id FROM {schema}.executions e
                          WHERE e.trigger = due.name AND e.status IN ('pending', 'running'))
                ELSE '{{}}'::uuid[] END
         FROM due
         LEFT JOIN {schema}.workflows w ON w.name = due.workflow
         LEFT JOIN LATERAL (SELECT id FROM {schema}.packages
                            WHERE name = w.package_name AND version = w.version FOR SHARE) p ON true"
    )
}

/// A package version's stored manifest, by id (`$1`).
pub(super) fn manifest(schema: &str) -> String {
    format!("SELECT manifest FROM {schema}.packages WHERE id = $1")
}

/// What the write stored: the executions whose fire key was new (another pass may have
/// fired a scheduled time already), and the tenant's least due time after it.
pub(super) struct Written {
    pub stored: HashSet<Uuid>,
    pub next: Option<DateTime<Utc>>,
}

/// Stores the fired executions with their tasks and `created` events, leaving out any whose
/// key is stored already, and writes the triggers back: one statement whatever their number.
/// The tenant's least due time counts the rows it did not write as they are, and those it
/// wrote as written. Its last column sets the role back to the login role: its rights were
/// checked as it started, the tenant's, and every part of it has run by then (the counts of
/// the task and event rows come before), so the pass's next statement runs as the login role.
pub(super) async fn write(
    tx: &mut PgConnection,
    schema: &str,
    news: &[NewExecution],
    writes: &[TriggerRecord],
    now: DateTime<Utc>,
) -> Result<Written, StoreError> {
    let sql = format!(
        "WITH stored AS (
             INSERT INTO {schema}.executions (id, workflow, package_id, package_version, status, plan, context,
                                             origin, idempotency_key, created_at, trigger, scheduled_at)
             SELECT id, workflow, package_id, version, 'pending', plan, context, origin, key, created_at, trigger,
                    scheduled_at
             FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::text[], $5::jsonb[], $6::jsonb[], $7::text[],
                         $8::text[], $9::timestamptz[], $10::text[], $11::timestamptz[])
                  AS x(id, workflow, package_id, version, plan, context, origin, key, created_at, trigger,
                       scheduled_at)
             ON CONFLICT (idempotency_key) DO NOTHING
             RETURNING id),
         tasks AS (
             INSERT INTO {schema}.execution_tasks (execution_id, position, task_id, status, ready_at)
             SELECT e, p, t, s, r FROM unnest($12::uuid[], $13::int[], $14::text[], $15::text[], $16::timestamptz[])
                  AS x(e, p, t, s, r)
             WHERE e IN (SELECT id FROM stored)
             RETURNING 1),
         events AS (
             INSERT INTO {schema}.execution_events (execution_id, at, kind, task, detail)
             SELECT e, $17, k, t, d FROM unnest($18::uuid[], $19::text[], $20::text[], $21::jsonb[])
                  WITH ORDINALITY AS x(e, k, t, d, n)
             WHERE e IN (SELECT id FROM stored) ORDER BY n
             RETURNING 1),
         written AS (
             UPDATE {schema}.triggers t SET next_fire_at = x.next_fire_at, last_fire_at = x.last_fire_at,
                 buffered_at = x.buffered_at, due_at = x.due_at, fired = x.fired, caught_up = x.caught_up,
                 skipped_overlap = x.skipped_overlap, skipped_paused = x.skipped_paused,
                 skipped_catchup = x.skipped_catchup, missed = x.missed, updated_at = x.updated_at
             FROM unnest($22::text[], $23::timestamptz[], $24::timestamptz[], $25::timestamptz[],
                         $26::timestamptz[], $27::bigint[], $28::bigint[], $29::bigint[], $30::bigint[],
                         $31::bigint[], $32::bigint[], $33::timestamptz[])
                  AS x(name, next_fire_at, last_fire_at, buffered_at, due_at, fired, caught_up, skipped_overlap,
                       skipped_paused, skipped_catchup, missed, updated_at)
             WHERE t.name = x.name
             RETURNING t.due_at)
         SELECT ARRAY(SELECT id FROM stored),
                least((SELECT min(due_at) FROM {schema}.triggers WHERE name <> ALL($22)),
                      (SELECT min(due_at) FROM written)),
                (SELECT count(*) FROM tasks) + (SELECT count(*) FROM events),
                set_config('role', 'none', true)"
    );
    let col = |f: fn(&NewExecution) -> Option<&str>| news.iter().map(f).collect::<Vec<_>>();
    let ids: Vec<Uuid> = news.iter().map(|n| n.id.as_uuid()).collect();
    let packages: Vec<Uuid> = news.iter().map(|n| n.package_id).collect();
    let plans: Vec<Json<Value>> = news.iter().map(|n| Json(n.plan.to_json())).collect();
    let contexts: Vec<Json<&serde_json::Map<String, Value>>> = news.iter().map(|n| Json(&n.context)).collect();
    let created: Vec<DateTime<Utc>> = news.iter().map(|n| n.created_at).collect();
    let scheduled: Vec<Option<DateTime<Utc>>> = news.iter().map(|n| n.fired.as_ref().map(|f| f.scheduled_at)).collect();

    let tasks = Tasks::of(news);
    let events: Vec<(Uuid, EventDraft)> = news.iter().map(|n| (n.id.as_uuid(), EventDraft::created(n))).collect();
    let event_ids: Vec<Uuid> = events.iter().map(|e| e.0).collect();
    let kinds: Vec<&str> = events.iter().map(|e| e.1.kind.as_str()).collect();
    let event_tasks: Vec<Option<&str>> = events.iter().map(|e| e.1.task.as_deref()).collect();
    let details: Vec<Json<&Value>> = events.iter().map(|e| Json(&e.1.detail)).collect();

    let names: Vec<&str> = writes.iter().map(TriggerRecord::name).collect();
    let times = |f: fn(&TriggerRecord) -> Option<DateTime<Utc>>| writes.iter().map(f).collect::<Vec<_>>();
    let counts = |f: fn(&TriggerRecord) -> u64| writes.iter().map(|t| n(f(t))).collect::<Vec<i64>>();
    let updated: Vec<DateTime<Utc>> = writes.iter().map(|t| t.updated_at).collect();

    let (stored, next, _, _): (Vec<Uuid>, Option<DateTime<Utc>>, i64, String) = sqlx::query_as(AssertSqlSafe(sql))
        .bind(&ids)
        .bind(col(|n| Some(n.workflow.as_str())))
        .bind(&packages)
        .bind(col(|n| Some(n.package_version.as_str())))
        .bind(&plans)
        .bind(&contexts)
        .bind(col(|n| Some(n.origin.as_str())))
        .bind(col(|n| n.idempotency_key.as_deref()))
        .bind(&created)
        .bind(col(|n| n.fired.as_ref().map(|f| f.trigger.as_str())))
        .bind(&scheduled)
        .bind(&tasks.execution)
        .bind(&tasks.position)
        .bind(&tasks.id)
        .bind(&tasks.status)
        .bind(&tasks.ready_at)
        .bind(news.first().map_or(now, |n| n.created_at))
        .bind(&event_ids)
        .bind(&kinds)
        .bind(&event_tasks)
        .bind(&details)
        .bind(&names)
        .bind(times(|t| t.next_fire_at))
        .bind(times(|t| t.last_fire_at))
        .bind(times(|t| t.buffered_at))
        .bind(times(TriggerRecord::due_at))
        .bind(counts(|t| t.counts.fired))
        .bind(counts(|t| t.counts.caught_up))
        .bind(counts(|t| t.counts.skipped_overlap))
        .bind(counts(|t| t.counts.skipped_paused))
        .bind(counts(|t| t.counts.skipped_catchup))
        .bind(counts(|t| t.counts.missed))
        .bind(&updated)
        .fetch_one(&mut *tx)
        .await
        .map_err(translate)?;
    Ok(Written { stored: stored.into_iter().collect(), next })
}

/// The task rows of new executions, column by column, as each execution's plan starts.
struct Tasks<'a> {
    execution: Vec<Uuid>,
    position: Vec<i32>,
    id: Vec<&'a str>,
    status: Vec<&'static str>,
    ready_at: Vec<Option<DateTime<Utc>>>,
}

impl<'a> Tasks<'a> {
    fn of(news: &'a [NewExecution]) -> Self {
        let mut t = Tasks {
            execution: Vec::new(),
            position: Vec::new(),
            id: Vec::new(),
            status: Vec::new(),
            ready_at: Vec::new(),
        };
        for n in news {
            let start = n.plan.start();
            for (position, (task, status)) in n.plan.tasks.iter().zip(&start.status).enumerate() {
                t.execution.push(n.id.as_uuid());
                t.position.push(i32::try_from(position).unwrap_or(i32::MAX));
                t.id.push(task.id.as_str());
                t.status.push(status.as_str());
                t.ready_at.push((*status == TaskStatus::Ready).then_some(n.created_at));
            }
        }
        t
    }
}
