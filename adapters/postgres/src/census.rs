//! The executions census on PostgreSQL (`ports/src/census.rs`): each tenant's executions by
//! status and its tasks ready and running, in one statement on the tenant's lane (`lanes`),
//! so the statement's plan is kept from one census to the next. On a connection that enters
//! each tenant by its `search_path`, the census planned its statement again for every tenant,
//! every time: about a millisecond of the database's time a tenant (docs/benchmarks.md, B11).

use async_trait::async_trait;
use cloacina_domain::TenantName;
use cloacina_domain::ports::{CensusStore, StoreError, TenantCensus, TenantStore};
use sqlx::postgres::PgRow;
use sqlx::{AssertSqlSafe, Connection, Row};

use crate::PgDb;
use crate::db::{ident, translate};
use crate::lanes::LaneError;

#[async_trait]
impl CensusStore for PgDb {
    /// One transaction per tenant, as its role: run when metrics are scraped, never on its own.
    async fn census(&self) -> Result<Vec<TenantCensus>, StoreError> {
        let mut all = Vec::new();
        for t in self.list_tenants().await? {
            let Some(rows) = count(self, &t.name).await? else { continue };
            let mut c = TenantCensus { tenant: t.name.to_string(), ..Default::default() };
            for row in rows {
                let kind: String = row.try_get(0).map_err(translate)?;
                let status: String = row.try_get(1).map_err(translate)?;
                let n: i64 = row.try_get(2).map_err(translate)?;
                let list = if kind == "e" { &mut c.executions } else { &mut c.tasks };
                list.push((status, n.unsigned_abs()));
            }
            all.push(c);
        }
        Ok(all)
    }
}

/// One tenant's counts; `None` if the tenant is gone.
async fn count(db: &PgDb, tenant: &TenantName) -> Result<Option<Vec<PgRow>>, StoreError> {
    let Some(place) = db.place(tenant).await? else { return Ok(None) };
    let mut lane = db.lanes.acquire_when_quiet(tenant).await.map_err(LaneError::into_store)?;
    let mut tx = lane.conn().begin().await.map_err(translate)?;
    let entered = sqlx::query("SELECT set_config('role', $1, true)").bind(&place.role).execute(&mut *tx).await;
    if let Err(e) = entered {
        return db.forget_if_gone(tenant, e).map(|()| None);
    }
    let s = ident(&place.schema);
    let sql = format!(
        "SELECT 'e'::text, status, count(*) FROM {s}.executions GROUP BY status
         UNION ALL
         SELECT 't'::text, status, count(*) FROM {s}.execution_tasks WHERE status IN ('ready', 'running') GROUP BY status"
    );
    let rows = sqlx::query(AssertSqlSafe(sql)).fetch_all(&mut *tx).await.map_err(translate)?;
    tx.commit().await.map_err(translate)?;
    lane.keep();
    Ok(Some(rows))
}
