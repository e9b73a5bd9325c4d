//! One scheduler pass over a tenant's due triggers on PostgreSQL, in one transaction and a
//! fixed number of statements however many triggers are due: lock the due rows `FOR UPDATE
//! SKIP LOCKED`, read their workflows with the package versions locked `FOR SHARE`, count
//! each trigger's unfinished executions, let the domain decide ([`TriggerRecord::tick`],
//! [`scheduled_executions`]), then store every fired execution at once and write the
//! triggers back in one `UPDATE`.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use cloacina_domain::TenantName;
use cloacina_domain::execution::{Command, ExecutionId};
use cloacina_domain::ports::{FirePass, StartedFire, StoreError};
use cloacina_domain::trigger::{Fire, StoredVersion, TriggerRecord, scheduled_executions};
use sqlx::{AssertSqlSafe, PgConnection};
use uuid::Uuid;

use super::{COLUMNS, n, trigger};
use crate::PgDb;
use crate::db::translate;
use crate::executions::changes::transition;
use crate::executions::create::create_fired;
use crate::executions::queue::{DueTable, settle_sql, wake_sql};
use crate::listen::EVENTS_CHANNEL;
use crate::tenant_scope::literal;

/// A workflow as a pass needs it: paused, and the version in force.
struct InForce {
    paused: bool,
    version: StoredVersion,
}

pub(super) async fn fire_due(
    db: &PgDb,
    tenant: &TenantName,
    now: DateTime<Utc>,
    limit: usize,
) -> Result<Option<FirePass>, StoreError> {
    // The sequence first, before the pass's own reads: a change after this bumps it, and the
    // pass's due time then yields to the change's. Read with the entering, in one round trip.
    let seq_of = format!("SELECT seq FROM public.trigger_due WHERE tenant = {}", literal(tenant.as_str()));
    let Some((mut tx, seq)) = db.begin_tenant_reading(tenant, &seq_of).await? else { return Ok(None) };
    let rows = sqlx::query(AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM triggers WHERE due_at <= $1 ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED"
    )))
    .bind(now)
    .bind(n(limit as u64))
    .fetch_all(&mut *tx)
    .await
    .map_err(translate)?;
    let due = rows.iter().map(trigger).collect::<Result<Vec<_>, _>>().map_err(translate)?;
    let mut out = FirePass { triggers: due.len(), ..FirePass::default() };
    // The tenant's least due time after the pass. Rows another pass holds are due no later
    // than they were: the least of all stays right whoever commits last.
    let (readied, next) = if due.is_empty() {
        let next = sqlx::query_scalar("SELECT min(due_at) FROM triggers").fetch_one(&mut *tx).await;
        (false, next.map_err(translate)?)
    } else {
        decide(&mut tx, due, now, &mut out).await?
    };
    // Both as the login role, last, in one round trip: the engine's wake-up, then the
    // tenant's next trigger time (unless a change came since `seq` was read).
    let wake = if readied { wake_sql(DueTable::Work, tenant, now) } else { String::new() };
    let settle = settle_sql(DueTable::Triggers, tenant, seq, next).unwrap_or_default();
    let ring = if out.started.is_empty() && out.cancelled == 0 {
        String::new()
    } else {
        format!("SELECT pg_notify({}, {});", literal(EVENTS_CHANNEL), literal(tenant.as_str()))
    };
    if !(wake.is_empty() && settle.is_empty() && ring.is_empty()) {
        sqlx::raw_sql(AssertSqlSafe(format!("SET LOCAL ROLE NONE; {wake} {settle} {ring}")))
            .execute(&mut *tx)
            .await
            .map_err(translate)?;
    }
    tx.commit().await.map_err(translate)?;
    Ok(Some(out))
}

/// Decides and applies the locked due triggers; returns whether tasks were readied, and the
/// tenant's least due time after the write-back (`None`: no trigger is due ever).
async fn decide(
    tx: &mut PgConnection,
    due: Vec<TriggerRecord>,
    now: DateTime<Utc>,
    out: &mut FirePass,
) -> Result<(bool, Option<DateTime<Utc>>), StoreError> {
    let workflows = in_force(tx, &due).await?;
    let names: Vec<&str> = due.iter().map(TriggerRecord::name).collect();
    let unfinished: HashMap<String, Vec<Uuid>> = sqlx::query_as::<_, (String, Vec<Uuid>)>(
        "SELECT trigger, array_agg(id) FROM executions
         WHERE trigger = ANY($1) AND status IN ('pending', 'running') GROUP BY trigger",
    )
    .bind(&names)
    .fetch_all(&mut *tx)
    .await
    .map_err(translate)?
    .into_iter()
    .collect();

    let mut writes = Vec::with_capacity(due.len());
    let mut news = Vec::new();
    let mut fired: Vec<(usize, Fire)> = Vec::new();
    for t in &due {
        let Some(w) = workflows.get(&t.workflow) else {
            tracing::warn!(trigger = t.name(), workflow = %t.workflow, "a due trigger's workflow is gone; it stops");
            writes.push(t.without_workflow(now));
            continue;
        };
        let running = unfinished.get(t.name()).map_or(&[][..], Vec::as_slice);
        let plan = t.tick(now, w.paused, running.len() as u64);
        if plan.cancel_unfinished {
            for id in running {
                transition(tx, ExecutionId::from_uuid(*id), now, Command::Cancel).await?;
                out.cancelled += 1;
            }
        }
        let built = scheduled_executions(t, &plan.start, &w.version, now).map_err(StoreError::Unexpected)?;
        fired.extend(plan.start.iter().map(|f| (writes.len(), *f)));
        news.extend(built);
        out.counts = out.counts.plus(&plan.counts);
        writes.push(plan.trigger);
    }
    let (stored, readied) = create_fired(tx, &news).await?;
    let stored: std::collections::HashSet<ExecutionId> = stored.into_iter().collect();
    for ((at, fire), new) in fired.iter().zip(&news) {
        if stored.contains(&new.id) {
            out.started.push(StartedFire::new(&writes[*at], new.id, fire, now));
        }
    }
    let next = write_back(tx, &writes).await?;
    Ok((readied, next))
}

/// The due triggers' workflows that exist, with their versions in force (locked against a
/// concurrent delete until the pass commits), each version read once.
async fn in_force(tx: &mut PgConnection, due: &[TriggerRecord]) -> Result<HashMap<String, InForce>, StoreError> {
    let mut names: Vec<&str> = due.iter().map(|t| t.workflow.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    let rows: Vec<(String, bool, String, String, Uuid, String)> = sqlx::query_as(
        "SELECT w.name, w.paused, w.package_name, w.version, p.id, p.manifest
         FROM workflows w JOIN packages p ON p.name = w.package_name AND p.version = w.version
         WHERE w.name = ANY($1) FOR SHARE OF p",
    )
    .bind(&names)
    .fetch_all(&mut *tx)
    .await
    .map_err(translate)?;
    let mut versions: HashMap<(String, String), StoredVersion> = HashMap::new();
    let mut found = HashMap::with_capacity(rows.len());
    for (name, paused, package, version, package_id, manifest) in rows {
        let key = (package, version);
        let stored = match versions.get(&key) {
            Some(v) => v.clone(),
            None => {
                let v = StoredVersion::read(&key.0, package_id, &key.1, &manifest).map_err(StoreError::Unexpected)?;
                versions.insert(key, v.clone());
                v
            }
        };
        found.insert(name, InForce { paused, version: stored });
    }
    Ok(found)
}

/// Writes back what a pass changes of each trigger, in one statement that also gives the
/// tenant's least due time after it (the rows it did not write, as they are; those it wrote, as
/// written).
async fn write_back(tx: &mut PgConnection, writes: &[TriggerRecord]) -> Result<Option<DateTime<Utc>>, StoreError> {
    let names: Vec<&str> = writes.iter().map(TriggerRecord::name).collect();
    let times = |f: fn(&TriggerRecord) -> Option<DateTime<Utc>>| writes.iter().map(f).collect::<Vec<_>>();
    let counts = |f: fn(&TriggerRecord) -> u64| writes.iter().map(|t| n(f(t))).collect::<Vec<i64>>();
    let updated: Vec<DateTime<Utc>> = writes.iter().map(|t| t.updated_at).collect();
    sqlx::query_scalar(
        "WITH written AS (
             UPDATE triggers t SET next_fire_at = x.next_fire_at, last_fire_at = x.last_fire_at,
                 buffered_at = x.buffered_at, due_at = x.due_at, fired = x.fired, caught_up = x.caught_up,
                 skipped_overlap = x.skipped_overlap, skipped_paused = x.skipped_paused,
                 skipped_catchup = x.skipped_catchup, missed = x.missed, updated_at = x.updated_at
             FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[], $4::timestamptz[], $5::timestamptz[],
                         $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[], $11::bigint[],
                         $12::timestamptz[])
                  AS x(name, next_fire_at, last_fire_at, buffered_at, due_at, fired, caught_up, skipped_overlap,
                       skipped_paused, skipped_catchup, missed, updated_at)
             WHERE t.name = x.name
             RETURNING t.due_at)
         SELECT least((SELECT min(due_at) FROM triggers WHERE name <> ALL($1)), (SELECT min(due_at) FROM written))",
    )
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
    .map_err(translate)
}
