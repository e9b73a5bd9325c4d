//! The statements of a trigger pass (`pass`), each naming the tenant's schema so that
//! its plan survives on the tenant's lane: the read of the due triggers with all a decision
//! needs (prepared by name by the pass), and the write of all the decision changed (prepared
//! by the driver, with its parameters bound by [`WriteArgs`]).

use chrono::{DateTime, Utc};
use cloacina_domain::execution::{EventDraft, NewExecution, Plan, TaskStatus};
use cloacina_domain::trigger::TriggerRecord;
use serde_json::{Map, Value};
use sqlx::postgres::PgArguments;
use sqlx::query::Query;
use sqlx::types::Json;
use sqlx::{AssertSqlSafe, Postgres};
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

/// The write of a pass ([`WriteArgs`] binds its parameters, column by column, in binary):
/// stores the fired executions with their tasks and `created` events, leaving out any whose
/// key is stored already, and writes the triggers back, one statement whatever their number.
/// Each parameter carries its type, so the statement also prepares by name without a type
/// list.
///
/// Its data travels as binary arrays over the extended protocol, not as a JSON literal of a
/// simple-protocol `EXECUTE`: lexing that literal and parsing it into `jsonb` (and each of its
/// times from text) were an eighth of PostgreSQL's CPU in a burst of fires (docs/benchmarks.md,
/// B11). A pass's executions of one workflow share a plan, sent once (`$5`) and named by
/// position (`$6`, from 1).
///
/// A fire whose key is stored already is left out by `ON CONFLICT`, not by a `NOT EXISTS`
/// test: the generic plan of that test joined against a scan of every execution of the
/// tenant.
///
/// It returns the ids stored and sets `cloacina.next_due` (for the settle that follows,
/// `pass`) to the tenant's least due time after it, or to `''` if none is due ever: the rows
/// it did not write count as they are, those it wrote as written. Its last column sets the
/// role back to the login role: its rights were checked as it started, the tenant's, and
/// every part of it has run by then (the counts of the task and event rows come before), so
/// the next statement runs as the login role. `schema` is a quoted identifier.
pub(super) fn write(schema: &str) -> String {
    format!(
        "WITH stored AS (
             INSERT INTO {schema}.executions (id, workflow, package_id, package_version, status, plan, context,
                                             origin, idempotency_key, created_at, trigger, scheduled_at)
             SELECT x.id, x.workflow, x.package_id, x.version, 'pending', ($5::jsonb[])[x.plan], x.context, x.origin,
                    x.key, x.created_at, x.trigger, x.scheduled_at
             FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::text[], $6::int[], $7::jsonb[], $8::text[],
                         $9::text[], $10::timestamptz[], $11::text[], $12::timestamptz[])
                  AS x(id, workflow, package_id, version, plan, context, origin, key, created_at, trigger, scheduled_at)
             ON CONFLICT (idempotency_key) DO NOTHING
             RETURNING id),
         tasks AS (
             INSERT INTO {schema}.execution_tasks (execution_id, position, task_id, status, ready_at)
             SELECT x.e, x.p, x.t, x.s, x.r
             FROM unnest($13::uuid[], $14::int[], $15::text[], $16::text[], $17::timestamptz[]) AS x(e, p, t, s, r)
             WHERE x.e IN (SELECT id FROM stored)
             RETURNING 1),
         events AS (
             INSERT INTO {schema}.execution_events (execution_id, at, kind, task, detail)
             SELECT x.e, $18::timestamptz, x.k, x.t, x.d
             FROM unnest($19::uuid[], $20::text[], $21::text[], $22::jsonb[]) WITH ORDINALITY AS x(e, k, t, d, n)
             WHERE x.e IN (SELECT id FROM stored) ORDER BY x.n
             RETURNING 1),
         written AS (
             UPDATE {schema}.triggers t SET next_fire_at = x.next_fire_at, last_fire_at = x.last_fire_at,
                 buffered_at = x.buffered_at, due_at = x.due_at, fired = x.fired, caught_up = x.caught_up,
                 skipped_overlap = x.skipped_overlap, skipped_paused = x.skipped_paused,
                 skipped_catchup = x.skipped_catchup, missed = x.missed, updated_at = x.updated_at
             FROM unnest($23::text[], $24::timestamptz[], $25::timestamptz[], $26::timestamptz[], $27::timestamptz[],
                         $28::bigint[], $29::bigint[], $30::bigint[], $31::bigint[], $32::bigint[], $33::bigint[],
                         $34::timestamptz[])
                  AS x(name, next_fire_at, last_fire_at, buffered_at, due_at, fired, caught_up, skipped_overlap,
                       skipped_paused, skipped_catchup, missed, updated_at)
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

/// [`write`]'s parameters: the executions, their task rows and `created` events, and the
/// trigger rows, each a column of arrays.
pub(super) struct WriteArgs<'a> {
    executions: Executions<'a>,
    tasks: Tasks<'a>,
    events: Events,
    triggers: Triggers<'a>,
}

#[derive(Default)]
struct Executions<'a> {
    id: Vec<Uuid>,
    workflow: Vec<&'a str>,
    package_id: Vec<Uuid>,
    version: Vec<&'a str>,
    /// Each distinct plan once, as JSON.
    plans: Vec<Json<Value>>,
    /// Each execution's plan: its position in `plans`, from 1.
    plan: Vec<i32>,
    context: Vec<Json<&'a Map<String, Value>>>,
    origin: Vec<&'a str>,
    key: Vec<Option<&'a str>>,
    created_at: Vec<DateTime<Utc>>,
    trigger: Vec<Option<&'a str>>,
    scheduled_at: Vec<Option<DateTime<Utc>>>,
}

/// The task rows of the new executions, as their plans start.
#[derive(Default)]
struct Tasks<'a> {
    execution: Vec<Uuid>,
    position: Vec<i32>,
    task: Vec<&'a str>,
    status: Vec<&'static str>,
    ready_at: Vec<Option<DateTime<Utc>>>,
}

/// The `created` events, all at one time.
struct Events {
    at: DateTime<Utc>,
    execution: Vec<Uuid>,
    kind: Vec<&'static str>,
    task: Vec<Option<String>>,
    detail: Vec<Json<Value>>,
}

#[derive(Default)]
struct Triggers<'a> {
    name: Vec<&'a str>,
    next_fire_at: Vec<Option<DateTime<Utc>>>,
    last_fire_at: Vec<Option<DateTime<Utc>>>,
    buffered_at: Vec<Option<DateTime<Utc>>>,
    due_at: Vec<Option<DateTime<Utc>>>,
    fired: Vec<i64>,
    caught_up: Vec<i64>,
    skipped_overlap: Vec<i64>,
    skipped_paused: Vec<i64>,
    skipped_catchup: Vec<i64>,
    missed: Vec<i64>,
    updated_at: Vec<DateTime<Utc>>,
}

impl<'a> WriteArgs<'a> {
    pub(super) fn new(news: &'a [NewExecution], writes: &'a [TriggerRecord], now: DateTime<Utc>) -> Self {
        // A workflow's fires in one pass share its version's plan (`execution_for`): each
        // distinct plan is made into JSON once.
        let mut distinct: Vec<&Plan> = Vec::new();
        let mut e = Executions::default();
        for n in news {
            let at = distinct.iter().position(|p| **p == n.plan).unwrap_or_else(|| {
                distinct.push(&n.plan);
                e.plans.push(Json(n.plan.to_json()));
                distinct.len() - 1
            });
            e.id.push(n.id.as_uuid());
            e.workflow.push(&n.workflow);
            e.package_id.push(n.package_id);
            e.version.push(&n.package_version);
            e.plan.push(i32::try_from(at + 1).unwrap_or(i32::MAX));
            e.context.push(Json(&n.context));
            e.origin.push(&n.origin);
            e.key.push(n.idempotency_key.as_deref());
            e.created_at.push(n.created_at);
            e.trigger.push(n.fired.as_ref().map(|f| f.trigger.as_str()));
            e.scheduled_at.push(n.fired.as_ref().map(|f| f.scheduled_at));
        }
        let mut events = Events {
            at: news.first().map_or(now, |n| n.created_at),
            execution: Vec::with_capacity(news.len()),
            kind: Vec::with_capacity(news.len()),
            task: Vec::with_capacity(news.len()),
            detail: Vec::with_capacity(news.len()),
        };
        for n in news {
            let draft = EventDraft::created(n);
            events.execution.push(n.id.as_uuid());
            events.kind.push(draft.kind.as_str());
            events.task.push(draft.task);
            events.detail.push(Json(draft.detail));
        }
        let mut t = Triggers::default();
        for w in writes {
            t.name.push(w.name());
            t.next_fire_at.push(w.next_fire_at);
            t.last_fire_at.push(w.last_fire_at);
            t.buffered_at.push(w.buffered_at);
            t.due_at.push(w.due_at());
            t.fired.push(n(w.counts.fired));
            t.caught_up.push(n(w.counts.caught_up));
            t.skipped_overlap.push(n(w.counts.skipped_overlap));
            t.skipped_paused.push(n(w.counts.skipped_paused));
            t.skipped_catchup.push(n(w.counts.skipped_catchup));
            t.missed.push(n(w.counts.missed));
            t.updated_at.push(w.updated_at);
        }
        Self { executions: e, tasks: tasks(news), events, triggers: t }
    }

    /// [`write`] (its text, `sql`) with these parameters bound in its order.
    pub(super) fn bind<'q>(&'q self, sql: String) -> Query<'q, Postgres, PgArguments> {
        let (e, k, v, t) = (&self.executions, &self.tasks, &self.events, &self.triggers);
        sqlx::query(AssertSqlSafe(sql))
            .bind(&e.id)
            .bind(&e.workflow)
            .bind(&e.package_id)
            .bind(&e.version)
            .bind(&e.plans)
            .bind(&e.plan)
            .bind(&e.context)
            .bind(&e.origin)
            .bind(&e.key)
            .bind(&e.created_at)
            .bind(&e.trigger)
            .bind(&e.scheduled_at)
            .bind(&k.execution)
            .bind(&k.position)
            .bind(&k.task)
            .bind(&k.status)
            .bind(&k.ready_at)
            .bind(v.at)
            .bind(&v.execution)
            .bind(&v.kind)
            .bind(&v.task)
            .bind(&v.detail)
            .bind(&t.name)
            .bind(&t.next_fire_at)
            .bind(&t.last_fire_at)
            .bind(&t.buffered_at)
            .bind(&t.due_at)
            .bind(&t.fired)
            .bind(&t.caught_up)
            .bind(&t.skipped_overlap)
            .bind(&t.skipped_paused)
            .bind(&t.skipped_catchup)
            .bind(&t.missed)
            .bind(&t.updated_at)
    }
}

fn tasks(news: &[NewExecution]) -> Tasks<'_> {
    let mut rows = Tasks::default();
    for n in news {
        let start = n.plan.start();
        for (position, (task, status)) in n.plan.tasks.iter().zip(&start.status).enumerate() {
            rows.execution.push(n.id.as_uuid());
            rows.position.push(i32::try_from(position).unwrap_or(i32::MAX));
            rows.task.push(task.id.as_str());
            rows.status.push(status.as_str());
            rows.ready_at.push((*status == TaskStatus::Ready).then_some(n.created_at));
        }
    }
    rows
}
