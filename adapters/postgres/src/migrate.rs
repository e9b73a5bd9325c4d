//! Embedded migrations: the control schema (`migrations/postgres/control/`) and every tenant
//! schema (`migrations/postgres/tenant/`).
//!
//! A run holds a session advisory lock, so replicas starting together migrate one at a time
//! and the others find nothing left to do. Each migration is one transaction together with
//! its ledger row, so a failure leaves no half-applied schema. Tenant schemas are migrated
//! as the tenant's own role (the server's login role has no rights inside them), a few at a
//! time.

use cloacina_domain::ports::StoreError;
use futures::{StreamExt, TryStreamExt};
use sqlx::{Acquire, PgConnection, Row};

use crate::PgDb;
use crate::db::{sqlstate, translate};
use crate::tenants::{ensure_public_tenant, enter_tenant};

/// A migration: (version, name, SQL). Append only.
pub type Migration = (i64, &'static str, &'static str);

/// The control schema's migrations.
pub const CONTROL: &[Migration] =
    &[(1, "control", include_str!("../../../migrations/postgres/control/0001_control.sql"))];

/// Every tenant schema's migrations.
pub const TENANT: &[Migration] = &[
    (1, "audit_log", include_str!("../../../migrations/postgres/tenant/0001_audit_log.sql")),
    (2, "workflows", include_str!("../../../migrations/postgres/tenant/0002_workflows.sql")),
];

/// The advisory lock key held while migrating ("cloacina" + 1).
const MIGRATE_LOCK: i64 = 0x636c_6f61_6369_0001;
/// How many tenant schemas are migrated at once.
const TENANT_PARALLELISM: usize = 4;

const LEDGER: &str = "CREATE TABLE IF NOT EXISTS _cloacina_migrations (
    version bigint PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())";

fn latest(set: &[Migration]) -> i64 {
    set.last().map_or(0, |m| m.0)
}

/// What a migration run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MigrationReport {
    /// Control-schema migrations applied.
    pub control: usize,
    /// Tenant-schema migrations applied, over all tenants.
    pub tenant: usize,
    /// Tenant schemas looked at.
    pub tenants: usize,
}

/// What a database lacks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pending {
    pub control: usize,
    /// Tenants whose schema is behind.
    pub tenants: Vec<String>,
}

impl Pending {
    pub fn is_empty(&self) -> bool {
        self.control == 0 && self.tenants.is_empty()
    }
}

/// The version recorded in the ledger of the current `search_path` (0 without a ledger).
pub(crate) async fn ledger_version(conn: &mut PgConnection) -> Result<i64, sqlx::Error> {
    match sqlx::query_scalar::<_, Option<i64>>("SELECT max(version) FROM _cloacina_migrations").fetch_one(conn).await {
        Ok(v) => Ok(v.unwrap_or(0)),
        Err(e) if sqlstate(&e).as_deref() == Some("42P01") => Ok(0),
        Err(e) => Err(e),
    }
}

/// Applies `set` in the current `search_path`, each step in one transaction (a savepoint,
/// inside a tenant's transaction) together with its ledger row. Returns how many ran.
pub(crate) async fn apply(conn: &mut PgConnection, set: &[Migration], scope: &str) -> Result<usize, sqlx::Error> {
    sqlx::raw_sql(LEDGER).execute(&mut *conn).await?;
    let mut applied = 0;
    for (version, name, sql) in set {
        if ledger_version(conn).await? >= *version {
            continue;
        }
        let mut tx = conn.begin().await?;
        sqlx::raw_sql(*sql).execute(&mut *tx).await?;
        sqlx::query("INSERT INTO _cloacina_migrations (version, name) VALUES ($1, $2)")
            .bind(version)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        tracing::info!(scope, version, name, "applied PostgreSQL migration");
        applied += 1;
    }
    Ok(applied)
}

impl PgDb {
    /// Applies every pending migration: the control schema, then (creating the built-in
    /// `public` tenant if missing) every tenant schema.
    ///
    /// # Errors
    /// The store error of the failing step; steps before it stay applied.
    pub async fn migrate(&self) -> Result<MigrationReport, StoreError> {
        let mut lock = self.pool.acquire().await.map_err(translate)?;
        sqlx::query("SELECT pg_advisory_lock($1)").bind(MIGRATE_LOCK).execute(&mut *lock).await.map_err(translate)?;
        let result = self.migrate_locked(&mut lock).await;
        let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)").bind(MIGRATE_LOCK).execute(&mut *lock).await;
        if unlocked.is_err() {
            // The session lock dies with the connection; make sure it is not pooled.
            lock.detach();
        }
        result
    }

    async fn migrate_locked(&self, conn: &mut PgConnection) -> Result<MigrationReport, StoreError> {
        let control = apply(conn, CONTROL, "control").await.map_err(translate)?;
        ensure_public_tenant(self, conn).await?;
        let tenants = self.tenant_places().await?;
        let count = tenants.len();
        let tenant = futures::stream::iter(tenants)
            .map(|(name, schema, role)| async move { self.migrate_tenant(&name, &schema, &role).await })
            .buffer_unordered(TENANT_PARALLELISM)
            .try_fold(0, |sum, n| async move { Ok(sum + n) })
            .await?;
        Ok(MigrationReport { control, tenant, tenants: count })
    }

    /// One tenant's pending migrations, in one transaction run as the tenant's role.
    async fn migrate_tenant(&self, name: &str, schema: &str, role: &str) -> Result<usize, StoreError> {
        let mut tx = self.pool.begin().await.map_err(translate)?;
        enter_tenant(&mut tx, schema, role).await.map_err(translate)?;
        let applied = apply(&mut tx, TENANT, name).await.map_err(translate)?;
        tx.commit().await.map_err(translate)?;
        Ok(applied)
    }

    /// Every tenant: (name, schema, role).
    pub(crate) async fn tenant_places(&self) -> Result<Vec<(String, String, String)>, StoreError> {
        sqlx::query("SELECT name, schema_name, db_role FROM tenants ORDER BY name")
            .fetch_all(&self.pool)
            .await
            .map_err(translate)?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(translate)
    }

    /// What this binary has that the database lacks: `serve --no-migrate` refuses to start
    /// unless this is empty.
    ///
    /// # Errors
    /// The store error if the database cannot be read.
    pub async fn pending_migrations(&self) -> Result<Pending, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(translate)?;
        let control = ledger_version(&mut conn).await.map_err(translate)?;
        let control = CONTROL.iter().filter(|m| m.0 > control).count();
        if control > 0 {
            return Ok(Pending { control, tenants: Vec::new() });
        }
        drop(conn);
        let places = self.tenant_places().await?;
        let mut behind = Vec::new();
        if !places.iter().any(|t| t.0 == "public") {
            behind.push("public".to_owned());
        }
        for (name, schema, role) in places {
            let mut tx = self.pool.begin().await.map_err(translate)?;
            enter_tenant(&mut tx, &schema, &role).await.map_err(translate)?;
            let version = ledger_version(&mut tx).await.map_err(translate)?;
            tx.rollback().await.map_err(translate)?;
            if version < latest(TENANT) {
                behind.push(name);
            }
        }
        Ok(Pending { control, tenants: behind })
    }

    /// The control schema's version, for `/ready`: one indexed read.
    pub(crate) async fn control_version(&self) -> Result<i64, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(translate)?;
        ledger_version(&mut conn).await.map_err(translate)
    }
}

/// The newest control migration this binary knows.
pub fn latest_control() -> i64 {
    latest(CONTROL)
}
