//! Triggers on SQLite: the rows, putting a version's triggers in force, and the scheduler's
//! passes (docs/triggers.md). Every decision is the domain's (`TriggerRecord::tick`,
//! `sync_triggers`); this file loads, locks (the one writer) and writes.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cloacina_domain::TenantName;
use cloacina_domain::execution::{Command, ExecutionCreated, ExecutionId};
use cloacina_domain::package::PackageConflict;
use cloacina_domain::ports::{DueWork, FirePass, Lookup, StartedFire, StoreError, TriggerPage, TriggerStore};
use cloacina_domain::trigger::{
    FireCounts, StoredVersion, TriggerDef, TriggerRecord, TriggerSync, declared_triggers, scheduled_executions,
    sync_triggers,
};
use cloacina_domain::workflow::WorkflowRow;
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};
use serde_json::Value;

use crate::SqliteDb;
use crate::db::translate;
use crate::executions::changes::transition_in;
use crate::executions::create::create_in;
use crate::executions::rows::{Bad, conv, object, required_time, time};
use crate::keys::ts;

const COLUMNS: &str = "name, workflow, package_name, cron, timezone, catchup, catchup_window_ms, overlap, context, \
    paused, paused_at, next_fire_at, last_fire_at, buffered_at, fired, caught_up, skipped_overlap, skipped_paused, \
    skipped_catchup, missed, created_at, updated_at";

fn count(row: &Row<'_>, col: usize) -> rusqlite::Result<u64> {
    Ok(row.get::<_, i64>(col)?.unsigned_abs())
}

fn trigger(row: &Row<'_>) -> rusqlite::Result<TriggerRecord> {
    let text = |col: usize| row.get::<_, String>(col);
    let def = TriggerDef::from_stored(
        &text(0)?,
        &text(3)?,
        &text(4)?,
        &text(5)?,
        count(row, 6)?,
        &text(7)?,
        object(row, 8)?.unwrap_or_default(),
    )
    .map_err(|e| conv(3, Bad(e)))?;
    Ok(TriggerRecord {
        def,
        workflow: text(1)?,
        package_name: text(2)?,
        paused: row.get(9)?,
        paused_at: time(row, 10)?,
        next_fire_at: time(row, 11)?,
        last_fire_at: time(row, 12)?,
        buffered_at: time(row, 13)?,
        counts: FireCounts {
            fired: count(row, 14)?,
            caught_up: count(row, 15)?,
            skipped_overlap: count(row, 16)?,
            skipped_paused: count(row, 17)?,
            skipped_catchup: count(row, 18)?,
            missed: count(row, 19)?,
        },
        created_at: required_time(row, 20)?,
        updated_at: required_time(row, 21)?,
    })
}

fn n(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Writes a whole trigger row (insert or replace by name).
fn write(conn: &Connection, t: &TriggerRecord) -> rusqlite::Result<()> {
    conn.prepare_cached(&format!(
        "INSERT INTO triggers ({COLUMNS}, due_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23)
         ON CONFLICT (name) DO UPDATE SET workflow = excluded.workflow, package_name = excluded.package_name,
             cron = excluded.cron, timezone = excluded.timezone, catchup = excluded.catchup,
             catchup_window_ms = excluded.catchup_window_ms, overlap = excluded.overlap, context = excluded.context,
             paused = excluded.paused, paused_at = excluded.paused_at, next_fire_at = excluded.next_fire_at,
             last_fire_at = excluded.last_fire_at, buffered_at = excluded.buffered_at, fired = excluded.fired,
             caught_up = excluded.caught_up, skipped_overlap = excluded.skipped_overlap,
             skipped_paused = excluded.skipped_paused, skipped_catchup = excluded.skipped_catchup,
             missed = excluded.missed, updated_at = excluded.updated_at, due_at = excluded.due_at"
    ))?
    .execute(params![
        t.name(),
        t.workflow,
        t.package_name,
        t.def.cron.as_str(),
        t.def.timezone.name(),
        t.def.catchup.as_str(),
        n(t.def.catchup_window_ms()),
        t.def.overlap.as_str(),
        Value::Object(t.def.context.clone()).to_string(),
        t.paused,
        t.paused_at.map(ts),
        t.next_fire_at.map(ts),
        t.last_fire_at.map(ts),
        t.buffered_at.map(ts),
        n(t.counts.fired),
        n(t.counts.caught_up),
        n(t.counts.skipped_overlap),
        n(t.counts.skipped_paused),
        n(t.counts.skipped_catchup),
        n(t.counts.missed),
        ts(t.created_at),
        ts(t.updated_at),
        t.due_at().map(ts),
    ])
    .map(drop)
}

/// Puts in force the triggers `workflows` (going in force for `package`) declare, as the
/// domain's [`sync_triggers`] decides: the refusal when `strict` and a name is another
/// package's (the caller then rolls back).
pub(crate) fn put_in_force(
    conn: &Connection,
    package: &str,
    workflows: &[&WorkflowRow],
    now: DateTime<Utc>,
    strict: bool,
) -> Result<Result<(), PackageConflict>, StoreError> {
    let declared = declared_triggers(workflows);
    let names: Vec<String> = declared.iter().map(|(_, d)| d.name.to_string()).collect();
    let stored = stored_for(conn, package, &names).map_err(translate)?;
    match sync_triggers(package, &declared, &stored, now, strict) {
        Ok(sync) => apply_sync(conn, &sync).map(Ok).map_err(translate),
        Err(refused) => Ok(Err(refused)),
    }
}

/// The stored triggers a sync for `package` must see: the package's own and any bearing
/// one of `names`.
fn stored_for(conn: &Connection, package: &str, names: &[String]) -> rusqlite::Result<Vec<TriggerRecord>> {
    let names = serde_json::to_string(names).unwrap_or_else(|_| "[]".into());
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM triggers WHERE package_name = ?1 OR name IN (SELECT value FROM json_each(?2))"
    ))?
    .query_map(params![package, names], trigger)?
    .collect()
}

/// Applies what the domain decided when workflows went in force.
fn apply_sync(conn: &Connection, sync: &TriggerSync) -> rusqlite::Result<()> {
    for name in &sync.delete {
        conn.execute("DELETE FROM triggers WHERE name = ?1", [name])?;
    }
    for t in &sync.writes {
        write(conn, t)?;
    }
    Ok(())
}

fn find(conn: &Connection, name: &str) -> rusqlite::Result<Option<TriggerRecord>> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM triggers WHERE name = ?1"))?
        .query_row([name], trigger)
        .optional()
}

/// One pass over the due triggers, in one transaction.
fn pass(conn: &mut Connection, now: DateTime<Utc>, limit: usize) -> Result<(FirePass, bool), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(translate)?;
    let due: Vec<TriggerRecord> = tx
        .prepare_cached(&format!("SELECT {COLUMNS} FROM triggers WHERE due_at <= ?1 ORDER BY due_at LIMIT ?2"))
        .and_then(|mut s| s.query_map(params![ts(now), n(limit as u64)], trigger)?.collect())
        .map_err(translate)?;
    let mut out = FirePass { triggers: due.len(), ..FirePass::default() };
    let mut readied = false;
    // Each package version read once per pass, however many of its triggers fire.
    let mut versions: HashMap<(String, String), StoredVersion> = HashMap::new();
    for t in due {
        let workflow: Option<(bool, String, String)> = tx
            .query_row("SELECT paused, package_name, version FROM workflows WHERE name = ?1", [&t.workflow], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()
            .map_err(translate)?;
        let Some((paused, package, version)) = workflow else {
            tracing::warn!(trigger = t.name(), workflow = %t.workflow, "a due trigger's workflow is gone; it stops");
            write(&tx, &t.without_workflow(now)).map_err(translate)?;
            continue;
        };
        let unfinished: Vec<String> = tx
            .prepare_cached("SELECT id FROM executions WHERE trigger = ?1 AND status IN ('pending', 'running')")
            .and_then(|mut s| s.query_map([t.name()], |r| r.get(0))?.collect())
            .map_err(translate)?;
        let plan = t.tick(now, paused, unfinished.len() as u64);
        if plan.cancel_unfinished {
            for id in &unfinished {
                let id: ExecutionId =
                    id.parse().map_err(|e| StoreError::Unexpected(format!("bad execution id: {e}")))?;
                transition_in(&tx, id, now, Command::Cancel)?;
                out.cancelled += 1;
            }
        }
        if !plan.start.is_empty() {
            let key = (package, version);
            if !versions.contains_key(&key) {
                let (package_id, manifest): (String, String) = tx
                    .query_row(
                        "SELECT id, manifest FROM packages WHERE name = ?1 AND version = ?2",
                        params![key.0, key.1],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .map_err(translate)?;
                let package_id =
                    package_id.parse().map_err(|e| StoreError::Unexpected(format!("bad package id: {e}")))?;
                let stored =
                    StoredVersion::read(&key.0, package_id, &key.1, &manifest).map_err(StoreError::Unexpected)?;
                versions.insert(key.clone(), stored);
            }
            let news = scheduled_executions(&t, &plan.start, &versions[&key], now).map_err(StoreError::Unexpected)?;
            for (fire, new) in plan.start.iter().zip(&news) {
                if let (ExecutionCreated::Created(e), r) = create_in(&tx, new)? {
                    readied |= r;
                    out.started.push(StartedFire::new(&t, e.id, fire, now));
                }
            }
        }
        out.counts = out.counts.plus(&plan.counts);
        write(&tx, &plan.trigger).map_err(translate)?;
    }
    tx.commit().map_err(translate)?;
    Ok((out, readied))
}

#[async_trait]
impl TriggerStore for SqliteDb {
    async fn list_triggers(
        &self,
        tenant: &TenantName,
        limit: u32,
        offset: u64,
    ) -> Result<Option<TriggerPage>, StoreError> {
        if !tenant.is_public() {
            return Ok(None);
        }
        self.read(move |conn| {
            let total: i64 = conn.query_row("SELECT count(*) FROM triggers", [], |r| r.get(0))?;
            let items = conn
                .prepare_cached(&format!("SELECT {COLUMNS} FROM triggers ORDER BY name LIMIT ?1 OFFSET ?2"))?
                .query_map(params![i64::from(limit), n(offset)], trigger)?
                .collect::<Result<_, _>>()?;
            Ok(Some(TriggerPage { items, total: total.unsigned_abs() }))
        })
        .await
    }

    async fn get_trigger(&self, tenant: &TenantName, name: &str) -> Result<Lookup<TriggerRecord>, StoreError> {
        if !tenant.is_public() {
            return Ok(Lookup::NoTenant);
        }
        let name = name.to_owned();
        self.read(move |conn| find(conn, &name).map(Lookup::from_option)).await
    }

    async fn set_trigger_paused(
        &self,
        tenant: &TenantName,
        name: &str,
        paused: bool,
        at: DateTime<Utc>,
        audit: &cloacina_domain::audit::AuditEntry,
    ) -> Result<Lookup<TriggerRecord>, StoreError> {
        if !tenant.is_public() {
            return Ok(Lookup::NoTenant);
        }
        let (name, audit) = (name.to_owned(), audit.clone());
        let found = self
            .write_store(move |conn| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(translate)?;
                let Some(mut t) = find(&tx, &name).map_err(translate)? else { return Ok(Lookup::Missing) };
                t.set_paused(paused, at);
                write(&tx, &t).map_err(translate)?;
                crate::audit::append(&tx, &audit).map_err(translate)?;
                tx.commit().map_err(translate)?;
                Ok(Lookup::Found(t))
            })
            .await?;
        self.inner.triggers.notify_one();
        Ok(found)
    }

    async fn due_trigger_tenants(&self, now: DateTime<Utc>) -> Result<DueWork, StoreError> {
        let next: Option<String> = self
            .read(|conn| conn.prepare_cached("SELECT min(due_at) FROM triggers")?.query_row([], |r| r.get(0)))
            .await?;
        let next = next.and_then(|s| DateTime::parse_from_rfc3339(&s).ok()).map(|t| t.with_timezone(&Utc));
        Ok(match next {
            Some(t) if t <= now => DueWork { tenants: vec![TenantName::public()], next: None },
            other => DueWork { tenants: Vec::new(), next: other },
        })
    }

    async fn fire_due(
        &self,
        tenant: &TenantName,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Option<FirePass>, StoreError> {
        if !tenant.is_public() {
            return Ok(None);
        }
        let (pass, readied) = self.write_store(move |conn| pass(conn, now, limit)).await?;
        if readied {
            self.inner.work.notify_one();
        }
        if !pass.started.is_empty() || pass.cancelled > 0 {
            self.inner.bell.ring(tenant);
        }
        Ok(Some(pass))
    }

    async fn wait_for_triggers(&self, max: Duration) {
        let _ = tokio::time::timeout(max, self.inner.triggers.notified()).await;
    }

    /// One writer: every pass is on the one lane.
    fn pass_lane(&self, _tenant: &TenantName) -> usize {
        0
    }
}
