//! Workflows on SQLite (the single tenant, `public`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cloacina_domain::ports::{StoreError, WorkflowStore};
use cloacina_domain::{TenantName, WorkflowSummary};
use rusqlite::types::Type;

use crate::SqliteDb;

#[async_trait]
impl WorkflowStore for SqliteDb {
    async fn list_workflows(&self, tenant: &TenantName) -> Result<Option<Vec<WorkflowSummary>>, StoreError> {
        if !tenant.is_public() {
            return Ok(None);
        }
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT name, package_name, version, description, tasks, paused, updated_at FROM workflows ORDER BY name",
            )?;
            let rows = stmt.query_map([], |r| {
                let conv = |col, e: Box<dyn std::error::Error + Send + Sync>| {
                    rusqlite::Error::FromSqlConversionFailure(col, Type::Text, e)
                };
                let tasks: String = r.get(4)?;
                let updated: String = r.get(6)?;
                Ok(WorkflowSummary {
                    name: r.get(0)?,
                    package_name: r.get(1)?,
                    version: r.get(2)?,
                    description: r.get(3)?,
                    tasks: serde_json::from_str(&tasks).map_err(|e| conv(4, Box::new(e)))?,
                    paused: r.get(5)?,
                    updated_at: DateTime::parse_from_rfc3339(&updated)
                        .map(|t| t.with_timezone(&Utc))
                        .map_err(|e| conv(6, Box::new(e)))?,
                })
            })?;
            rows.collect::<Result<Vec<_>, _>>().map(Some)
        })
        .await
    }
}
