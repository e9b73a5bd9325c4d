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
use crate::tenant_scope::enter_tenant;
use crate::tenants::ensure_public_tenant;

/// A migration: (version, name, SQL). Append only.
pub type Migration = (i64, &'static str, &'static str);

/// The control schema's migrations.
pub const CONTROL: &[Migration] = &[
    (1, "control", include_str!("../../../migrations/postgres/control/0001_control.sql")),
    (2, "tenant_work", include_str!("../../../migrations/postgres/control/0002_tenant_work.sql")),
    (3, "tenant_task_network", include_str!("../../../migrations/postgres/control/0003_tenant_task_network.sql")),
    (4, "trigger_due", include_str!("../../../migrations/postgres/control/0004_trigger_due.sql")),
    (5, "key_names", include_str!("../../../migrations/postgres/control/0005_key_names.sql")),
    (6, "ws_tickets", include_str!("../../../migrations/postgres/control/0006_ws_tickets.sql")),
    (7, "tenant_rate_limits", include_str!("../../../migrations/postgres/control/0007_tenant_rate_limits.sql")),
    (8, "audit_log", include_str!("../../../migrations/postgres/control/0008_audit_log.sql")),
];

/// Every tenant schema's migrations.
pub const TENANT: &[Migration] = &[
    (1, "audit_log", include_str!("../../../migrations/postgres/tenant/0001_audit_log.sql")),
    (2, "workflows", include_str!("../../../migrations/postgres/tenant/0002_workflows.sql")),
    (3, "packages", include_str!("../../../migrations/postgres/tenant/0003_packages.sql")),
    (4, "executions", include_str!("../../../migrations/postgres/tenant/0004_executions.sql")),
    (5, "package_chunks", include_str!("../../../migrations/postgres/tenant/0005_package_chunks.sql")),
    (6, "triggers", include_str!("../../../migrations/postgres/tenant/0006_triggers.sql")),
    (7, "task_log_pieces", include_str!("../../../migrations/postgres/tenant/0007_task_log_pieces.sql")),
    (8, "audit_chain", include_str!("../../../migrations/postgres/tenant/0008_audit_chain.sql")),
    (9, "signing", include_str!("../../../migrations/postgres/tenant/0009_signing.sql")),
    (10, "secrets", include_str!("../../../migrations/postgres/tenant/0010_secrets.sql")),
    (
        11,
        "tasks_without_key_check",
        include_str!("../../../migrations/postgres/tenant/0011_tasks_without_key_check.sql"),
    ),
    (12, "triggers_hot", include_str!("../../../migrations/postgres/tenant/0012_triggers_hot.sql")),
];

const MIGRATE_LOCK: i64 = crate::locks::MIGRATE;
/// How many tenant schemas are migrated at once.
const TENANT_PARALLELISM: usize = 4;

const LEDGER: &str = "CREATE TABLE IF NOT EXISTS _cloacina_migrations (
    version bigint PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())";

pub(crate) fn latest(set: &[Migration]) -> i64 {
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
        let count: i64 =
            sqlx::query_scalar("SELECT count(*) FROM tenants").fetch_one(&mut *conn).await.map_err(translate)?;
        let tenants = self.tenants_behind().await?;
        let tenant = futures::stream::iter(tenants)
            .map(|(name, schema, role)| async move { self.migrate_tenant(&name, &schema, &role).await })
            .buffer_unordered(TENANT_PARALLELISM)
            .try_fold(0, |sum, n| async move { Ok(sum + n) })
            .await?;
        Ok(MigrationReport { control, tenant, tenants: usize::try_from(count).unwrap_or(0) })
    }

    /// One tenant's pending migrations, in one transaction run as the tenant's role.
    async fn migrate_tenant(&self, name: &str, schema: &str, role: &str) -> Result<usize, StoreError> {
        let mut tx = self.pool.begin().await.map_err(translate)?;
        enter_tenant(&mut tx, schema, role).await.map_err(translate)?;
        let applied = apply(&mut tx, TENANT, name).await.map_err(translate)?;
        record_tenant_version(&mut tx, name).await.map_err(translate)?;
        tx.commit().await.map_err(translate)?;
        Ok(applied)
    }

    /// The tenants whose schema is behind this binary: (name, schema, role).
    pub(crate) async fn tenants_behind(&self) -> Result<Vec<(String, String, String)>, StoreError> {
        sqlx::query("SELECT name, schema_name, db_role FROM tenants WHERE schema_version < $1 ORDER BY name")
            .bind(latest(TENANT))
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
        let public: Option<i32> = sqlx::query_scalar("SELECT 1 FROM tenants WHERE name = 'public'")
            .fetch_optional(&mut *conn)
            .await
            .map_err(translate)?;
        drop(conn);
        let mut behind: Vec<String> = self.tenants_behind().await?.into_iter().map(|t| t.0).collect();
        if public.is_none() {
            behind.insert(0, "public".to_owned());
        }
        Ok(Pending { control, tenants: behind })
    }

    /// The control schema's version, for `/ready`: one indexed read.
    pub(crate) async fn control_version(&self) -> Result<i64, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(translate)?;
        ledger_version(&mut conn).await.map_err(translate)
    }
}

/// Records, in the caller's transaction, that `tenant`'s schema is current. Leaves the
/// tenant's role first: the registry is out of the tenant's reach.
pub(crate) async fn record_tenant_version(conn: &mut PgConnection, tenant: &str) -> Result<(), sqlx::Error> {
    sqlx::raw_sql("SET LOCAL ROLE NONE; SET LOCAL search_path TO DEFAULT").execute(&mut *conn).await?;
    sqlx::query("UPDATE tenants SET schema_version = $2 WHERE name = $1")
        .bind(tenant)
        .bind(latest(TENANT))
        .execute(conn)
        .await
        .map(drop)
}

/// The newest control migration this binary knows.
pub fn latest_control() -> i64 {
    latest(CONTROL)
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use cloacina_contract::noted;
    use cloacina_domain::ports::{PackageStore, TenantStore};
    use cloacina_domain::{NewTenant, Secret, TenantName};

    use crate::{PgDb, PgSettings};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_tenant_schema_behind_the_binary_is_found_and_brought_up_to_date() {
        let test_db = cloacina_testpg::TestPg::shared().database().await;
        let pg = PgDb::connect(&Secret::new(test_db.url.clone()), &PgSettings::default()).await.unwrap();
        let first = pg.migrate().await.unwrap();
        assert_eq!((first.control, first.tenants), (super::CONTROL.len(), 1), "public is created on first start");
        let acme = TenantName::parse("acme").unwrap();
        let new = NewTenant {
            name: acme.clone(),
            description: None,
            db_password: Secret::new("x0123456789abcdefghij"),
            created_at: Utc::now(),
        };
        pg.create_tenant(&new, &noted()).await.unwrap();
        assert!(pg.pending_migrations().await.unwrap().is_empty());
        // Roll acme's schema back one step (the newest migration, 12), as an older binary
        // would have left it.
        assert_eq!(super::latest(super::TENANT), 12, "roll back the newest tenant migration here");
        let mut admin = cloacina_testpg::TestPg::shared().admin_of(&test_db.name).await;
        sqlx::raw_sql(
            "CREATE INDEX triggers_due ON tenant_acme.triggers (due_at) WHERE due_at IS NOT NULL;
             ALTER TABLE tenant_acme.triggers RESET (fillfactor);
             DELETE FROM tenant_acme._cloacina_migrations WHERE version = 12;
             UPDATE tenants SET schema_version = 11 WHERE name = 'acme'",
        )
        .execute(&mut admin)
        .await
        .unwrap();
        let pending = pg.pending_migrations().await.unwrap();
        assert_eq!(pending.tenants, ["acme"]);
        let again = pg.migrate().await.unwrap();
        assert_eq!((again.control, again.tenant, again.tenants), (0, 1, 2));
        let due_index: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_indexes WHERE schemaname = 'tenant_acme' AND indexname = 'triggers_due'",
        )
        .fetch_one(&mut admin)
        .await
        .unwrap();
        assert_eq!(due_index, 0, "a trigger's write-back touches no index of its due time");
        assert!(pg.pending_migrations().await.unwrap().is_empty());
        assert_eq!(pg.list_packages(&acme).await.unwrap(), Some(Vec::new()));
        let twice = pg.migrate().await.unwrap();
        assert_eq!((twice.control, twice.tenant), (0, 0), "migrating is idempotent");
    }
}
