//! The tenant directory and the health check on SQLite.

use async_trait::async_trait;
use cloacina_domain::TenantName;
use cloacina_domain::ports::{DatabaseHealth, StoreError, TenantDirectory};

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
