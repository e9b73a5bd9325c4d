//! Tenants on SQLite (one: `public`) and the health check.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cloacina_domain::ports::{DatabaseHealth, StoreError, TenantDeleted, TenantDirectory, TenantStore};
use cloacina_domain::{NewTenant, TenantName, TenantRecord};

use crate::SqliteDb;
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
        let created = self
            .read(|conn| {
                conn.query_row("SELECT applied_at FROM _cloacina_migrations WHERE version = 1", [], |r| {
                    r.get::<_, String>(0)
                })
            })
            .await?;
        let created_at = DateTime::parse_from_rfc3339(&created)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| StoreError::Unexpected(format!("bad migration time {created:?}: {e}")))?;
        Ok(TenantRecord {
            name: TenantName::public(),
            schema: "main".into(),
            db_role: None,
            description: None,
            created_at,
        })
    }
}

#[async_trait]
impl TenantStore for SqliteDb {
    async fn create_tenant(&self, _new: &NewTenant) -> Result<TenantRecord, StoreError> {
        Err(StoreError::Unsupported(SINGLE_TENANT.into()))
    }

    async fn list_tenants(&self) -> Result<Vec<TenantRecord>, StoreError> {
        Ok(vec![self.public_record().await?])
    }

    async fn get_tenant(&self, name: &TenantName) -> Result<Option<TenantRecord>, StoreError> {
        if name.is_public() { Ok(Some(self.public_record().await?)) } else { Ok(None) }
    }

    async fn delete_tenant(&self, _name: &TenantName, _at: DateTime<Utc>) -> Result<TenantDeleted, StoreError> {
        Err(StoreError::Unsupported(SINGLE_TENANT.into()))
    }
}
