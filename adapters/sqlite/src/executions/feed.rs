//! [`EventFeed`]: the tenant's events in id order for the live sockets, and the bell rung
//! after commits in this process.

use async_trait::async_trait;
use cloacina_domain::TenantName;
use cloacina_domain::execution::{EventRecord, ExecutionId, OutputRecord};
use cloacina_domain::ports::{EventBell, EventFeed, Lookup, StoreError};
use rusqlite::{Row, params};

use super::rows::{conv, event_kind, exists, required_time};
use crate::SqliteDb;

const OUTPUT_COLUMNS: &str = "id, execution_id, task_id, attempt, stdout, stderr, truncated, ended, at";

fn output(r: &Row<'_>) -> rusqlite::Result<OutputRecord> {
    let execution: String = r.get(1)?;
    Ok(OutputRecord {
        id: r.get(0)?,
        execution_id: execution.parse::<ExecutionId>().map_err(|e| conv(1, e))?,
        task_id: r.get(2)?,
        attempt: r.get(3)?,
        stdout: r.get(4)?,
        stderr: r.get(5)?,
        truncated: r.get(6)?,
        ended: r.get(7)?,
        at: required_time(r, 8)?,
    })
}

#[async_trait]
impl EventFeed for SqliteDb {
    async fn tenant_events(
        &self,
        tenant: &TenantName,
        since: i64,
        limit: u32,
    ) -> Result<Option<Vec<EventRecord>>, StoreError> {
        if !tenant.is_public() {
            return Ok(None);
        }
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT id, execution_id, at, kind, task, detail FROM execution_events WHERE id > ?1 ORDER BY id LIMIT ?2",
            )?
            .query_map(params![since, limit], |r| {
                let execution: String = r.get(1)?;
                let detail: String = r.get(5)?;
                Ok(EventRecord {
                    id: r.get(0)?,
                    execution_id: execution.parse::<ExecutionId>().map_err(|e| conv(1, e))?,
                    at: required_time(r, 2)?,
                    kind: event_kind(r, 3)?,
                    task: r.get(4)?,
                    detail: serde_json::from_str(&detail).map_err(|e| conv(5, e))?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
        })
        .await
    }

    async fn last_event_id(&self, tenant: &TenantName) -> Result<Option<i64>, StoreError> {
        if !tenant.is_public() {
            return Ok(None);
        }
        self.read(|conn| {
            conn.prepare_cached("SELECT coalesce(max(id), 0) FROM execution_events")?
                .query_row([], |r| r.get(0))
                .map(Some)
        })
        .await
    }

    async fn tenant_output(
        &self,
        tenant: &TenantName,
        since: i64,
        limit: u32,
    ) -> Result<Option<Vec<OutputRecord>>, StoreError> {
        if !tenant.is_public() {
            return Ok(None);
        }
        self.read(move |conn| {
            conn.prepare_cached(&format!("SELECT {OUTPUT_COLUMNS} FROM task_logs WHERE id > ?1 ORDER BY id LIMIT ?2"))?
                .query_map(params![since, limit], output)?
                .collect::<Result<Vec<_>, _>>()
                .map(Some)
        })
        .await
    }

    async fn last_output_id(&self, tenant: &TenantName) -> Result<Option<i64>, StoreError> {
        if !tenant.is_public() {
            return Ok(None);
        }
        self.read(|conn| {
            conn.prepare_cached("SELECT coalesce(max(id), 0) FROM task_logs")?.query_row([], |r| r.get(0)).map(Some)
        })
        .await
    }

    async fn execution_output(
        &self,
        tenant: &TenantName,
        id: ExecutionId,
        since: i64,
        limit: u32,
    ) -> Result<Lookup<Vec<OutputRecord>>, StoreError> {
        if !tenant.is_public() {
            return Ok(Lookup::NoTenant);
        }
        self.read(move |conn| {
            if !exists(conn, id)? {
                return Ok(None);
            }
            conn.prepare_cached(&format!(
                "SELECT {OUTPUT_COLUMNS} FROM task_logs WHERE execution_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3"
            ))?
            .query_map(params![id.to_string(), since, limit], output)?
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
        })
        .await
        .map(Lookup::from_option)
    }

    fn ring_on_events(&self, bell: EventBell) {
        self.inner.bell.hang(bell);
    }
}
