//! The queue's wake-up protocol: `public.tenant_work`, its `seq`, and the claim's first read.

use chrono::{DateTime, Utc};
use cloacina_domain::ports::StoreError;
use cloacina_domain::{TaskNetwork, TenantName};
use sqlx::{AssertSqlSafe, PgConnection, Postgres, Transaction};

use crate::PgDb;
use crate::db::translate;
use crate::tenant_scope::literal;

use super::*;

/// A registry table of per-tenant due times, kept with the same protocol: the engine's
/// (`tenant_work`) or the trigger schedulers' (`trigger_due`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DueTable {
    Work,
    Triggers,
}

impl DueTable {
    fn table(self) -> &'static str {
        match self {
            Self::Work => "public.tenant_work",
            Self::Triggers => "public.trigger_due",
        }
    }

    fn channel(self) -> &'static str {
        match self {
            Self::Work => WORK_CHANNEL,
            Self::Triggers => crate::triggers::TRIGGER_CHANNEL,
        }
    }
}

/// The end of a transaction that readied tasks due at `due`: as the login role again, lowers
/// the tenant's due time, bumps its sequence and wakes the workers. Must come last.
pub(crate) async fn wake(tx: &mut PgConnection, tenant: &TenantName, due: DateTime<Utc>) -> Result<(), StoreError> {
    wake_in(tx, DueTable::Work, tenant, due).await
}

/// [`wake`] for either table.
pub(crate) async fn wake_in(
    tx: &mut PgConnection,
    table: DueTable,
    tenant: &TenantName,
    due: DateTime<Utc>,
) -> Result<(), StoreError> {
    // One round trip: the literals are a validated tenant name and a time we format.
    let sql = format!("SET LOCAL ROLE NONE; {}", wake_sql(table, tenant, due));
    sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut *tx).await.map_err(translate)?;
    Ok(())
}

/// [`wake_in`]'s statements, to run as the login role.
pub(crate) fn wake_sql(table: DueTable, tenant: &TenantName, due: DateTime<Utc>) -> String {
    let t = literal(tenant.as_str());
    format!(
        "INSERT INTO {table} AS d (tenant, due_at) VALUES ({t}, {due})
         ON CONFLICT (tenant) DO UPDATE SET due_at = least(d.due_at, excluded.due_at), seq = d.seq + 1;
         SELECT pg_notify({channel}, {t});",
        table = table.table(),
        due = time_literal(due),
        channel = literal(table.channel()),
    )
}

/// A `timestamptz` literal.
pub(crate) fn time_literal(at: DateTime<Utc>) -> String {
    format!("'{}'::timestamptz", at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
}

/// [`settle_sql`] of `table`, [`wake_sql`] of the engine and the events bell as one statement
/// with parameters, for connections that keep their plans (the trigger lanes prepare it once
/// per session, `crate::triggers::pass::session_statements`): on a pooled connection the
/// literal forms are planned afresh each time anyway. Settles the tenant's (`$1`) row read at
/// sequence `$2` to `$3`, wakes the engine at `$4` if given, rings the events bell if `$5`.
/// Must run as the login role, last.
pub(crate) fn settle_statement(table: DueTable) -> String {
    format!(
        "WITH settled AS (
             UPDATE {t} SET due_at = $3 WHERE tenant = $1 AND seq = $2 AND $3::timestamptz IS NOT NULL RETURNING 1),
         cleared AS (
             DELETE FROM {t} WHERE tenant = $1 AND seq = $2 AND $3::timestamptz IS NULL RETURNING 1),
         raised AS (
             INSERT INTO {t} AS d (tenant, due_at) SELECT $1, $3 WHERE $2::bigint IS NULL AND $3::timestamptz IS NOT NULL
             ON CONFLICT (tenant) DO UPDATE SET due_at = least(d.due_at, excluded.due_at), seq = d.seq + 1
             RETURNING 1),
         woken AS (
             INSERT INTO {work} AS d (tenant, due_at) SELECT $1, $4 WHERE $4::timestamptz IS NOT NULL
             ON CONFLICT (tenant) DO UPDATE SET due_at = least(d.due_at, excluded.due_at), seq = d.seq + 1
             RETURNING 1)
         SELECT (SELECT count(*) FROM settled), (SELECT count(*) FROM cleared), (SELECT count(*) FROM raised),
                (SELECT count(*) FROM woken),
                (SELECT count(*) FROM (SELECT pg_notify({work_channel}, $1) WHERE $4::timestamptz IS NOT NULL) n),
                (SELECT count(*) FROM (SELECT pg_notify({bell}, $1) WHERE $5) b)",
        t = table.table(),
        work = DueTable::Work.table(),
        work_channel = literal(DueTable::Work.channel()),
        bell = literal(crate::listen::EVENTS_CHANNEL),
    )
}

impl PgDb {
    /// Begins a tenant transaction that first reads the tenant's `tenant_work` sequence (as
    /// the login role). `None` if there is no such tenant.
    pub(super) async fn begin_claim(&self, tenant: &TenantName) -> Result<Option<ClaimStart>, StoreError> {
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
pub(super) struct ClaimStart {
    pub(super) tx: Transaction<'static, Postgres>,
    pub(super) seq: Option<i64>,
    pub(super) network: Option<TaskNetwork>,
}

/// The tenant's next due time: its earliest ready task or running task's lease expiry.
pub(super) async fn next_due(tx: &mut PgConnection) -> Result<Option<DateTime<Utc>>, StoreError> {
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
pub(crate) async fn settle_due(
    tx: &mut PgConnection,
    table: DueTable,
    tenant: &TenantName,
    seq: Option<i64>,
    due: Option<DateTime<Utc>>,
) -> Result<(), StoreError> {
    let Some(change) = settle_sql(table, tenant, seq, due) else { return Ok(()) };
    // One round trip, as the login role again.
    sqlx::raw_sql(AssertSqlSafe(format!("SET LOCAL ROLE NONE; {change}")))
        .execute(&mut *tx)
        .await
        .map_err(translate)?;
    Ok(())
}

/// [`settle_due`]'s statement, to run as the login role; `None` if there is nothing to do.
pub(crate) fn settle_sql(
    table: DueTable,
    tenant: &TenantName,
    seq: Option<i64>,
    due: Option<DateTime<Utc>>,
) -> Option<String> {
    let t = literal(tenant.as_str());
    let table = table.table();
    Some(match (seq, due) {
        (Some(seq), None) => format!("DELETE FROM {table} WHERE tenant = {t} AND seq = {seq};"),
        (Some(seq), Some(due)) => {
            format!("UPDATE {table} SET due_at = {} WHERE tenant = {t} AND seq = {seq};", time_literal(due))
        }
        (None, Some(due)) => format!(
            "INSERT INTO {table} AS d (tenant, due_at) VALUES ({t}, {})
             ON CONFLICT (tenant) DO UPDATE SET due_at = least(d.due_at, excluded.due_at), seq = d.seq + 1;",
            time_literal(due)
        ),
        (None, None) => return None,
    })
}
