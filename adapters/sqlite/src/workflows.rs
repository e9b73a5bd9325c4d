//! Workflows on SQLite (the single tenant, `public`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cloacina_domain::ports::{Lookup, StoreError, WorkflowStore};
use cloacina_domain::{TenantName, WorkflowSummary};
use rusqlite::OptionalExtension;
use rusqlite::types::Type;

use crate::SqliteDb;

/// A workflow row, with the id and upload time of its package version in force.
const COLUMNS: &str = "workflows.name, package_name, workflows.version, workflows.description, tasks, paused, updated_at, \
                       p.id, p.uploaded_at";
/// Where they come from.
const FROM: &str = "workflows JOIN packages p ON p.name = workflows.package_name AND p.version = workflows.version";

fn summary(r: &rusqlite::Row<'_>) -> rusqlite::Result<WorkflowSummary> {
    let conv = |col, e: Box<dyn std::error::Error + Send + Sync>| {
        rusqlite::Error::FromSqlConversionFailure(col, Type::Text, e)
    };
    let tasks: String = r.get(4)?;
    let updated: String = r.get(6)?;
    let package: String = r.get(7)?;
    let created: String = r.get(8)?;
    let time = |text: &str, col| {
        DateTime::parse_from_rfc3339(text).map(|t| t.with_timezone(&Utc)).map_err(|e| conv(col, Box::new(e)))
    };
    Ok(WorkflowSummary {
        name: r.get(0)?,
        package_name: r.get(1)?,
        version: r.get(2)?,
        description: r.get(3)?,
        tasks: serde_json::from_str(&tasks).map_err(|e| conv(4, Box::new(e)))?,
        paused: r.get(5)?,
        updated_at: time(&updated, 6)?,
        package_id: package.parse().map_err(|e| conv(7, Box::new(e)))?,
        created_at: time(&created, 8)?,
    })
}

fn find(conn: &rusqlite::Connection, name: &str) -> rusqlite::Result<Option<WorkflowSummary>> {
    conn.query_row(&format!("SELECT {COLUMNS} FROM {FROM} WHERE workflows.name = ?1"), [name], summary).optional()
}

#[async_trait]
impl WorkflowStore for SqliteDb {
    async fn list_workflows(&self, tenant: &TenantName) -> Result<Option<Vec<WorkflowSummary>>, StoreError> {
        if !tenant.is_public() {
            return Ok(None);
        }
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(&format!("SELECT {COLUMNS} FROM {FROM} ORDER BY workflows.name"))?;
            stmt.query_map([], summary)?.collect::<Result<Vec<_>, _>>().map(Some)
        })
        .await
    }

    async fn get_workflow(&self, tenant: &TenantName, name: &str) -> Result<Lookup<WorkflowSummary>, StoreError> {
        if !tenant.is_public() {
            return Ok(Lookup::NoTenant);
        }
        let name = name.to_owned();
        self.read(move |conn| find(conn, &name)).await.map(Lookup::from_option)
    }

    async fn set_paused(
        &self,
        tenant: &TenantName,
        name: &str,
        paused: bool,
        at: DateTime<Utc>,
        audit: &cloacina_domain::audit::AuditEntry,
    ) -> Result<Lookup<WorkflowSummary>, StoreError> {
        if !tenant.is_public() {
            return Ok(Lookup::NoTenant);
        }
        let (name, audit) = (name.to_owned(), audit.clone());
        self.write(move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            tx.execute(
                "UPDATE workflows SET paused = ?2, updated_at = ?3 WHERE name = ?1 AND paused <> ?2",
                rusqlite::params![name, paused, crate::keys::ts(at)],
            )?;
            let found = find(&tx, &name)?;
            if found.is_some() {
                crate::audit::append(&tx, &audit)?;
            }
            tx.commit()?;
            Ok(found)
        })
        .await
        .map(Lookup::from_option)
    }
}
