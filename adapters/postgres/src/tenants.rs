//! Tenants on PostgreSQL: the registry, and a schema plus a database role per tenant.
//!
//! Every tenant-scoped transaction runs as the tenant's role (`set_config('role', …, true)`,
//! the transaction-local `SET ROLE`) with `search_path` set to its schema, on the one shared
//! pool. The tenant's role owns its schema and nothing else, so a statement aimed at another
//! tenant's schema, or at the control tables, is refused by PostgreSQL itself (SQLSTATE
//! 42501), whatever the query says. The server's login role is a member of each tenant role
//! (so it may switch to it) but, being `NOINHERIT`, holds none of their rights standing.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cloacina_domain::audit::AuditEntry;
use cloacina_domain::ports::{DatabaseHealth, StoreError, TenantCreated, TenantDeleted, TenantDirectory, TenantStore};
use cloacina_domain::{
    NewTenant, Secret, Setting, TaskNetwork, TenantChange, TenantDescription, TenantName, TenantRecord,
};
use sqlx::AssertSqlSafe;
use sqlx::postgres::PgRow;
use sqlx::{Acquire, PgConnection, Row};

use crate::PgDb;
use crate::audit::append;
use crate::db::{ident, sqlstate, translate};
use crate::listen::{Topic, notify};
use crate::migrate::{TENANT, apply, latest_control, record_tenant_version};
use crate::tenant_scope::enter_tenant;

const TENANT_DDL_LOCK: i64 = crate::locks::TENANT_DDL;

/// The constraint a second tenant of one name breaks (the registry's primary key).
pub(crate) const NAME_TAKEN: &str = "tenants_pkey";

pub(crate) const COLUMNS: &str =
    "name, schema_name, db_role, description, created_at, task_network, rate_limit_per_key";

/// The schema of a tenant. Quoted wherever used, so `-` in names is fine.
fn schema_for(name: &TenantName) -> String {
    format!("tenant_{name}")
}

/// The role of a tenant: the deployment id keeps two databases in one cluster apart.
fn role_for(deployment: &str, name: &TenantName) -> String {
    format!("cl_{deployment}_{name}")
}

pub(crate) fn record(row: &PgRow) -> Result<TenantRecord, sqlx::Error> {
    let conv = |e: Box<dyn std::error::Error + Send + Sync>| sqlx::Error::Decode(e);
    let name: String = row.try_get(0)?;
    let description: Option<String> = row.try_get(3)?;
    let network: Option<String> = row.try_get(5)?;
    Ok(TenantRecord {
        name: TenantName::parse(&name).map_err(|e| conv(Box::new(e)))?,
        schema: row.try_get(1)?,
        db_role: Some(row.try_get(2)?),
        description: description.map(|d| TenantDescription::parse(&d)).transpose().map_err(|e| conv(Box::new(e)))?,
        created_at: row.try_get(4)?,
        task_network: network.map(|n| n.parse::<TaskNetwork>()).transpose().map_err(|e| conv(Box::new(e)))?,
        rate_limit_per_key: row.try_get::<Option<i32>, _>(6)?.map(|n| u32::try_from(n).unwrap_or(0)),
    })
}

/// The tenant of a row that may be missing.
fn maybe_record(row: Option<&PgRow>) -> Result<Option<TenantRecord>, StoreError> {
    row.map(record).transpose().map_err(translate)
}

/// As the tenant's role, takes every table of its schema in ACCESS EXCLUSIVE mode (at once,
/// failing with 55P03 if any is busy, unless `wait`), then returns the transaction to the login
/// role.
async fn lock_tenant_tables(tx: &mut PgConnection, schema: &str, role: &str, wait: bool) -> Result<(), sqlx::Error> {
    enter_tenant(tx, schema, role).await?;
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT tablename::text FROM pg_tables WHERE schemaname = $1 ORDER BY tablename")
            .bind(schema)
            .fetch_all(&mut *tx)
            .await?;
    let mut sql = String::new();
    if !tables.is_empty() {
        let list: Vec<String> = tables.iter().map(|t| format!("{}.{}", ident(schema), ident(t))).collect();
        let nowait = if wait { "" } else { " NOWAIT" };
        sql.push_str(&format!("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE{nowait}; ", list.join(", ")));
    }
    sql.push_str("SET LOCAL ROLE NONE; SET LOCAL search_path TO DEFAULT;");
    sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut *tx).await.map(drop)
}

/// Creates a tenant's row, role, schema and tables inside the caller's transaction.
pub(crate) async fn provision(
    tx: &mut PgConnection,
    name: &TenantName,
    description: Option<&TenantDescription>,
    password: Option<&Secret>,
    created_at: Option<DateTime<Utc>>,
) -> Result<TenantRecord, StoreError> {
    let tx = &mut *tx;
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(TENANT_DDL_LOCK).execute(&mut *tx).await.map_err(translate)?;
    let deployment: String =
        sqlx::query_scalar("SELECT id FROM cloacina_deployment").fetch_one(&mut *tx).await.map_err(translate)?;
    let (schema, role) = (schema_for(name), role_for(&deployment, name));
    let row = sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO tenants (name, schema_name, db_role, description, created_at)
         VALUES ($1, $2, $3, $4, coalesce($5, now())) RETURNING {COLUMNS}"
    )))
    .bind(name.as_str())
    .bind(&schema)
    .bind(&role)
    .bind(description.map(TenantDescription::as_str))
    .bind(created_at)
    .fetch_one(&mut *tx)
    .await
    .map_err(translate)?;
    let login = match password {
        Some(pw) => {
            // DDL takes no bind parameters, so the password is an escape-string literal: every
            // backslash and quote doubled, whatever standard_conforming_strings says. The domain
            // admits only visible ASCII (generated passwords are URL-safe base64); checked here
            // again, not assumed.
            let pw = pw.expose();
            if pw.is_empty() || !pw.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(StoreError::Unexpected("tenant role password has unexpected characters".into()));
            }
            format!("LOGIN PASSWORD E'{}'", pw.replace('\\', "\\\\").replace('\'', "''"))
        }
        None => "NOLOGIN".to_owned(),
    };
    let ddl = format!(
        "CREATE ROLE {r} {login} NOINHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
         GRANT {r} TO CURRENT_USER;
         CREATE SCHEMA {s} AUTHORIZATION {r};",
        r = ident(&role),
        s = ident(&schema),
    );
    sqlx::raw_sql(AssertSqlSafe(ddl)).execute(&mut *tx).await.map_err(translate)?;
    enter_tenant(tx, &schema, &role).await.map_err(translate)?;
    apply(tx, TENANT, name.as_str()).await.map_err(translate)?;
    record_tenant_version(tx, name.as_str()).await.map_err(translate)?;
    record(&row).map_err(translate)
}

/// Creates the built-in `public` tenant if it is missing (first start-up). Its role cannot
/// log in: it is only ever switched to.
pub(crate) async fn ensure_public_tenant(db: &PgDb, conn: &mut PgConnection) -> Result<(), StoreError> {
    let public = TenantName::public();
    let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM tenants WHERE name = $1")
        .bind(public.as_str())
        .fetch_optional(&mut *conn)
        .await
        .map_err(translate)?;
    if exists.is_some() {
        return Ok(());
    }
    let mut tx = conn.begin().await.map_err(translate)?;
    match provision(&mut tx, &public, None, None, None).await {
        Ok(_) => {}
        // Another server created it between our look and our insert.
        Err(e) if e.is_unique_violation_of(NAME_TAKEN) => return Ok(()),
        Err(e) => return Err(e),
    }
    tx.commit().await.map_err(translate)?;
    db.forget_tenants();
    tracing::info!("created the built-in tenant 'public'");
    Ok(())
}

#[async_trait]
impl TenantDirectory for PgDb {
    async fn exists(&self, tenant: &TenantName) -> Result<bool, StoreError> {
        Ok(tenant.is_public() || self.place(tenant).await?.is_some())
    }
}

#[async_trait]
impl TenantStore for PgDb {
    async fn create_tenant(&self, new: &NewTenant, audit: &AuditEntry) -> Result<TenantCreated, StoreError> {
        let mut tx = self.pool.begin().await.map_err(translate)?;
        let record =
            match provision(&mut tx, &new.name, new.description.as_ref(), Some(&new.db_password), Some(new.created_at))
                .await
            {
                Ok(record) => record,
                Err(e) if e.is_unique_violation_of(NAME_TAKEN) => return Ok(TenantCreated::NameTaken),
                Err(e) => return Err(e),
            };
        // Back to the login role (provisioning ends inside the tenant) for the control chain.
        sqlx::raw_sql("SET LOCAL ROLE NONE; SET LOCAL search_path TO DEFAULT")
            .execute(&mut *tx)
            .await
            .map_err(translate)?;
        append(&mut tx, audit).await?;
        // No notification: no replica can hold anything about a tenant that did not exist
        // (places and keys are cached only once found).
        tx.commit().await.map_err(translate)?;
        Ok(TenantCreated::Created(record))
    }

    async fn list_tenants(&self) -> Result<Vec<TenantRecord>, StoreError> {
        sqlx::query(AssertSqlSafe(format!("SELECT {COLUMNS} FROM tenants ORDER BY name <> 'public', name")))
            .fetch_all(&self.pool)
            .await
            .map_err(translate)?
            .iter()
            .map(record)
            .collect::<Result<_, _>>()
            .map_err(translate)
    }

    async fn get_tenant(&self, name: &TenantName) -> Result<Option<TenantRecord>, StoreError> {
        sqlx::query(AssertSqlSafe(format!("SELECT {COLUMNS} FROM tenants WHERE name = $1")))
            .bind(name.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(translate)
            .and_then(|row| maybe_record(row.as_ref()))
    }

    async fn update_tenant(
        &self,
        name: &TenantName,
        change: &TenantChange,
        audit: &AuditEntry,
    ) -> Result<Option<TenantRecord>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(translate)?;
        // One statement: a column the change leaves alone keeps its value.
        let updated = sqlx::query(AssertSqlSafe(format!(
            "UPDATE tenants SET task_network = CASE WHEN $2 THEN $3 ELSE task_network END,
                 rate_limit_per_key = CASE WHEN $4 THEN $5 ELSE rate_limit_per_key END
             WHERE name = $1
             RETURNING {COLUMNS}"
        )))
        .bind(name.as_str())
        .bind(change.task_network != Setting::Keep)
        .bind(change.task_network.applied_to(None).map(TaskNetwork::as_str))
        .bind(change.rate_limit_per_key != Setting::Keep)
        .bind(change.rate_limit_per_key.applied_to(None).map(|n| i32::try_from(n).unwrap_or(i32::MAX)))
        .fetch_optional(&mut *tx)
        .await
        .map_err(translate)
        .and_then(|row| maybe_record(row.as_ref()))?;
        if updated.is_some() {
            append(&mut tx, audit).await?;
        }
        tx.commit().await.map_err(translate)?;
        Ok(updated)
    }

    async fn delete_tenant(
        &self,
        name: &TenantName,
        at: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<TenantDeleted, StoreError> {
        if name.is_public() {
            return Err(StoreError::Unexpected("the built-in tenant cannot be deleted".into()));
        }
        // The tenant's tables are taken all at once or not at all (NOWAIT), and tried again
        // while its work holds them; after a while the delete waits its turn instead, which
        // PostgreSQL may end as a deadlock, tried again too.
        let started = std::time::Instant::now();
        loop {
            let wait = started.elapsed() > DELETE_NOWAIT_FOR;
            if let Some(done) = self.delete_once(name, at, wait, audit).await? {
                return Ok(done);
            }
            if started.elapsed() > DELETE_GIVE_UP_AFTER {
                return Err(StoreError::Unavailable(format!(
                    "tenant '{name}' is too busy to delete: its work held its tables for {}s; try again",
                    DELETE_GIVE_UP_AFTER.as_secs()
                )));
            }
            tokio::time::sleep(std::time::Duration::from_millis(if wait { 100 } else { 10 })).await;
        }
    }
}

/// How long a delete tries to take the tenant's tables without waiting, and when it gives up.
const DELETE_NOWAIT_FOR: std::time::Duration = std::time::Duration::from_secs(5);
const DELETE_GIVE_UP_AFTER: std::time::Duration = std::time::Duration::from_secs(30);

impl PgDb {
    /// One try at deleting a tenant; `None` when its tables were busy (or the wait for them
    /// deadlocked), nothing changed.
    async fn delete_once(
        &self,
        name: &TenantName,
        at: DateTime<Utc>,
        wait: bool,
        audit: &AuditEntry,
    ) -> Result<Option<TenantDeleted>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(translate)?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(TENANT_DDL_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(translate)?;
        let place: Option<(String, String)> =
            sqlx::query_as("SELECT schema_name, db_role FROM tenants WHERE name = $1")
                .bind(name.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(translate)?;
        let Some((schema, role)) = place else { return Ok(Some(TenantDeleted::NotFound)) };
        // The tenant's tables before its registry row, and all of them at once: engine work
        // (claims, outcomes, renewals, new executions) takes tables, each statement in its own
        // order, and the queue row, which references the registry row, last. Taking the row
        // first, or the tables one by one, deadlocked with it. Work that comes after the locks
        // waits, then finds no schema.
        match lock_tenant_tables(&mut tx, &schema, &role, wait).await {
            Ok(()) => {}
            Err(e) if matches!(sqlstate(&e).as_deref(), Some("55P03" | "40P01")) => return Ok(None),
            Err(e) => return Err(translate(e)),
        }
        let still: Option<i32> = sqlx::query_scalar("SELECT 1 FROM tenants WHERE name = $1 FOR UPDATE")
            .bind(name.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(translate)?;
        if still.is_none() {
            return Ok(Some(TenantDeleted::NotFound));
        }
        let revoked = sqlx::query(
            "UPDATE api_keys SET revoked = true, revoked_at = $2 WHERE tenant = $1 AND NOT is_admin AND NOT revoked",
        )
        .bind(name.as_str())
        .bind(at)
        .execute(&mut *tx)
        .await
        .map_err(translate)?
        .rows_affected();
        // Everything the tenant owns is dropped by the tenant itself (the login role holds
        // none of its rights), then the role goes.
        enter_tenant(&mut tx, &schema, &role).await.map_err(translate)?;
        let ddl = format!(
            "DROP SCHEMA IF EXISTS {s} CASCADE; DROP OWNED BY {r}; SET LOCAL ROLE NONE; SET LOCAL search_path TO DEFAULT; DROP ROLE {r};",
            s = ident(&schema),
            r = ident(&role)
        );
        sqlx::raw_sql(AssertSqlSafe(ddl)).execute(&mut *tx).await.map_err(translate)?;
        sqlx::query("DELETE FROM tenants WHERE name = $1")
            .bind(name.as_str())
            .execute(&mut *tx)
            .await
            .map_err(translate)?;
        notify(&mut tx, &Topic::Tenant(name.clone())).await.map_err(translate)?;
        append(&mut tx, &audit.clone().with("revoked_keys", revoked)).await?;
        tx.commit().await.map_err(translate)?;
        self.forget_place(name);
        self.lanes.forget(name);
        Ok(Some(TenantDeleted::Deleted { revoked_keys: revoked }))
    }
}

#[async_trait]
impl DatabaseHealth for PgDb {
    /// One round trip that also tells whether the control schema is current.
    async fn ping(&self) -> Result<(), StoreError> {
        let version = self.control_version().await?;
        if version < latest_control() {
            return Err(StoreError::Unavailable(format!(
                "database schema at version {version}, binary expects {}",
                latest_control()
            )));
        }
        Ok(())
    }
}
