//! Workflows on PostgreSQL: read in the tenant's schema, as the tenant's role.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cloacina_domain::ports::{StoreError, WorkflowStore};
use cloacina_domain::{TenantName, WorkflowSummary};

use crate::PgDb;
use crate::db::translate;

type Row = (String, String, String, Option<String>, sqlx::types::Json<Vec<String>>, bool, DateTime<Utc>);

#[async_trait]
impl WorkflowStore for PgDb {
    async fn list_workflows(&self, tenant: &TenantName) -> Result<Option<Vec<WorkflowSummary>>, StoreError> {
        let Some(mut tx) = self.begin_tenant(tenant).await? else { return Ok(None) };
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT name, package_name, version, description, tasks, paused, updated_at FROM workflows ORDER BY name",
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(translate)?;
        tx.commit().await.map_err(translate)?;
        Ok(Some(
            rows.into_iter()
                .map(|(name, package_name, version, description, tasks, paused, updated_at)| WorkflowSummary {
                    name,
                    package_name,
                    version,
                    description,
                    tasks: tasks.0,
                    paused,
                    updated_at,
                })
                .collect(),
        ))
    }
}
