//! One scheduler pass over a tenant's due triggers on PostgreSQL: one transaction on the
//! tenant's lane (`crate::lanes`) and the same four round trips however many triggers are
//! due. It enters the tenant (reading its `trigger_due` sequence as the login role first),
//! reads the due rows locked `FOR UPDATE SKIP LOCKED` with their workflows, their versions in
//! force (locked `FOR SHARE`) and, for the overlap policies that weigh them, their unfinished
//! executions in one statement (a version's manifest only the first time), lets the domain
//! decide ([`TriggerRecord::tick`], [`scheduled_executions`]), then stores every fired
//! execution and writes the triggers back in another ([`statements`]), which ends the
//! tenant's role, and settles the tenant's due time as the login role.
//!
//! Every statement names the tenant's schema: a lane's `search_path` is empty, so the plans
//! of a tenant's statements survive from one pass to the next.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use cloacina_domain::TenantName;
use cloacina_domain::execution::{Command, ExecutionId, NewExecution, TaskStatus};
use cloacina_domain::ports::{FirePass, StartedFire, StoreError};
use cloacina_domain::trigger::{Overlap, StoredVersion, TriggerRecord, scheduled_executions};
use sqlx::postgres::PgRow;
use sqlx::{AssertSqlSafe, PgConnection, Row};
use uuid::Uuid;

use super::statements::{self, Written};
use super::trigger;
use crate::PgDb;
use crate::db::{TenantPlace, ident, translate};
use crate::executions::changes::transition;
use crate::executions::queue::{DueTable, settle_statement, time_literal};
use crate::lanes::LaneError;
use crate::tenant_scope::literal;

/// What the pass's read gives for one due trigger: the trigger, its workflow's state and
/// version in force (absent if the workflow or that version is gone), and its unfinished
/// executions.
struct Due {
    trigger: TriggerRecord,
    in_force: Option<InForce>,
    unfinished: Vec<Uuid>,
}

/// A workflow as a pass needs it: paused, and the version in force.
struct InForce {
    paused: bool,
    /// Shared with the server's cache of versions: a pass never copies a manifest.
    version: Arc<StoredVersion>,
}

/// The statements each lane prepares once for its session (`crate::lanes`), both on
/// `public` tables alone: a pass sends them with its `BEGIN` and its `COMMIT` in one message
/// each, so it is four round trips, not six.
pub(crate) fn session_statements() -> Vec<String> {
    vec![
        // The tenant's `trigger_due` sequence, read as the login role in the statement that
        // enters the tenant: its rights are checked as it starts, the role changes as it runs.
        "PREPARE cloacina_enter(text, text) AS
             SELECT (SELECT seq FROM public.trigger_due WHERE tenant = $1), set_config('role', $2, true)"
            .to_owned(),
        format!(
            "PREPARE cloacina_settle(text, bigint, timestamptz, timestamptz, boolean) AS {}",
            settle_statement(DueTable::Triggers)
        ),
    ]
}

pub(super) async fn fire_due(
    db: &PgDb,
    tenant: &TenantName,
    now: DateTime<Utc>,
    limit: usize,
) -> Result<Option<FirePass>, StoreError> {
    let _under_way = db.lanes.pass_begins();
    let Some(place) = db.place(tenant).await? else { return Ok(None) };
    let mut lane = db.lanes.acquire(tenant).await.map_err(LaneError::into_store)?;
    // The transaction is the lane's own: a pass that fails midway leaves the lane unkept, and
    // its connection is closed with the transaction open (`Lane`). The sequence comes first,
    // before the pass's own reads: a change after this bumps it, and the pass's due time
    // then yields to the change's. The literals are a validated tenant name and a role name
    // read from the registry.
    let enter = format!("BEGIN; EXECUTE cloacina_enter({}, {})", literal(tenant.as_str()), literal(&place.role));
    let entered = sqlx::raw_sql(AssertSqlSafe(enter)).fetch_all(lane.conn()).await;
    let seq: Option<i64> = match entered {
        Ok(rows) => rows.first().map(|r| r.try_get(0)).transpose().map_err(translate)?.flatten(),
        // The tenant's role is gone: so is the tenant (the lane's connection is closed).
        Err(e) => return db.forget_if_gone(tenant, e).map(|()| None),
    };
    let tx = lane.conn();
    let schema = ident(&place.schema);
    let rows = sqlx::query(AssertSqlSafe(statements::read(&schema)))
        .bind(now)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .bind(Overlap::words_weighing_unfinished())
        .fetch_all(&mut *tx)
        .await
        .map_err(translate)?;
    let due = read_due(db, tx, &schema, &rows).await?;
    let mut out = FirePass { triggers: due.len(), ..FirePass::default() };
    // The tenant's least due time after the pass. Rows another pass holds are due no later
    // than they were: the least of all stays right whoever commits last.
    let (readied, next) = if due.is_empty() {
        // The tenant's role ends with this statement, as with the write's.
        let sql = format!("SELECT min(due_at), set_config('role', 'none', true) FROM {schema}.triggers");
        let next: Result<(Option<DateTime<Utc>>, String), _> =
            sqlx::query_as(AssertSqlSafe(sql)).fetch_one(&mut *tx).await;
        (false, next.map_err(translate)?.0)
    } else {
        decide(tx, &place, &schema, due, now, &mut out).await?
    };
    // As the login role (the last statement set it back), in the round trip that commits:
    // the engine's wake-up, the tenant's next trigger time (unless a change came since `seq`
    // was read), and the bell.
    let wake = readied.then_some(now);
    let ring = !out.started.is_empty() || out.cancelled > 0;
    let end = if wake.is_some() || ring || seq.is_some() || next.is_some() {
        let time = |t: Option<DateTime<Utc>>| t.map_or_else(|| "NULL".to_owned(), time_literal);
        format!(
            "EXECUTE cloacina_settle({}, {}, {}, {}, {ring}); COMMIT",
            literal(tenant.as_str()),
            seq.map_or_else(|| "NULL".to_owned(), |s| s.to_string()),
            time(next),
            time(wake),
        )
    } else {
        "COMMIT".to_owned()
    };
    sqlx::raw_sql(AssertSqlSafe(end)).execute(&mut *tx).await.map_err(translate)?;
    lane.keep();
    Ok(Some(out))
}

/// The read's rows: the trigger's columns, then the workflow's `paused`, its package and
/// version, the version's id, and the trigger's unfinished executions. A version's manifest is
/// read and parsed once: versions never change, and the server remembers them.
async fn read_due(db: &PgDb, tx: &mut PgConnection, schema: &str, rows: &[PgRow]) -> Result<Vec<Due>, StoreError> {
    let mut due = Vec::with_capacity(rows.len());
    for row in rows {
        let t = trigger(row).map_err(translate)?;
        let at = statements::TRIGGER_COLUMNS;
        let get = |e: sqlx::Error| translate(e);
        let paused: Option<bool> = row.try_get(at).map_err(get)?;
        let package: Option<String> = row.try_get(at + 1).map_err(get)?;
        let version: Option<String> = row.try_get(at + 2).map_err(get)?;
        let package_id: Option<Uuid> = row.try_get(at + 3).map_err(get)?;
        let unfinished: Vec<Uuid> = row.try_get(at + 4).map_err(get)?;
        let in_force = match (paused, package, version, package_id) {
            (Some(paused), Some(package), Some(version), Some(id)) => {
                let version = match db.versions.get(&id) {
                    Some(v) => v,
                    None => {
                        let manifest: String = sqlx::query_scalar(AssertSqlSafe(statements::manifest(schema)))
                            .bind(id)
                            .fetch_one(&mut *tx)
                            .await
                            .map_err(translate)?;
                        let v = Arc::new(
                            StoredVersion::read(&package, id, &version, &manifest).map_err(StoreError::Unexpected)?,
                        );
                        db.versions.insert(id, v.clone());
                        v
                    }
                };
                Some(InForce { paused, version })
            }
            _ => None,
        };
        due.push(Due { trigger: t, in_force, unfinished });
    }
    Ok(due)
}

/// Decides and applies the locked due triggers; returns whether tasks were readied, and the
/// tenant's least due time after the write-back (`None`: no trigger is due ever).
async fn decide(
    tx: &mut PgConnection,
    place: &TenantPlace,
    schema: &str,
    due: Vec<Due>,
    now: DateTime<Utc>,
    out: &mut FirePass,
) -> Result<(bool, Option<DateTime<Utc>>), StoreError> {
    let mut writes = Vec::with_capacity(due.len());
    let mut news: Vec<NewExecution> = Vec::new();
    let mut fired = Vec::new();
    let mut cancel: Vec<Uuid> = Vec::new();
    for d in &due {
        let t = &d.trigger;
        let Some(w) = &d.in_force else {
            tracing::warn!(trigger = t.name(), workflow = %t.workflow, "a due trigger's workflow is gone; it stops");
            writes.push(t.without_workflow(now));
            continue;
        };
        let plan = t.tick(now, w.paused, d.unfinished.len() as u64);
        if plan.cancel_unfinished {
            cancel.extend(&d.unfinished);
        }
        let built = scheduled_executions(t, &plan.start, &w.version, now).map_err(StoreError::Unexpected)?;
        fired.extend(plan.start.iter().map(|f| (writes.len(), *f)));
        news.extend(built);
        out.counts = out.counts.plus(&plan.counts);
        writes.push(plan.trigger);
    }
    if !cancel.is_empty() {
        cancel_unfinished(tx, place, &cancel, now).await?;
        out.cancelled += cancel.len() as u64;
    }
    let Written { stored, next } = statements::write(tx, schema, &news, &writes, now).await?;
    let mut readied = false;
    for ((at, fire), new) in fired.iter().zip(&news) {
        if stored.contains(&new.id.as_uuid()) {
            readied |= new.plan.start().status.contains(&TaskStatus::Ready);
            out.started.push(StartedFire::new(&writes[*at], new.id, fire, now));
        }
    }
    Ok((readied, next))
}

/// Cancels executions of overlap `cancel_other` triggers through the engine's transition,
/// whose statements name no schema: they run with `search_path` set to the tenant's for the
/// moment, and the lane's empty one back after them (a rare path, so its plans may be made
/// afresh).
async fn cancel_unfinished(
    tx: &mut PgConnection,
    place: &TenantPlace,
    ids: &[Uuid],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let path = |p: String| sqlx::query("SELECT set_config('search_path', $1, true)").bind(p);
    path(ident(&place.schema)).execute(&mut *tx).await.map_err(translate)?;
    for id in ids {
        transition(tx, ExecutionId::from_uuid(*id), now, Command::Cancel).await?;
    }
    path(String::new()).execute(&mut *tx).await.map_err(translate)?;
    Ok(())
}
