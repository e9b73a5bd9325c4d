//! Entering a tenant on PostgreSQL: where it lives (cached, forgotten on every tenant
//! notification), and transactions and one-round-trip reads that run as its role in its
//! schema (docs/postgres.md).

use cloacina_domain::TenantName;
use cloacina_domain::ports::StoreError;
use sqlx::postgres::PgRow;
use sqlx::{AssertSqlSafe, PgConnection, Postgres, Transaction};

use crate::PgDb;
use crate::db::{TenantPlace, ident, sqlstate, translate};
use crate::reads::ReadError;

/// Makes the rest of the current transaction run as the tenant's role, in its schema.
pub(crate) async fn enter_tenant(conn: &mut PgConnection, schema: &str, role: &str) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT set_config('role', $1, true), set_config('search_path', $2, true)")
        .bind(role)
        .bind(ident(schema))
        .execute(conn)
        .await
        .map(drop)
}

impl PgDb {
    /// Where a tenant lives, from the cache or the registry. `None` if there is no such tenant.
    pub(crate) async fn place(&self, tenant: &TenantName) -> Result<Option<TenantPlace>, StoreError> {
        if let Some(place) = self.cached_place(tenant) {
            return Ok(Some(place));
        }
        let row: Option<(String, String)> =
            sqlx::query_as("SELECT schema_name, db_role FROM tenants WHERE name = $1 AND status = 'active'")
                .bind(tenant.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(translate)?;
        Ok(row.map(|(schema, role)| self.remember_place(tenant.clone(), schema, role)))
    }

    /// Begins a transaction that runs as `tenant`'s database role with `search_path` set to
    /// its schema (one round trip: `BEGIN` and the two settings travel together). `None` if
    /// there is no such tenant.
    ///
    /// # Errors
    /// The store error if the database cannot be reached.
    pub async fn begin_tenant(
        &self,
        tenant: &TenantName,
    ) -> Result<Option<Transaction<'static, Postgres>>, StoreError> {
        let Some(place) = self.place(tenant).await? else { return Ok(None) };
        // Two round trips, not one `BEGIN; enter` statement: when entering fails (the tenant's
        // role was just dropped), the transaction must be one sqlx knows it holds, so that
        // dropping it rolls it back. A failed custom BEGIN statement would go back to the pool
        // inside an aborted transaction, and fail whatever request took it next.
        let mut tx = self.pool.begin().await.map_err(translate)?;
        match sqlx::raw_sql(AssertSqlSafe(enter_sql(&place))).execute(&mut *tx).await {
            Ok(_) => Ok(Some(tx)),
            Err(e) => self.forget_if_gone(tenant, e).map(|()| None),
        }
    }

    /// Runs one read-only `select` without parameters as `tenant`'s role in its schema: one
    /// round trip of a prepared statement on a connection bound to the tenant (`reads`).
    /// `None` if there is no such tenant.
    ///
    /// A connection that fails is closed, and the read is tried once more on another, bound
    /// afresh from the registry: a tenant deleted and re-created elsewhere since we bound the
    /// connection has a new role of the same name.
    ///
    /// # Errors
    /// The store error if the database cannot be reached or the query fails.
    pub async fn tenant_read(
        &self,
        tenant: &TenantName,
        select: &'static str,
    ) -> Result<Option<Vec<PgRow>>, StoreError> {
        let mut retried = false;
        loop {
            let Some(place) = self.place(tenant).await? else { return Ok(None) };
            let e = match self.reads.fetch_all(&place, select).await {
                Ok(rows) => return Ok(Some(rows)),
                Err(ReadError::Busy) => {
                    return Err(StoreError::Unavailable(
                        "no connection for a tenant read within the connect timeout".into(),
                    ));
                }
                // The role or the schema is gone: so is the tenant.
                Err(ReadError::Bind(e)) if is_gone(&e) => {
                    self.forget_place(tenant);
                    return Ok(None);
                }
                Err(ReadError::Bind(e) | ReadError::Query(e)) => e,
            };
            if retried {
                return Err(translate(e));
            }
            // A failure is rare and may be the database restarting, which leaves every idle
            // connection dead: close them all, and bind a fresh one from the registry.
            tracing::debug!(%tenant, error = %e, "a tenant read failed; trying once more on a new connection");
            self.reads.close_idle();
            self.forget_place(tenant);
            retried = true;
        }
    }

    /// A tenant deleted (by another replica) since we cached where it lives shows up as a
    /// role that no longer exists: forget the place, and report the tenant gone.
    pub(crate) fn forget_if_gone(&self, tenant: &TenantName, e: sqlx::Error) -> Result<(), StoreError> {
        if is_gone(&e) {
            self.forget_place(tenant);
            self.lanes.forget(tenant);
            Ok(())
        } else {
            Err(translate(e))
        }
    }
}

/// Whether entering a tenant failed because its role or its schema no longer exists.
fn is_gone(e: &sqlx::Error) -> bool {
    matches!(sqlstate(e).as_deref(), Some("22023" | "42704" | "3F000"))
}

/// The statement that makes the rest of a transaction run as the tenant. Simple-protocol
/// text, so no bind parameters: the names are literals, generated by us from validated tenant
/// names (`[a-z0-9_-]`), and quoted regardless.
fn enter_sql(place: &TenantPlace) -> String {
    format!(
        "SELECT set_config('role', {}, true), set_config('search_path', {}, true)",
        literal(&place.role),
        literal(&ident(&place.schema))
    )
}

/// A SQL string literal.
pub(crate) fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}
