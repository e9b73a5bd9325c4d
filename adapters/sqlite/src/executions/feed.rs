//! [`EventFeed`]: the tenant's events in id order for the live sockets, and the bell rung
//! after commits in this process.

use async_trait::async_trait;
use cloacina_domain::TenantName;
use cloacina_domain::execution::{EventRecord, ExecutionId};
use cloacina_domain::ports::{EventBell, EventFeed, StoreError};
use rusqlite::params;

use super::rows::{conv, event_kind, required_time};
use crate::SqliteDb;

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

    fn ring_on_events(&self, bell: EventBell) {
        self.inner.bell.hang(bell);
    }
}
