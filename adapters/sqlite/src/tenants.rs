//! Tenants on SQLite (one: `public`) and the health check.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cloacina_domain::audit::AuditEntry;
use cloacina_domain::ports::{DatabaseHealth, StoreError, TenantCreated, TenantDeleted, TenantDirectory, TenantStore};
use cloacina_domain::{NewTenant, Setting, TaskNetwork, TenantChange, TenantName, TenantRecord};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use crate::SqliteDb;
use crate::audit::append;
use crate::migrate::{current_version, latest};

#[async_trait]
impl TenantDirectory for SqliteDb {
    /// SQLite is single-tenant: only `public` exists.
    async fn exists(&self, tenant: &TenantName) -> Result<bool, StoreError> {
        Ok(tenant.is_public())
    }
}

#[async_trait]
impl DatabaseHealth for SqliteDb {
    /// One read, which also tells whether the schema is current.
    async fn ping(&self) -> Result<(), StoreError> {
        let version = self.read(current_version).await?;
        if version < latest() {
            return Err(StoreError::Unavailable(format!(
                "database schema at version {version}, binary expects {}",
                latest()
            )));
        }
        Ok(())
    }
}

/// Why SQLite refuses tenant creation and deletion.
const SINGLE_TENANT: &str = "multi-tenancy needs PostgreSQL: this server runs on SQLite, which holds the single \
                             tenant 'public'; start it with --database-url postgres://…";

impl SqliteDb {
    /// The built-in tenant: it has always existed, so it carries the database's creation time.
    async fn public_record(&self) -> Result<TenantRecord, StoreError> {
        let (created, network, rate) = self.read(public_row).await?;
        let created_at = DateTime::parse_from_rfc3339(&created)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| StoreError::Unexpected(format!("bad migration time {created:?}: {e}")))?;
        Ok(TenantRecord {
            name: TenantName::public(),
            schema: "main".into(),
            db_role: None,
            description: None,
            created_at,
            task_network: network
                .map(|n| n.parse::<TaskNetwork>())
                .transpose()
                .map_err(|e| StoreError::Unexpected(format!("bad stored task network: {e}")))?,
            rate_limit_per_key: rate,
        })
    }
}

/// The creation time of the database, and the tenant's task network and request limit as
/// stored.
fn public_row(conn: &Connection) -> Result<(String, Option<String>, Option<u32>), rusqlite::Error> {
    conn.query_row(
        "SELECT applied_at, (SELECT task_network FROM tenant_settings WHERE tenant = 'public'),
             (SELECT rate_limit_per_key FROM tenant_settings WHERE tenant = 'public')
         FROM _cloacina_migrations WHERE version = 1",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
}

/// The task network of `public` as stored (`None`: the deployment's).
pub(crate) fn stored_network(conn: &Connection) -> Result<Option<TaskNetwork>, StoreError> {
    let stored: Option<String> = conn
        .query_row("SELECT task_network FROM tenant_settings WHERE tenant = 'public'", [], |r| r.get(0))
        .optional()
        .map_err(crate::db::translate)?
        .flatten();
    stored.map(|n| n.parse()).transpose().map_err(|e| StoreError::Unexpected(format!("bad stored task network: {e}")))
}

#[async_trait]
impl TenantStore for SqliteDb {
    async fn create_tenant(&self, _new: &NewTenant, _audit: &AuditEntry) -> Result<TenantCreated, StoreError> {
        Err(StoreError::Unsupported(SINGLE_TENANT.into()))
    }

    async fn list_tenants(&self) -> Result<Vec<TenantRecord>, StoreError> {
        Ok(vec![self.public_record().await?])
    }

    async fn get_tenant(&self, name: &TenantName) -> Result<Option<TenantRecord>, StoreError> {
        if name.is_public() { Ok(Some(self.public_record().await?)) } else { Ok(None) }
    }

    async fn update_tenant(
        &self,
        name: &TenantName,
        change: &TenantChange,
        audit: &AuditEntry,
    ) -> Result<Option<TenantRecord>, StoreError> {
        if !name.is_public() {
            return Ok(None);
        }
        let (change, audit) = (change.clone(), audit.clone());
        self.write(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if change.task_network != Setting::Keep {
                tx.execute(
                    "INSERT INTO tenant_settings (tenant, task_network) VALUES ('public', ?1)
                     ON CONFLICT (tenant) DO UPDATE SET task_network = excluded.task_network",
                    [change.task_network.applied_to(None).map(TaskNetwork::as_str)],
                )?;
            }
            if change.rate_limit_per_key != Setting::Keep {
                tx.execute(
                    "INSERT INTO tenant_settings (tenant, rate_limit_per_key) VALUES ('public', ?1)
                     ON CONFLICT (tenant) DO UPDATE SET rate_limit_per_key = excluded.rate_limit_per_key",
                    [change.rate_limit_per_key.applied_to(None)],
                )?;
            }
            append(&tx, &audit)?;
            tx.commit()
        })
        .await?;
        Ok(Some(self.public_record().await?))
    }

    async fn delete_tenant(
        &self,
        _name: &TenantName,
        _at: DateTime<Utc>,
        _audit: &AuditEntry,
    ) -> Result<TenantDeleted, StoreError> {
        Err(StoreError::Unsupported(SINGLE_TENANT.into()))
    }
}

#[async_trait]
impl cloacina_domain::ports::CensusStore for SqliteDb {
    async fn census(&self) -> Result<Vec<cloacina_domain::ports::TenantCensus>, StoreError> {
        self.read(|conn| {
            let mut c = cloacina_domain::ports::TenantCensus { tenant: "public".into(), ..Default::default() };
            let mut stmt = conn.prepare_cached(
                "SELECT 'e', status, count(*) FROM executions GROUP BY status
                 UNION ALL SELECT 't', status, count(*) FROM execution_tasks
                 WHERE status IN ('ready', 'running') GROUP BY status",
            )?;
            let rows =
                stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?)))?;
            for row in rows {
                let (kind, status, n) = row?;
                let list = if kind == "e" { &mut c.executions } else { &mut c.tasks };
                list.push((status, n.unsigned_abs()));
            }
            Ok(vec![c])
        })
        .await
    }
}

#[async_trait]
impl cloacina_domain::ports::TenantArchive for SqliteDb {
    async fn export_tenant(
        &self,
        _tenant: &TenantName,
        _sink: &mut dyn cloacina_domain::ports::ExportSink,
    ) -> Result<Option<cloacina_domain::ports::ExportSummary>, StoreError> {
        Err(StoreError::Unsupported(SINGLE_TENANT.into()))
    }

    async fn import_tenant(
        &self,
        _new: &NewTenant,
        _source: &mut dyn cloacina_domain::ports::ExportSource,
        _audit: &AuditEntry,
    ) -> Result<cloacina_domain::ports::TenantImported, StoreError> {
        Err(StoreError::Unsupported(SINGLE_TENANT.into()))
    }
}
