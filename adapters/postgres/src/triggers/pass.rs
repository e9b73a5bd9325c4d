//! One scheduler pass over a tenant's due triggers on PostgreSQL: one transaction on the
//! tenant's lane (`crate::lanes`) and three round trips however many triggers are due. The
//! first message begins, enters the tenant (reading its `trigger_due` sequence as the login
//! role first) and reads the due rows locked `FOR UPDATE SKIP LOCKED` with their workflows,
//! their versions in force (locked `FOR SHARE`) and, for the overlap policies that weigh
//! them, their unfinished executions (a version's manifest is read apart, only the first
//! time). The domain decides ([`TriggerRecord::tick`], [`scheduled_executions`]); the write
//! stores every fired execution and writes the triggers back in one statement
//! ([`statements::write`]), which ends the tenant's role; the third message settles the
//! tenant's due time as the login role, and commits.
//!
//! The first and third messages are simple-protocol text, so several statements travel in
//! one: the lane prepares each tenant's read by name the first time its session meets the
//! tenant (`Lane::named`). The write goes over the extended protocol with its data bound as
//! binary arrays, prepared once per lane by the driver's statement cache. Every statement
//! names the tenant's schema and a lane's `search_path` is empty, so the plans of a tenant's
//! statements survive from one pass to the next.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use cloacina_domain::TenantName;
use cloacina_domain::execution::{Command, ExecutionId, NewExecution, TaskStatus};
use cloacina_domain::ports::{FirePass, StartedFire, StoreError};
use cloacina_domain::trigger::{Overlap, StoredVersion, TriggerRecord, scheduled_executions};
use sqlx::postgres::PgRow;
use sqlx::{AssertSqlSafe, PgConnection, Row};
use uuid::Uuid;

use super::statements;
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
/// `public` tables alone: a pass sends them with its `BEGIN` and its `COMMIT`.
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
    let Some(place) = db.place(tenant).await? else {
        // Gone: the lane the scheduler asked for (`TriggerStore::pass_lane`) serves it no more.
        db.lanes.forget(tenant);
        return Ok(None);
    };
    let mut lane = db.lanes.acquire(tenant).await.map_err(LaneError::into_store)?;
    let schema = ident(&place.schema);
    let naming = lane.named(&place.schema);
    let id = naming.id;
    // The first message. The transaction is the lane's own: a pass that fails midway leaves
    // the lane unkept, and its connection is closed with the transaction open (`Lane`). The
    // sequence comes first, before the pass's own reads: a change after this bumps it, and the
    // pass's due time then yields to the change's. The tenant's statements are prepared as
    // the tenant (the first time this session meets it), and the read follows. The literals
    // are a validated tenant name, a role name read from the registry, and values we format.
    let mut first = String::new();
    if let Some(old) = naming.evicted {
        first.push_str(&format!("DEALLOCATE cloacina_read_{old}; "));
    }
    first.push_str(&format!("BEGIN; EXECUTE cloacina_enter({}, {}); ", literal(tenant.as_str()), literal(&place.role)));
    if naming.new {
        first.push_str(&format!(
            "PREPARE cloacina_read_{id}(timestamptz, bigint, text[]) AS {}; ",
            statements::read(&schema)
        ));
    }
    let words: Vec<String> = Overlap::words_weighing_unfinished().into_iter().map(literal).collect();
    first.push_str(&format!(
        "EXECUTE cloacina_read_{id}({}, {}, ARRAY[{}]::text[])",
        time_literal(now),
        i64::try_from(limit).unwrap_or(i64::MAX),
        words.join(", ")
    ));
    let rows = match sqlx::raw_sql(AssertSqlSafe(first)).fetch_all(lane.conn()).await {
        Ok(rows) => rows,
        // The tenant's role or schema is gone: so is the tenant (the lane's connection is closed).
        Err(e) => return db.forget_if_gone(tenant, e).map(|()| None),
    };
    // The enter statement's row (two columns), then the read's.
    let (entered, read) =
        rows.split_first().ok_or_else(|| StoreError::Unexpected("a pass entered no tenant".into()))?;
    let seq: Option<i64> = entered.try_get(0).map_err(translate)?;
    let tx = lane.conn();
    let due = read_due(db, tx, &schema, read).await?;
    let mut out = FirePass { triggers: due.len(), ..FirePass::default() };
    // The write (or, with nothing due, the tenant's least due time), which ends the tenant's
    // role and leaves the tenant's next trigger time in `cloacina.next_due`; then, as the
    // login role, the engine's wake-up, the tenant's next trigger time (unless a change came
    // since `seq` was read) and the bell; and the commit.
    let (before, readied) = if due.is_empty() {
        (format!("{}; ", statements::nothing_due(&schema)), false)
    } else {
        let (news, writes, readied) = decide(tx, &place, due, now, &mut out).await?;
        let args = statements::WriteArgs::new(&news, &writes, now);
        let row = args.bind(statements::write(&schema)).fetch_one(&mut *tx).await.map_err(translate)?;
        // The ids it stored (a fire stored before is left out).
        let stored: Vec<Uuid> = row.try_get(0).map_err(translate)?;
        out.started.retain(|s| stored.contains(&s.execution.as_uuid()));
        (String::new(), readied)
    };
    let ring = !out.started.is_empty() || out.cancelled > 0;
    let last = format!(
        "{before}EXECUTE cloacina_settle({}, {}, nullif(current_setting('cloacina.next_due', true), '')::timestamptz, {}, {ring}); COMMIT",
        literal(tenant.as_str()),
        seq.map_or_else(|| "NULL".to_owned(), |s| s.to_string()),
        if readied { time_literal(now) } else { "NULL".to_owned() },
    );
    sqlx::raw_sql(AssertSqlSafe(last)).execute(&mut *tx).await.map_err(translate)?;
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

/// Decides the locked due triggers and cancels what `cancel_other` cancels; returns the
/// executions to store, the triggers to write back, and whether a fire readies tasks. Every
/// fire decided counts as started in `out` until the write says which it stored.
async fn decide(
    tx: &mut PgConnection,
    place: &TenantPlace,
    due: Vec<Due>,
    now: DateTime<Utc>,
    out: &mut FirePass,
) -> Result<(Vec<NewExecution>, Vec<TriggerRecord>, bool), StoreError> {
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
    let mut readied = false;
    for ((at, fire), new) in fired.iter().zip(&news) {
        readied |= new.plan.start().status.contains(&TaskStatus::Ready);
        out.started.push(StartedFire::new(&writes[*at], new.id, fire, now));
    }
    Ok((news, writes, readied))
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
