//! Workflows on PostgreSQL: read in the tenant's schema, as the tenant's role.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cloacina_domain::ports::{Lookup, StoreError, WorkflowStore};
use cloacina_domain::{TenantName, WorkflowSummary};

use sqlx::Row;
use sqlx::postgres::PgRow;

use crate::PgDb;
use crate::db::translate;

/// A workflow row, with the id and upload time of its package version in force.
macro_rules! columns {
    () => {
        "w.name, w.package_name, w.version, w.description, w.tasks, w.paused, w.updated_at, p.id, p.uploaded_at"
    };
}

/// Where they come from: a workflow row always has its package version.
macro_rules! joined {
    () => {
        "workflows w JOIN packages p ON p.name = w.package_name AND p.version = w.version"
    };
}

#[async_trait]
impl WorkflowStore for PgDb {
    async fn list_workflows(&self, tenant: &TenantName) -> Result<Option<Vec<WorkflowSummary>>, StoreError> {
        let Some(rows) =
            self.tenant_read(tenant, concat!("SELECT ", columns!(), " FROM ", joined!(), " ORDER BY w.name")).await?
        else {
            return Ok(None);
        };
        rows.iter().map(summary).collect::<Result<Vec<_>, _>>().map(Some).map_err(translate)
    }

    async fn get_workflow(&self, tenant: &TenantName, name: &str) -> Result<Lookup<WorkflowSummary>, StoreError> {
        let Some(mut tx) = self.begin_tenant(tenant).await? else { return Ok(Lookup::NoTenant) };
        let row = sqlx::query(concat!("SELECT ", columns!(), " FROM ", joined!(), " WHERE w.name = $1"))
            .bind(name)
            .fetch_optional(&mut *tx)
            .await
            .map_err(translate)?;
        tx.commit().await.map_err(translate)?;
        row.as_ref().map(summary).transpose().map(Lookup::from_option).map_err(translate)
    }

    async fn set_paused(
        &self,
        tenant: &TenantName,
        name: &str,
        paused: bool,
        at: DateTime<Utc>,
        audit: &cloacina_domain::audit::AuditEntry,
    ) -> Result<Lookup<WorkflowSummary>, StoreError> {
        let Some(mut tx) = self.begin_tenant(tenant).await? else { return Ok(Lookup::NoTenant) };
        let row = sqlx::query(concat!(
            "UPDATE workflows w SET paused = $2, updated_at = CASE WHEN w.paused = $2 THEN w.updated_at ELSE $3 END
             FROM packages p WHERE w.name = $1 AND p.name = w.package_name AND p.version = w.version
             RETURNING ",
            columns!()
        ))
        .bind(name)
        .bind(paused)
        .bind(at)
        .fetch_optional(&mut *tx)
        .await
        .map_err(translate)?;
        if row.is_some() {
            crate::audit::append(&mut tx, audit).await?;
        }
        tx.commit().await.map_err(translate)?;
        row.as_ref().map(summary).transpose().map(Lookup::from_option).map_err(translate)
    }
}

fn summary(row: &PgRow) -> Result<WorkflowSummary, sqlx::Error> {
    let tasks: sqlx::types::Json<Vec<String>> = row.try_get(4)?;
    let updated_at: DateTime<Utc> = row.try_get(6)?;
    Ok(WorkflowSummary {
        name: row.try_get(0)?,
        package_name: row.try_get(1)?,
        version: row.try_get(2)?,
        description: row.try_get(3)?,
        tasks: tasks.0,
        paused: row.try_get(5)?,
        updated_at,
        package_id: row.try_get(7)?,
        created_at: row.try_get(8)?,
    })
}
