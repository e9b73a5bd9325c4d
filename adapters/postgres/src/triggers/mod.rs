//! Triggers on PostgreSQL: the rows in each tenant's schema, putting a version's triggers in
//! force, and the scheduler's passes (docs/triggers.md). A pass locks due rows `FOR UPDATE
//! SKIP LOCKED`, so replicas share the work and never decide one trigger twice at once; the
//! domain decides (`TriggerRecord::tick`, `sync_triggers`), these files load and write (the
//! pass itself in [`pass`]).
//! `public.trigger_due` holds each tenant's earliest due time, kept like `tenant_work`.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cloacina_domain::TenantName;
use cloacina_domain::package::PackageConflict;
use cloacina_domain::ports::{DueWork, FirePass, Lookup, StoreError, TriggerPage, TriggerStore};
use cloacina_domain::trigger::{FireCounts, TriggerDef, TriggerRecord, TriggerSync, declared_triggers, sync_triggers};
use cloacina_domain::workflow::WorkflowRow;
use serde_json::{Map, Value};
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::{AssertSqlSafe, PgConnection, Row};

use crate::PgDb;
use crate::db::translate;
use crate::executions::queue::{DueTable, wake_in};

pub(crate) mod pass;
mod statements;

/// The channel a change to a tenant's triggers is announced on.
pub const TRIGGER_CHANNEL: &str = "cloacina_triggers";

const COLUMNS: &str = "name, workflow, package_name, cron, timezone, catchup, catchup_window_ms, overlap, context, \
    paused, paused_at, next_fire_at, last_fire_at, buffered_at, fired, caught_up, skipped_overlap, skipped_paused, \
    skipped_catchup, missed, created_at, updated_at";

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Bad(String);

fn count(row: &PgRow, col: usize) -> Result<u64, sqlx::Error> {
    Ok(row.try_get::<i64, _>(col)?.unsigned_abs())
}

fn trigger(row: &PgRow) -> Result<TriggerRecord, sqlx::Error> {
    let text = |col: usize| row.try_get::<String, _>(col);
    let context: Json<Map<String, Value>> = row.try_get(8)?;
    let def = TriggerDef::from_stored(&text(0)?, &text(3)?, &text(4)?, &text(5)?, count(row, 6)?, &text(7)?, context.0)
        .map_err(|e| sqlx::Error::Decode(Box::new(Bad(e))))?;
    Ok(TriggerRecord {
        def,
        workflow: text(1)?,
        package_name: text(2)?,
        paused: row.try_get(9)?,
        paused_at: row.try_get(10)?,
        next_fire_at: row.try_get(11)?,
        last_fire_at: row.try_get(12)?,
        buffered_at: row.try_get(13)?,
        counts: FireCounts {
            fired: count(row, 14)?,
            caught_up: count(row, 15)?,
            skipped_overlap: count(row, 16)?,
            skipped_paused: count(row, 17)?,
            skipped_catchup: count(row, 18)?,
            missed: count(row, 19)?,
        },
        created_at: row.try_get(20)?,
        updated_at: row.try_get(21)?,
    })
}

fn n(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Writes a whole trigger row (insert, or update by name).
async fn write(tx: &mut PgConnection, t: &TriggerRecord) -> Result<(), StoreError> {
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO triggers ({COLUMNS}, due_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23)
         ON CONFLICT (name) DO UPDATE SET workflow = excluded.workflow, package_name = excluded.package_name,
             cron = excluded.cron, timezone = excluded.timezone, catchup = excluded.catchup,
             catchup_window_ms = excluded.catchup_window_ms, overlap = excluded.overlap, context = excluded.context,
             paused = excluded.paused, paused_at = excluded.paused_at, next_fire_at = excluded.next_fire_at,
             last_fire_at = excluded.last_fire_at, buffered_at = excluded.buffered_at, fired = excluded.fired,
             caught_up = excluded.caught_up, skipped_overlap = excluded.skipped_overlap,
             skipped_paused = excluded.skipped_paused, skipped_catchup = excluded.skipped_catchup,
             missed = excluded.missed, updated_at = excluded.updated_at, due_at = excluded.due_at"
    )))
    .bind(t.name())
    .bind(&t.workflow)
    .bind(&t.package_name)
    .bind(t.def.cron.as_str())
    .bind(t.def.timezone.name())
    .bind(t.def.catchup.as_str())
    .bind(n(t.def.catchup_window_ms()))
    .bind(t.def.overlap.as_str())
    .bind(Json(&t.def.context))
    .bind(t.paused)
    .bind(t.paused_at)
    .bind(t.next_fire_at)
    .bind(t.last_fire_at)
    .bind(t.buffered_at)
    .bind(n(t.counts.fired))
    .bind(n(t.counts.caught_up))
    .bind(n(t.counts.skipped_overlap))
    .bind(n(t.counts.skipped_paused))
    .bind(n(t.counts.skipped_catchup))
    .bind(n(t.counts.missed))
    .bind(t.created_at)
    .bind(t.updated_at)
    .bind(t.due_at())
    .execute(&mut *tx)
    .await
    .map_err(translate)
    .map(drop)
}

/// Puts in force the triggers `workflows` (going in force for `package`) declare, as the
/// domain's [`sync_triggers`] decides: the refusal when `strict` and a name is another
/// package's (the caller then rolls back). Returns the earliest due time written, for the
/// caller's wake-up at the end of its transaction.
pub(crate) async fn put_in_force(
    tx: &mut PgConnection,
    package: &str,
    workflows: &[&WorkflowRow],
    now: DateTime<Utc>,
    strict: bool,
) -> Result<Result<Option<DateTime<Utc>>, PackageConflict>, StoreError> {
    let declared = declared_triggers(workflows);
    let names: Vec<String> = declared.iter().map(|(_, d)| d.name.to_string()).collect();
    let rows = sqlx::query(AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM triggers WHERE package_name = $1 OR name = ANY($2) FOR UPDATE"
    )))
    .bind(package)
    .bind(&names)
    .fetch_all(&mut *tx)
    .await
    .map_err(translate)?;
    let stored = rows.iter().map(trigger).collect::<Result<Vec<_>, _>>().map_err(translate)?;
    let sync: TriggerSync = match sync_triggers(package, &declared, &stored, now, strict) {
        Ok(sync) => sync,
        Err(refused) => return Ok(Err(refused)),
    };
    if !sync.delete.is_empty() {
        sqlx::query("DELETE FROM triggers WHERE name = ANY($1)")
            .bind(&sync.delete)
            .execute(&mut *tx)
            .await
            .map_err(translate)?;
    }
    for t in &sync.writes {
        write(tx, t).await?;
    }
    Ok(Ok(sync.writes.iter().filter_map(TriggerRecord::due_at).min()))
}

/// The end of a transaction that changed a tenant's triggers: as the login role again, lowers
/// the tenant's trigger due time to `due` and wakes every scheduler. Must come last.
pub(crate) async fn wake_schedulers(
    tx: &mut PgConnection,
    tenant: &TenantName,
    due: DateTime<Utc>,
) -> Result<(), StoreError> {
    wake_in(tx, DueTable::Triggers, tenant, due).await
}

async fn find(tx: &mut PgConnection, name: &str, lock: bool) -> Result<Option<TriggerRecord>, StoreError> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    let row = sqlx::query(AssertSqlSafe(format!("SELECT {COLUMNS} FROM triggers WHERE name = $1{lock}")))
        .bind(name)
        .fetch_optional(&mut *tx)
        .await
        .map_err(translate)?;
    row.map(|r| trigger(&r)).transpose().map_err(translate)
}

#[async_trait]
impl TriggerStore for PgDb {
    async fn list_triggers(
        &self,
        tenant: &TenantName,
        limit: u32,
        offset: u64,
    ) -> Result<Option<TriggerPage>, StoreError> {
        let Some(mut tx) = self.begin_tenant(tenant).await? else { return Ok(None) };
        let total: i64 =
            sqlx::query_scalar("SELECT count(*) FROM triggers").fetch_one(&mut *tx).await.map_err(translate)?;
        let rows =
            sqlx::query(AssertSqlSafe(format!("SELECT {COLUMNS} FROM triggers ORDER BY name LIMIT $1 OFFSET $2")))
                .bind(i64::from(limit))
                .bind(n(offset))
                .fetch_all(&mut *tx)
                .await
                .map_err(translate)?;
        let items = rows.iter().map(trigger).collect::<Result<_, _>>().map_err(translate)?;
        tx.commit().await.map_err(translate)?;
        Ok(Some(TriggerPage { items, total: total.unsigned_abs() }))
    }

    async fn get_trigger(&self, tenant: &TenantName, name: &str) -> Result<Lookup<TriggerRecord>, StoreError> {
        let Some(mut tx) = self.begin_tenant(tenant).await? else { return Ok(Lookup::NoTenant) };
        let found = find(&mut tx, name, false).await?;
        tx.commit().await.map_err(translate)?;
        Ok(Lookup::from_option(found))
    }

    async fn set_trigger_paused(
        &self,
        tenant: &TenantName,
        name: &str,
        paused: bool,
        at: DateTime<Utc>,
        audit: &cloacina_domain::audit::AuditEntry,
    ) -> Result<Lookup<TriggerRecord>, StoreError> {
        let Some(mut tx) = self.begin_tenant(tenant).await? else { return Ok(Lookup::NoTenant) };
        let Some(mut t) = find(&mut tx, name, true).await? else { return Ok(Lookup::Missing) };
        t.set_paused(paused, at);
        write(&mut tx, &t).await?;
        crate::audit::append(&mut tx, audit).await?;
        if let Some(due) = t.due_at() {
            wake_schedulers(&mut tx, tenant, due).await?;
        }
        tx.commit().await.map_err(translate)?;
        Ok(Lookup::Found(t))
    }

    async fn due_trigger_tenants(&self, now: DateTime<Utc>) -> Result<DueWork, StoreError> {
        let rows: Vec<(Option<String>, Option<DateTime<Utc>>)> = sqlx::query_as(
            "(SELECT tenant, due_at FROM public.trigger_due WHERE due_at <= $1 ORDER BY due_at LIMIT 10000)
             UNION ALL (SELECT NULL, min(due_at) FROM public.trigger_due WHERE due_at > $1)",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .map_err(translate)?;
        let mut due = DueWork::default();
        for row in rows {
            match row {
                (Some(tenant), _) => due.tenants.extend(TenantName::parse(&tenant).ok()),
                (None, next) => due.next = next,
            }
        }
        Ok(due)
    }

    async fn fire_due(
        &self,
        tenant: &TenantName,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Option<FirePass>, StoreError> {
        pass::fire_due(self, tenant, now, limit).await
    }

    async fn wait_for_triggers(&self, max: Duration) {
        let _ = tokio::time::timeout(max, self.triggers.notified()).await;
    }

    fn pass_lane(&self, tenant: &TenantName) -> usize {
        self.lanes.lane_of(tenant)
    }
}
