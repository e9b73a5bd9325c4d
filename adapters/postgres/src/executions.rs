//! Executions and the engine's queue on PostgreSQL, in each tenant's schema as its role.
//!
//! Claims take ready rows with `FOR UPDATE SKIP LOCKED` through the partial index of ready
//! rows, so replicas never wait on each other's claims and finished rows never slow one down.
//! Every transaction that changes an execution locks its `executions` row first and its task
//! rows after; claims and lease expiry touch task rows only. That order rules out deadlocks.
//!
//! `public.tenant_work` says which tenants have work due (docs/engine.md): whatever readies
//! tasks lowers the tenant's `due_at` and bumps its `seq` at the end of its transaction, as
//! the login role, and sends `NOTIFY cloacina_work`; a claim writes the exact next due time
//! only if `seq` is unchanged since it began, so a concurrent wake-up is never lost.

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
use cloacina_domain::{ApiKeyId, TaskNetwork, TenantName};
use serde_json::{Map, Value, json};
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::{AssertSqlSafe, PgConnection, Postgres, Row, Transaction};
use uuid::Uuid;

use crate::PgDb;
use crate::db::translate;

/// The channel that wakes workers; the payload is the tenant's name.
pub const WORK_CHANNEL: &str = "cloacina_work";

macro_rules! execution_columns {
    () => {
        "id, workflow, package_id, package_version, status, context, error, origin, idempotency_key, created_at, \
         started_at, finished_at, created_by"
    };
}
const EXECUTION_COLUMNS: &str = execution_columns!();

fn decode<E: std::error::Error + Send + Sync + 'static>(e: E) -> sqlx::Error {
    sqlx::Error::Decode(Box::new(e))
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Bad(String);

fn execution(row: &PgRow) -> Result<ExecutionRecord, sqlx::Error> {
    let status: String = row.try_get(4)?;
    let context: Json<Map<String, Value>> = row.try_get(5)?;
    Ok(ExecutionRecord {
        id: ExecutionId::from_uuid(row.try_get(0)?),
        workflow: row.try_get(1)?,
        package_id: row.try_get(2)?,
        package_version: row.try_get(3)?,
        status: ExecutionStatus::parse(&status).ok_or_else(|| decode(Bad(format!("unknown status '{status}'"))))?,
        context: context.0,
        error: row.try_get(6)?,
        origin: row.try_get(7)?,
        idempotency_key: row.try_get(8)?,
        created_at: row.try_get(9)?,
        started_at: row.try_get(10)?,
        finished_at: row.try_get(11)?,
        created_by: row.try_get::<Option<Uuid>, _>(12)?.map(ApiKeyId::from_uuid),
    })
}

fn task_status(s: &str) -> Result<TaskStatus, sqlx::Error> {
    TaskStatus::parse(s).ok_or_else(|| decode(Bad(format!("unknown task status '{s}'"))))
}

fn task(row: &PgRow, plan: &Plan) -> Result<TaskRecord, sqlx::Error> {
    let output: Option<Json<Map<String, Value>>> = row.try_get(7)?;
    let position = usize::try_from(row.try_get::<i32, _>(0)?).map_err(decode)?;
    Ok(TaskRecord {
        max_attempts: plan.tasks.get(position).map_or(1, |t| t.retry.max_attempts()),
        position,
        task_id: row.try_get(1)?,
        status: task_status(&row.try_get::<String, _>(2)?)?,
        attempts: u32::try_from(row.try_get::<i32, _>(3)?).map_err(decode)?,
        ready_at: row.try_get(4)?,
        started_at: row.try_get(5)?,
        finished_at: row.try_get(6)?,
        output: output.map(|o| o.0),
        error: row.try_get(8)?,
    })
}

fn pos(p: usize) -> i32 {
    i32::try_from(p).unwrap_or(i32::MAX)
}

fn later(at: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    at + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

fn unexpected(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unexpected(e.to_string())
}

async fn find_execution(
    conn: &mut PgConnection,
    id: ExecutionId,
    lock: bool,
) -> Result<Option<ExecutionRecord>, StoreError> {
    let sql = if lock {
        concat!("SELECT ", execution_columns!(), " FROM executions WHERE id = $1 FOR UPDATE")
    } else {
        concat!("SELECT ", execution_columns!(), " FROM executions WHERE id = $1")
    };
    let row = sqlx::query(sql).bind(id.as_uuid()).fetch_optional(&mut *conn).await.map_err(translate)?;
    row.as_ref().map(execution).transpose().map_err(translate)
}

struct Loaded {
    record: ExecutionRecord,
    plan: Plan,
    progress: Progress,
}

/// Locks the execution's row and reads what the rules need.
async fn load(tx: &mut PgConnection, id: ExecutionId) -> Result<Option<Loaded>, StoreError> {
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
async fn insert_events(
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
struct Staged {
    writes: HashMap<(Uuid, usize), RowWrite>,
    earliest: Option<DateTime<Utc>>,
}

impl Staged {
    /// Adds what one step of execution `id` changed. `attempted` is the task whose outcome
    /// this is; `reset` says the changed tasks start over (a retry).
    fn stage(
        &mut self,
        id: Uuid,
        settled: &Settled,
        progress: &Progress,
        attempted: Option<usize>,
        reset: bool,
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
                    reset,
                    result,
                },
            );
        }
    }
}

/// The end of a transaction that readied tasks due at `due`: as the login role again, lowers
/// the tenant's due time, bumps its sequence and wakes the workers. Must come last.
async fn wake(tx: &mut PgConnection, tenant: &TenantName, due: DateTime<Utc>) -> Result<(), StoreError> {
    // One round trip: the literals are a validated tenant name and a time we format.
    let t = literal(tenant.as_str());
    let sql = format!(
        "SET LOCAL ROLE NONE;
         INSERT INTO public.tenant_work (tenant, due_at) VALUES ({t}, {due})
         ON CONFLICT (tenant) DO UPDATE SET due_at = least(public.tenant_work.due_at, excluded.due_at),
             seq = public.tenant_work.seq + 1;
         SELECT pg_notify({channel}, {t});",
        due = time_literal(due),
        channel = literal(WORK_CHANNEL),
    );
    sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut *tx).await.map_err(translate)?;
    Ok(())
}

/// A SQL string literal.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// A `timestamptz` literal.
fn time_literal(at: DateTime<Utc>) -> String {
    format!("'{}'::timestamptz", at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
}

async fn create(tx: &mut PgConnection, new: &NewExecution) -> Result<(ExecutionCreated, bool), StoreError> {
    if let Some(key) = &new.idempotency_key {
        let first =
            sqlx::query(concat!("SELECT ", execution_columns!(), " FROM executions WHERE idempotency_key = $1"))
                .bind(key)
                .fetch_optional(&mut *tx)
                .await
                .map_err(translate)?;
        if let Some(row) = first {
            return Ok((ExecutionCreated::Existing(execution(&row).map_err(translate)?), false));
        }
    }
    let paused: Option<bool> = sqlx::query_scalar("SELECT paused FROM workflows WHERE name = $1")
        .bind(&new.workflow)
        .fetch_optional(&mut *tx)
        .await
        .map_err(translate)?;
    match paused {
        None => return Ok((ExecutionCreated::Gone, false)),
        Some(true) => return Ok((ExecutionCreated::Paused, false)),
        Some(false) => {}
    }
    // Locks the version against a concurrent delete until this commits.
    let package: Option<i32> = sqlx::query_scalar("SELECT 1 FROM packages WHERE id = $1 FOR SHARE")
        .bind(new.package_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(translate)?;
    if package.is_none() {
        return Ok((ExecutionCreated::Gone, false));
    }
    let inserted = sqlx::query(concat!(
        "INSERT INTO executions (id, workflow, package_id, package_version, status, plan, context, origin,
                                 idempotency_key, created_at, created_by)
         VALUES ($1, $2, $3, $4, 'pending', $5, $6, $7, $8, $9, $10)
         ON CONFLICT (idempotency_key) DO NOTHING
         RETURNING ",
        execution_columns!()
    ))
    .bind(new.id.as_uuid())
    .bind(&new.workflow)
    .bind(new.package_id)
    .bind(&new.package_version)
    .bind(Json(new.plan.to_json()))
    .bind(Json(&new.context))
    .bind(&new.origin)
    .bind(&new.idempotency_key)
    .bind(new.created_at)
    .bind(new.created_by.map(|k| k.as_uuid()))
    .fetch_optional(&mut *tx)
    .await
    .map_err(translate)?;
    let Some(row) = inserted else {
        // A concurrent request with the same key committed first.
        let row = sqlx::query(concat!("SELECT ", execution_columns!(), " FROM executions WHERE idempotency_key = $1"))
            .bind(&new.idempotency_key)
            .fetch_one(&mut *tx)
            .await
            .map_err(translate)?;
        return Ok((ExecutionCreated::Existing(execution(&row).map_err(translate)?), false));
    };
    let record = execution(&row).map_err(translate)?;
    let start = new.plan.start();
    let ids: Vec<&str> = new.plan.tasks.iter().map(|t| t.id.as_str()).collect();
    let statuses: Vec<&str> = start.status.iter().map(|s| s.as_str()).collect();
    let readied = start.status.contains(&TaskStatus::Ready);
    sqlx::query(
        "INSERT INTO execution_tasks (execution_id, position, task_id, status, ready_at)
         SELECT $1, (n - 1)::int, t, s, CASE WHEN s = 'ready' THEN $2 END
         FROM unnest($3::text[], $4::text[]) WITH ORDINALITY AS x(t, s, n)",
    )
    .bind(new.id.as_uuid())
    .bind(new.created_at)
    .bind(&ids)
    .bind(&statuses)
    .execute(&mut *tx)
    .await
    .map_err(translate)?;
    let created = EventDraft::new(
        "execution_created",
        None,
        json!({"workflow": new.workflow, "package_version": new.package_version, "origin": new.origin}),
    );
    insert_events(tx, new.created_at, &[(new.id.as_uuid(), created)]).await?;
    Ok((ExecutionCreated::Created(record), readied))
}

impl PgDb {
    /// Begins a tenant transaction that first reads the tenant's `tenant_work` sequence (as
    /// the login role). `None` if there is no such tenant.
    async fn begin_claim(&self, tenant: &TenantName) -> Result<Option<ClaimStart>, StoreError> {
        // Read before the transaction begins, which is earlier still than the claim's own
        // reads: any wake-up after this bumps `seq`, and the claim's due time then yields.
        // The tenant's task network comes with it, as the login role (tenant roles cannot
        // read the registry).
        let (seq, network): (Option<i64>, Option<String>) = sqlx::query_as(
            "SELECT (SELECT seq FROM public.tenant_work WHERE tenant = $1),
                    (SELECT task_network FROM public.tenants WHERE name = $1)",
        )
        .bind(tenant.as_str())
        .fetch_one(&self.pool)
        .await
        .map_err(translate)?;
        let network = network
            .map(|n| n.parse::<TaskNetwork>())
            .transpose()
            .map_err(|e| StoreError::Unexpected(format!("bad stored task network: {e}")))?;
        Ok(self.begin_tenant(tenant).await?.map(|tx| ClaimStart { tx, seq, network }))
    }
}

/// What a claim starts from: the tenant's transaction, the wake-up counter it read first,
/// and the tenant's task network.
struct ClaimStart {
    tx: Transaction<'static, Postgres>,
    seq: Option<i64>,
    network: Option<TaskNetwork>,
}

/// The tenant's next due time: its earliest ready task or running task's lease expiry.
async fn next_due(tx: &mut PgConnection) -> Result<Option<DateTime<Utc>>, StoreError> {
    sqlx::query_scalar(
        "SELECT least((SELECT min(ready_at) FROM execution_tasks WHERE status = 'ready'),
                      (SELECT min(lease_until) FROM execution_tasks WHERE status = 'running'))",
    )
    .fetch_one(&mut *tx)
    .await
    .map_err(translate)
}

/// A claim's last step, as the login role: the tenant's exact next due time, unless a wake-up
/// came since the claim began (then its lower time stands).
async fn settle_due(
    tx: &mut PgConnection,
    tenant: &TenantName,
    seq: Option<i64>,
    due: Option<DateTime<Utc>>,
) -> Result<(), StoreError> {
    let t = literal(tenant.as_str());
    let change = match (seq, due) {
        (Some(seq), None) => format!("DELETE FROM public.tenant_work WHERE tenant = {t} AND seq = {seq}"),
        (Some(seq), Some(due)) => {
            format!("UPDATE public.tenant_work SET due_at = {} WHERE tenant = {t} AND seq = {seq}", time_literal(due))
        }
        (None, Some(due)) => format!(
            "INSERT INTO public.tenant_work (tenant, due_at) VALUES ({t}, {})
             ON CONFLICT (tenant) DO UPDATE SET due_at = least(public.tenant_work.due_at, excluded.due_at),
                 seq = public.tenant_work.seq + 1",
            time_literal(due)
        ),
        (None, None) => return Ok(()),
    };
    // One round trip, as the login role again.
    sqlx::raw_sql(AssertSqlSafe(format!("SET LOCAL ROLE NONE; {change}")))
        .execute(&mut *tx)
        .await
        .map_err(translate)?;
    Ok(())
}

type Object = Map<String, Value>;

/// A claimed task's execution as accepted: its plan, initial context, package version, and
/// the outputs of its finished tasks by position.
struct Frozen {
    plan: Plan,
    initial: Object,
    package: Uuid,
    outputs: Vec<Option<Object>>,
}

async fn claim(
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
    let expired: Vec<(Uuid, EventDraft)> =
        lost.iter().map(|(id, t)| (*id, EventDraft::new("task_lease_expired", Some(t.clone()), json!({})))).collect();
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
            timeout: step.timeout,
            limits: step.limits,
            context: plan.context_for(position, initial, outputs),
            network,
        });
    }
    let event_ids: Vec<Uuid> = kinds.iter().map(|k| k.0).collect();
    let tasks: Vec<&str> = kinds.iter().map(|k| k.1.as_str()).collect();
    let details: Vec<Json<Value>> = kinds.iter().map(|k| Json(json!({"attempt": k.2, "worker": worker}))).collect();
    sqlx::query(
        "INSERT INTO execution_events (execution_id, at, kind, task, detail)
         SELECT e, $1, 'task_started', t, d FROM unnest($2::uuid[], $3::text[], $4::jsonb[]) AS x(e, t, d)",
    )
    .bind(now)
    .bind(&event_ids)
    .bind(&tasks)
    .bind(&details)
    .execute(&mut *tx)
    .await
    .map_err(translate)?;
    Ok((claimed, !lost.is_empty()))
}

/// One task row as a batch of outcomes leaves it.
struct RowWrite {
    status: TaskStatus,
    ready_at: Option<DateTime<Utc>>,
    attempts: i32,
    finished_at: Option<DateTime<Utc>>,
    /// The task starts over: its start time, output and error are cleared.
    reset: bool,
    /// The attempted task's output and error, when this row is one.
    result: Option<(Option<Object>, Option<String>)>,
}

/// An execution as a batch changes it.
struct Batched {
    status_before: ExecutionStatus,
    plan: Plan,
    progress: Progress,
    owners: Vec<Option<String>>,
    error: Option<String>,
}

/// Records a batch of outcomes with set-based statements: the executions locked in id order,
/// the rules applied in memory report by report, then one statement per table. Returns one
/// [`Recorded`] per report and the earliest time a readied task may be claimed.
async fn record(
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
        let ours = e.progress.status.get(pos) == Some(&TaskStatus::Running)
            && e.progress.attempts.get(pos) == Some(&report.attempt)
            && e.owners.get(pos).and_then(Option::as_deref) == Some(worker);
        if !ours {
            recorded.push(Recorded::Stale);
            continue;
        }
        let settled = e.plan.settle(&mut e.progress, pos, &report.outcome);
        let task_name = e.plan.tasks[pos].id.to_string();
        staged.stage(id, &settled, &e.progress, Some(pos), false, now);
        let (output, error) = match &report.outcome {
            Attempt::Succeeded => (report.output.clone(), None),
            Attempt::Failed(reason) => (None, Some(reason.clone())),
        };
        if let Some(w) = staged.writes.get_mut(&(id, pos)) {
            w.result = Some((output, error));
        }
        let failed_for_good = settled.changes.iter().any(|c| c.position == pos && c.status == TaskStatus::Failed);
        if let Attempt::Failed(reason) = &report.outcome
            && failed_for_good
            && e.error.is_none()
        {
            e.error = Some(format!("task '{task_name}' failed after {} attempt(s): {reason}", report.attempt));
        }
        e.owners[pos] = None;
        logs.push((id, pos, task_name, report));
        recorded.push(Recorded::Done { readied: settled.readied() });
        events.extend(settled.events.into_iter().map(|ev| (id, ev)));
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
struct ExecWrite {
    id: Uuid,
    status: ExecutionStatus,
    finished_at: Option<DateTime<Utc>>,
    /// The first failure's text (kept if one is there already).
    error: Option<String>,
    /// The execution starts over (a retry): its error goes.
    clear_error: bool,
}

/// Everything a transaction writes once the rules have run: task rows, attempt logs, events
/// (in order), execution rows.
struct Batch<'a> {
    staged: Staged,
    logs: Vec<(Uuid, usize, String, &'a AttemptReport)>,
    events: Vec<(Uuid, EventDraft)>,
    execs: Vec<ExecWrite>,
}

/// Writes a [`Batch`] in one statement (data-modifying CTEs), stamped `now`.
async fn write_batch(tx: &mut PgConnection, batch: Batch<'_>, now: DateTime<Utc>) -> Result<(), StoreError> {
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

async fn transition(
    tx: &mut PgConnection,
    id: ExecutionId,
    at: DateTime<Utc>,
    retry: bool,
) -> Result<(Transition, Option<DateTime<Utc>>), StoreError> {
    let Some(mut loaded) = load(tx, id).await? else { return Ok((Transition::NotFound, None)) };
    let allowed = if retry {
        matches!(loaded.record.status, ExecutionStatus::Failed | ExecutionStatus::Cancelled)
    } else {
        !loaded.record.status.is_terminal()
    };
    if !allowed {
        return Ok((Transition::Refused(loaded.record), None));
    }
    let settled = if retry {
        loaded.plan.settle_retry(&mut loaded.progress)
    } else {
        loaded.plan.settle_cancel(&mut loaded.progress)
    };
    let mut staged = Staged::default();
    staged.stage(id.as_uuid(), &settled, &loaded.progress, None, retry, at);
    let due = staged.earliest;
    let exec = ExecWrite {
        id: id.as_uuid(),
        status: settled.status,
        finished_at: settled.status.is_terminal().then_some(at),
        error: None,
        clear_error: retry,
    };
    let events: Vec<(Uuid, EventDraft)> = settled.events.into_iter().map(|e| (id.as_uuid(), e)).collect();
    write_batch(tx, Batch { staged, logs: Vec::new(), events, execs: vec![exec] }, at).await?;
    let record = find_execution(tx, id, false).await?.ok_or_else(|| unexpected("lost the execution"))?;
    Ok((Transition::Done(record), due))
}

async fn exists(tx: &mut PgConnection, id: ExecutionId) -> Result<bool, StoreError> {
    let found: Option<i32> = sqlx::query_scalar("SELECT 1 FROM executions WHERE id = $1")
        .bind(id.as_uuid())
        .fetch_optional(&mut *tx)
        .await
        .map_err(translate)?;
    Ok(found.is_some())
}

#[async_trait]
impl ExecutionStore for PgDb {
    async fn create_execution(
        &self,
        tenant: &TenantName,
        new: &NewExecution,
    ) -> Result<Option<ExecutionCreated>, StoreError> {
        let Some(mut tx) = self.begin_tenant(tenant).await? else { return Ok(None) };
        let (created, readied) = create(&mut tx, new).await?;
        if readied {
            wake(&mut tx, tenant, new.created_at).await?;
        }
        tx.commit().await.map_err(translate)?;
        if readied {
            self.work.notify_one();
        }
        Ok(Some(created))
    }

    async fn list_executions(
        &self,
        tenant: &TenantName,
        query: &ExecutionQuery,
    ) -> Result<Option<ExecutionPage>, StoreError> {
        let Some(mut tx) = self.begin_tenant(tenant).await? else { return Ok(None) };
        let filter = "($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR workflow = $2)";
        let status = query.status.map(ExecutionStatus::as_str);
        let total: i64 = sqlx::query_scalar(AssertSqlSafe(format!("SELECT count(*) FROM executions WHERE {filter}")))
            .bind(status)
            .bind(&query.workflow)
            .fetch_one(&mut *tx)
            .await
            .map_err(translate)?;
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {EXECUTION_COLUMNS} FROM executions WHERE {filter} ORDER BY created_at DESC, id DESC LIMIT $3 OFFSET $4"
        )))
        .bind(status)
        .bind(&query.workflow)
        .bind(i64::from(query.limit))
        .bind(i64::try_from(query.offset).unwrap_or(i64::MAX))
        .fetch_all(&mut *tx)
        .await
        .map_err(translate)?;
        tx.commit().await.map_err(translate)?;
        let executions = rows.iter().map(execution).collect::<Result<_, _>>().map_err(translate)?;
        Ok(Some(ExecutionPage { executions, total: total.unsigned_abs() }))
    }

    async fn get_execution(
        &self,
        tenant: &TenantName,
        id: ExecutionId,
    ) -> Result<Option<Option<ExecutionRecord>>, StoreError> {
        let Some(mut tx) = self.begin_tenant(tenant).await? else { return Ok(None) };
        let found = find_execution(&mut tx, id, false).await?;
        tx.commit().await.map_err(translate)?;
        Ok(Some(found))
    }

    async fn execution_tasks(
        &self,
        tenant: &TenantName,
        id: ExecutionId,
    ) -> Result<Option<Option<Vec<TaskRecord>>>, StoreError> {
        let Some(mut tx) = self.begin_tenant(tenant).await? else { return Ok(None) };
        let plan: Option<Json<Value>> = sqlx::query_scalar("SELECT plan FROM executions WHERE id = $1")
            .bind(id.as_uuid())
            .fetch_optional(&mut *tx)
            .await
            .map_err(translate)?;
        let Some(plan) = plan else { return Ok(Some(None)) };
        let plan = Plan::from_json(&plan.0).map_err(unexpected)?;
        let rows = sqlx::query(
            "SELECT position, task_id, status, attempts, ready_at, started_at, finished_at, output, error
             FROM execution_tasks WHERE execution_id = $1 ORDER BY position",
        )
        .bind(id.as_uuid())
        .fetch_all(&mut *tx)
        .await
        .map_err(translate)?;
        tx.commit().await.map_err(translate)?;
        rows.iter().map(|r| task(r, &plan)).collect::<Result<Vec<_>, _>>().map(|t| Some(Some(t))).map_err(translate)
    }

    async fn execution_events(
        &self,
        tenant: &TenantName,
        id: ExecutionId,
        since: i64,
        limit: u32,
    ) -> Result<Option<Option<Vec<EventRecord>>>, StoreError> {
        let Some(mut tx) = self.begin_tenant(tenant).await? else { return Ok(None) };
        if !exists(&mut tx, id).await? {
            return Ok(Some(None));
        }
        let rows: Vec<(i64, DateTime<Utc>, String, Option<String>, Json<Value>)> = sqlx::query_as(
            "SELECT id, at, kind, task, detail FROM execution_events WHERE execution_id = $1 AND id > $2 ORDER BY id LIMIT $3",
        )
        .bind(id.as_uuid())
        .bind(since)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await
        .map_err(translate)?;
        tx.commit().await.map_err(translate)?;
        Ok(Some(Some(
            rows.into_iter()
                .map(|(eid, at, kind, task, detail)| EventRecord {
                    id: eid,
                    execution_id: id,
                    at,
                    kind,
                    task,
                    detail: detail.0,
                })
                .collect(),
        )))
    }

    async fn task_logs(
        &self,
        tenant: &TenantName,
        id: ExecutionId,
        task_id: &str,
    ) -> Result<Option<Option<Vec<TaskLog>>>, StoreError> {
        let Some(mut tx) = self.begin_tenant(tenant).await? else { return Ok(None) };
        if !exists(&mut tx, id).await? {
            return Ok(Some(None));
        }
        let rows: Vec<(String, i32, String, String, bool, DateTime<Utc>)> = sqlx::query_as(
            "SELECT task_id, attempt, stdout, stderr, truncated, at FROM task_logs
             WHERE execution_id = $1 AND task_id = $2 ORDER BY id",
        )
        .bind(id.as_uuid())
        .bind(task_id)
        .fetch_all(&mut *tx)
        .await
        .map_err(translate)?;
        tx.commit().await.map_err(translate)?;
        Ok(Some(Some(
            rows.into_iter()
                .map(|(task_id, attempt, stdout, stderr, truncated, at)| TaskLog {
                    task_id,
                    attempt: u32::try_from(attempt).unwrap_or(0),
                    stdout,
                    stderr,
                    truncated,
                    at,
                })
                .collect(),
        )))
    }

    async fn cancel_execution(
        &self,
        tenant: &TenantName,
        id: ExecutionId,
        at: DateTime<Utc>,
    ) -> Result<Option<Transition>, StoreError> {
        let Some(mut tx) = self.begin_tenant(tenant).await? else { return Ok(None) };
        let (t, _) = transition(&mut tx, id, at, false).await?;
        tx.commit().await.map_err(translate)?;
        Ok(Some(t))
    }

    async fn retry_execution(
        &self,
        tenant: &TenantName,
        id: ExecutionId,
        at: DateTime<Utc>,
    ) -> Result<Option<Transition>, StoreError> {
        let Some(mut tx) = self.begin_tenant(tenant).await? else { return Ok(None) };
        let (t, due) = transition(&mut tx, id, at, true).await?;
        if let Some(due) = due {
            wake(&mut tx, tenant, due).await?;
        }
        tx.commit().await.map_err(translate)?;
        if due.is_some() {
            self.work.notify_one();
        }
        Ok(Some(t))
    }

    async fn prune_executions(&self, tenant: &TenantName, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let Some(mut tx) = self.begin_tenant(tenant).await? else { return Ok(0) };
        let n: i64 = sqlx::query_scalar(
            "WITH gone AS (
                 DELETE FROM executions WHERE finished_at IS NOT NULL AND finished_at < $1
                   AND status IN ('succeeded', 'failed', 'cancelled')
                 RETURNING id),
             events AS (DELETE FROM execution_events WHERE execution_id IN (SELECT id FROM gone)),
             logs AS (DELETE FROM task_logs WHERE execution_id IN (SELECT id FROM gone))
             SELECT count(*) FROM gone",
        )
        .bind(before)
        .fetch_one(&mut *tx)
        .await
        .map_err(translate)?;
        let n = n.unsigned_abs();
        tx.commit().await.map_err(translate)?;
        Ok(n)
    }
}

#[async_trait]
impl TaskQueue for PgDb {
    async fn due_tenants(&self, now: DateTime<Utc>) -> Result<DueWork, StoreError> {
        let rows: Vec<(String, DateTime<Utc>)> =
            sqlx::query_as("SELECT tenant, due_at FROM public.tenant_work ORDER BY due_at LIMIT 10000")
                .fetch_all(&self.pool)
                .await
                .map_err(translate)?;
        let mut due = DueWork::default();
        for (tenant, at) in rows {
            if at <= now {
                if let Ok(t) = TenantName::parse(&tenant) {
                    due.tenants.push(t);
                }
            } else {
                due.next = Some(due.next.map_or(at, |n: DateTime<Utc>| n.min(at)));
            }
        }
        Ok(due)
    }

    async fn claim(
        &self,
        tenant: &TenantName,
        worker: &str,
        now: DateTime<Utc>,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<ClaimedTask>, StoreError> {
        let Some(ClaimStart { mut tx, seq, network }) = self.begin_claim(tenant).await? else {
            return Ok(Vec::new());
        };
        let (claimed, _) = claim(&mut tx, worker, now, lease, limit, network).await?;
        let due = next_due(&mut tx).await?;
        settle_due(&mut tx, tenant, seq, due).await?;
        tx.commit().await.map_err(translate)?;
        Ok(claimed)
    }

    async fn renew(
        &self,
        tenant: &TenantName,
        worker: &str,
        keys: Vec<TaskKey>,
        until: DateTime<Utc>,
    ) -> Result<Vec<TaskKey>, StoreError> {
        let Some(mut tx) = self.begin_tenant(tenant).await? else { return Ok(Vec::new()) };
        let ids: Vec<Uuid> = keys.iter().map(|k| k.execution_id.as_uuid()).collect();
        let positions: Vec<i32> = keys.iter().map(|k| pos(k.position)).collect();
        let held: Vec<(Uuid, i32)> = sqlx::query_as(
            "UPDATE execution_tasks t SET lease_until = $2
             FROM unnest($3::uuid[], $4::int[]) AS k(e, p)
             WHERE t.execution_id = k.e AND t.position = k.p AND t.lease_owner = $1 AND t.status = 'running'
             RETURNING t.execution_id, t.position",
        )
        .bind(worker)
        .bind(until)
        .bind(&ids)
        .bind(&positions)
        .fetch_all(&mut *tx)
        .await
        .map_err(translate)?;
        tx.commit().await.map_err(translate)?;
        Ok(held
            .into_iter()
            .filter_map(|(e, p)| {
                Some(TaskKey { execution_id: ExecutionId::from_uuid(e), position: usize::try_from(p).ok()? })
            })
            .collect())
    }

    async fn record(
        &self,
        tenant: &TenantName,
        worker: &str,
        reports: Vec<AttemptReport>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Recorded>, StoreError> {
        let Some(mut tx) = self.begin_tenant(tenant).await? else { return Ok(vec![Recorded::Stale; reports.len()]) };
        let (recorded, due) = record(&mut tx, worker, &reports, now).await?;
        if let Some(due) = due {
            wake(&mut tx, tenant, due).await?;
        }
        tx.commit().await.map_err(translate)?;
        Ok(recorded)
    }

    async fn release(
        &self,
        tenant: &TenantName,
        worker: &str,
        keys: Vec<TaskKey>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let Some(mut tx) = self.begin_tenant(tenant).await? else { return Ok(()) };
        let ids: Vec<Uuid> = keys.iter().map(|k| k.execution_id.as_uuid()).collect();
        let positions: Vec<i32> = keys.iter().map(|k| pos(k.position)).collect();
        let released: Vec<(Uuid, String)> = sqlx::query_as(
            "UPDATE execution_tasks t SET status = 'ready', ready_at = $2, attempts = greatest(t.attempts - 1, 0),
                lease_owner = NULL, lease_until = NULL
             FROM unnest($3::uuid[], $4::int[]) AS k(e, p)
             WHERE t.execution_id = k.e AND t.position = k.p AND t.lease_owner = $1 AND t.status = 'running'
             RETURNING t.execution_id, t.task_id",
        )
        .bind(worker)
        .bind(now)
        .bind(&ids)
        .bind(&positions)
        .fetch_all(&mut *tx)
        .await
        .map_err(translate)?;
        let given_back: Vec<(Uuid, EventDraft)> = released
            .iter()
            .map(|(id, t)| (*id, EventDraft::new("task_released", Some(t.clone()), json!({"worker": worker}))))
            .collect();
        insert_events(&mut tx, now, &given_back).await?;
        if !released.is_empty() {
            wake(&mut tx, tenant, now).await?;
        }
        tx.commit().await.map_err(translate)?;
        Ok(())
    }

    async fn wait_for_work(&self, max: Duration) {
        let _ = tokio::time::timeout(max, self.work.notified()).await;
    }
}
