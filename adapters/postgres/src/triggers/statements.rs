//! The statements of a trigger pass (`pass`), each naming the tenant's schema so that
//! its plan survives on the tenant's lane, where the pass prepares them by name: the read of
//! the due triggers with all a decision needs, and the write of all the decision changed
//! (with its one parameter, [`document`]).

use chrono::{DateTime, Utc};
use cloacina_domain::execution::{EventDraft, NewExecution, Plan, TaskStatus};
use cloacina_domain::trigger::TriggerRecord;
use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::{COLUMNS, n};

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

/// The write of a pass, to prepare on the lane with one `jsonb` parameter ([`document`]):
/// stores the fired executions with their tasks and `created` events, leaving out any whose
/// key is stored already, and writes the triggers back, one statement whatever their number.
///
/// A fire whose key is stored already is left out by `ON CONFLICT`, not by a `NOT EXISTS`
/// test: the generic plan of that test joined against a scan of every execution of the
/// tenant.
///
/// It returns the ids stored and sets `cloacina.next_due` (for the settle that follows in
/// the same message, `pass`) to the tenant's least due time after it, or to `''` if none is
/// due ever: the rows it did not write count as they are, those it wrote as written. Its last
/// column sets the role back to the login role: its rights were checked as it started, the
/// tenant's, and every part of it has run by then (the counts of the task and event rows
/// come before), so the next statement runs as the login role. `schema` is a quoted
/// identifier.
pub(super) fn write(schema: &str) -> String {
    format!(
        "WITH stored AS (
             INSERT INTO {schema}.executions (id, workflow, package_id, package_version, status, plan, context,
                                             origin, idempotency_key, created_at, trigger, scheduled_at)
             SELECT x.id, x.workflow, x.package_id, x.version, 'pending', x.plan, x.context, x.origin, x.key,
                    x.created_at, x.trigger, x.scheduled_at
             FROM jsonb_to_recordset($1->'executions')
                  AS x(id uuid, workflow text, package_id uuid, version text, plan jsonb, context jsonb, origin text,
                       key text, created_at timestamptz, trigger text, scheduled_at timestamptz)
             ON CONFLICT (idempotency_key) DO NOTHING
             RETURNING id),
         tasks AS (
             INSERT INTO {schema}.execution_tasks (execution_id, position, task_id, status, ready_at)
             SELECT x.e, x.p, x.t, x.s, x.r
             FROM jsonb_to_recordset($1->'tasks') AS x(e uuid, p int, t text, s text, r timestamptz)
             WHERE x.e IN (SELECT id FROM stored)
             RETURNING 1),
         events AS (
             INSERT INTO {schema}.execution_events (execution_id, at, kind, task, detail)
             SELECT x.e, x.at, x.k, x.t, x.d
             FROM ROWS FROM (jsonb_to_recordset($1->'events') AS (e uuid, at timestamptz, k text, t text, d jsonb))
                  WITH ORDINALITY AS x(e, at, k, t, d, n)
             WHERE x.e IN (SELECT id FROM stored) ORDER BY x.n
             RETURNING 1),
         written AS (
             UPDATE {schema}.triggers t SET next_fire_at = x.next_fire_at, last_fire_at = x.last_fire_at,
                 buffered_at = x.buffered_at, due_at = x.due_at, fired = x.fired, caught_up = x.caught_up,
                 skipped_overlap = x.skipped_overlap, skipped_paused = x.skipped_paused,
                 skipped_catchup = x.skipped_catchup, missed = x.missed, updated_at = x.updated_at
             FROM jsonb_to_recordset($1->'triggers')
                  AS x(name text, next_fire_at timestamptz, last_fire_at timestamptz, buffered_at timestamptz,
                       due_at timestamptz, fired bigint, caught_up bigint, skipped_overlap bigint, skipped_paused bigint,
                       skipped_catchup bigint, missed bigint, updated_at timestamptz)
             WHERE t.name = x.name
             RETURNING t.name, t.due_at)
         SELECT ARRAY(SELECT id FROM stored),
                set_config('cloacina.next_due', coalesce(least(
                    (SELECT min(due_at) FROM {schema}.triggers WHERE name NOT IN (SELECT name FROM written)),
                    (SELECT min(due_at) FROM written))::text, ''), true),
                (SELECT count(*) FROM tasks) + (SELECT count(*) FROM events),
                set_config('role', 'none', true)"
    )
}

/// What a pass with nothing due writes instead of [`write`]: the tenant's least due time
/// into `cloacina.next_due`, and the role back to the login role.
pub(super) fn nothing_due(schema: &str) -> String {
    format!(
        "SELECT set_config('cloacina.next_due', coalesce(min(due_at)::text, ''), true), set_config('role', 'none', true)
         FROM {schema}.triggers"
    )
}

/// [`write`]'s parameter: the executions, their task rows and `created` events, and the
/// trigger rows, as one JSON document.
pub(super) fn document(news: &[NewExecution], writes: &[TriggerRecord], now: DateTime<Utc>) -> String {
    // A workflow's fires in one pass share its version's plan (`execution_for`): each
    // distinct plan is made into JSON once, and each execution names its own by position.
    let mut plans: Vec<(&Plan, Value)> = Vec::new();
    let plan_of: Vec<usize> = news
        .iter()
        .map(|n| {
            plans.iter().position(|(plan, _)| **plan == n.plan).unwrap_or_else(|| {
                plans.push((&n.plan, n.plan.to_json()));
                plans.len() - 1
            })
        })
        .collect();
    let executions = news
        .iter()
        .zip(&plan_of)
        .map(|(n, &plan)| Execution {
            id: n.id.as_uuid(),
            workflow: &n.workflow,
            package_id: n.package_id,
            version: &n.package_version,
            plan: &plans[plan].1,
            context: &n.context,
            origin: &n.origin,
            key: n.idempotency_key.as_deref(),
            created_at: n.created_at,
            trigger: n.fired.as_ref().map(|f| f.trigger.as_str()),
            scheduled_at: n.fired.as_ref().map(|f| f.scheduled_at),
        })
        .collect();
    let at = news.first().map_or(now, |n| n.created_at);
    let events = news
        .iter()
        .map(|n| {
            let e = EventDraft::created(n);
            Event { e: n.id.as_uuid(), at, k: e.kind.as_str(), t: e.task, d: e.detail }
        })
        .collect();
    let triggers = writes
        .iter()
        .map(|t| Trigger {
            name: t.name(),
            next_fire_at: t.next_fire_at,
            last_fire_at: t.last_fire_at,
            buffered_at: t.buffered_at,
            due_at: t.due_at(),
            fired: n(t.counts.fired),
            caught_up: n(t.counts.caught_up),
            skipped_overlap: n(t.counts.skipped_overlap),
            skipped_paused: n(t.counts.skipped_paused),
            skipped_catchup: n(t.counts.skipped_catchup),
            missed: n(t.counts.missed),
            updated_at: t.updated_at,
        })
        .collect();
    let doc = Document { executions, tasks: tasks(news), events, triggers };
    serde_json::to_string(&doc).expect("a document of strings, numbers, times and JSON values serialises")
}

#[derive(Serialize)]
struct Document<'a> {
    executions: Vec<Execution<'a>>,
    tasks: Vec<Task<'a>>,
    events: Vec<Event>,
    triggers: Vec<Trigger<'a>>,
}

#[derive(Serialize)]
struct Execution<'a> {
    id: Uuid,
    workflow: &'a str,
    package_id: Uuid,
    version: &'a str,
    plan: &'a Value,
    context: &'a Map<String, Value>,
    origin: &'a str,
    key: Option<&'a str>,
    created_at: DateTime<Utc>,
    trigger: Option<&'a str>,
    scheduled_at: Option<DateTime<Utc>>,
}

/// A task row of a new execution, as its plan starts.
#[derive(Serialize)]
struct Task<'a> {
    e: Uuid,
    p: i32,
    t: &'a str,
    s: &'static str,
    r: Option<DateTime<Utc>>,
}

#[derive(Serialize)]
struct Event {
    e: Uuid,
    at: DateTime<Utc>,
    k: &'static str,
    t: Option<String>,
    d: Value,
}

#[derive(Serialize)]
struct Trigger<'a> {
    name: &'a str,
    next_fire_at: Option<DateTime<Utc>>,
    last_fire_at: Option<DateTime<Utc>>,
    buffered_at: Option<DateTime<Utc>>,
    due_at: Option<DateTime<Utc>>,
    fired: i64,
    caught_up: i64,
    skipped_overlap: i64,
    skipped_paused: i64,
    skipped_catchup: i64,
    missed: i64,
    updated_at: DateTime<Utc>,
}

fn tasks(news: &[NewExecution]) -> Vec<Task<'_>> {
    let mut rows = Vec::new();
    for n in news {
        let start = n.plan.start();
        for (position, (task, status)) in n.plan.tasks.iter().zip(&start.status).enumerate() {
            rows.push(Task {
                e: n.id.as_uuid(),
                p: i32::try_from(position).unwrap_or(i32::MAX),
                t: task.id.as_str(),
                s: status.as_str(),
                r: (*status == TaskStatus::Ready).then_some(n.created_at),
            });
        }
    }
    rows
}
