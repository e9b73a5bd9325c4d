//! [`EventFeed`]: a tenant's events in id order for the live sockets, and the bell the
//! `cloacina_events` listener rings (`listen`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cloacina_domain::TenantName;
use cloacina_domain::execution::{EventRecord, ExecutionId, OutputRecord};
use cloacina_domain::ports::{EventBell, EventFeed, Lookup, StoreError};
use serde_json::Value;
use sqlx::AssertSqlSafe;
use sqlx::types::Json;
use uuid::Uuid;

use super::rows::{event_kind, exists};
use crate::PgDb;
use crate::db::translate;

const OUTPUT_COLUMNS: &str = "id, execution_id, task_id, attempt, stdout, stderr, truncated, ended, at";

type OutputRow = (i64, Uuid, String, i32, String, String, bool, bool, DateTime<Utc>);

fn output((id, execution, task_id, attempt, stdout, stderr, truncated, ended, at): OutputRow) -> OutputRecord {
    OutputRecord {
        id,
        execution_id: ExecutionId::from_uuid(execution),
        task_id,
        attempt: u32::try_from(attempt).unwrap_or(0),
        stdout,
        stderr,
        truncated,
        ended,
        at,
    }
}

impl PgDb {
    /// One `max(id)` of the tenant's, `None` for no such tenant.
    async fn last_id(&self, tenant: &TenantName, select: &'static str) -> Result<Option<i64>, StoreError> {
        let Some(mut tx) = self.begin_tenant(tenant).await? else { return Ok(None) };
        let last: i64 = sqlx::query_scalar(select).fetch_one(&mut *tx).await.map_err(translate)?;
        tx.commit().await.map_err(translate)?;
        Ok(Some(last))
    }
}

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
        self.last_id(tenant, "SELECT coalesce(max(id), 0) FROM execution_events").await
    }

    async fn tenant_output(
        &self,
        tenant: &TenantName,
        since: i64,
        limit: u32,
    ) -> Result<Option<Vec<OutputRecord>>, StoreError> {
        let Some(mut tx) = self.begin_tenant(tenant).await? else { return Ok(None) };
        let rows: Vec<OutputRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {OUTPUT_COLUMNS} FROM task_logs WHERE id > $1 ORDER BY id LIMIT $2"
        )))
        .bind(since)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await
        .map_err(translate)?;
        tx.commit().await.map_err(translate)?;
        Ok(Some(rows.into_iter().map(output).collect()))
    }

    async fn last_output_id(&self, tenant: &TenantName) -> Result<Option<i64>, StoreError> {
        self.last_id(tenant, "SELECT coalesce(max(id), 0) FROM task_logs").await
    }

    async fn execution_output(
        &self,
        tenant: &TenantName,
        id: ExecutionId,
        since: i64,
        limit: u32,
    ) -> Result<Lookup<Vec<OutputRecord>>, StoreError> {
        let Some(mut tx) = self.begin_tenant(tenant).await? else { return Ok(Lookup::NoTenant) };
        if !exists(&mut tx, id).await? {
            return Ok(Lookup::Missing);
        }
        let rows: Vec<OutputRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {OUTPUT_COLUMNS} FROM task_logs WHERE execution_id = $1 AND id > $2 ORDER BY id LIMIT $3"
        )))
        .bind(id.as_uuid())
        .bind(since)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await
        .map_err(translate)?;
        tx.commit().await.map_err(translate)?;
        Ok(Lookup::Found(rows.into_iter().map(output).collect()))
    }

    fn ring_on_events(&self, bell: EventBell) {
        self.bell.hang(bell);
    }
}
