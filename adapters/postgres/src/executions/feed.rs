//! [`EventFeed`]: a tenant's events in id order for the live sockets, and the bell the
//! `cloacina_events` listener rings (`listen`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cloacina_domain::TenantName;
use cloacina_domain::execution::{EventRecord, ExecutionId};
use cloacina_domain::ports::{EventBell, EventFeed, StoreError};
use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

use super::rows::event_kind;
use crate::PgDb;
use crate::db::translate;

#[async_trait]
impl EventFeed for PgDb {
    async fn tenant_events(
        &self,
        tenant: &TenantName,
        since: i64,
        limit: u32,
    ) -> Result<Option<Vec<EventRecord>>, StoreError> {
        let Some(mut tx) = self.begin_tenant(tenant).await? else { return Ok(None) };
        let rows: Vec<(i64, Uuid, DateTime<Utc>, String, Option<String>, Json<Value>)> = sqlx::query_as(
            "SELECT id, execution_id, at, kind, task, detail FROM execution_events WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(since)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await
        .map_err(translate)?;
        tx.commit().await.map_err(translate)?;
        rows.into_iter()
            .map(|(id, execution, at, kind, task, detail)| {
                Ok(EventRecord {
                    id,
                    execution_id: ExecutionId::from_uuid(execution),
                    at,
                    kind: event_kind(&kind)?,
                    task,
                    detail: detail.0,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map(Some)
            .map_err(translate)
    }

    async fn last_event_id(&self, tenant: &TenantName) -> Result<Option<i64>, StoreError> {
        let Some(mut tx) = self.begin_tenant(tenant).await? else { return Ok(None) };
        let last: i64 = sqlx::query_scalar("SELECT coalesce(max(id), 0) FROM execution_events")
            .fetch_one(&mut *tx)
            .await
            .map_err(translate)?;
        tx.commit().await.map_err(translate)?;
        Ok(Some(last))
    }

    fn ring_on_events(&self, bell: EventBell) {
        self.bell.hang(bell);
    }
}
