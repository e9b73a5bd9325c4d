//! Execution and task rows: the columns read and how they decode.

use cloacina_domain::ApiKeyId;
use cloacina_domain::execution::{
    EventKind, ExecutionId, ExecutionRecord, ExecutionStatus, Fired, Plan, TaskRecord, TaskStatus,
};
use cloacina_domain::ports::StoreError;
use serde_json::{Map, Value};
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use crate::db::translate;

use super::*;

pub(super) fn execution(row: &PgRow) -> Result<ExecutionRecord, sqlx::Error> {
    let status: String = row.try_get(4)?;
    let context: Json<Map<String, Value>> = row.try_get(5)?;
    Ok(ExecutionRecord {
        id: ExecutionId::from_uuid(row.try_get(0)?),
        workflow: row.try_get(1)?,
        package_id: row.try_get(2)?,
        package_version: row.try_get(3)?,
        status: ExecutionStatus::parse(&status).ok_or_else(|| decode(Bad(format!("unknown status '{status}'"))))?,
        context: context.0,
        error: row.try_get(6)?,
        origin: row.try_get(7)?,
        idempotency_key: row.try_get(8)?,
        created_at: row.try_get(9)?,
        started_at: row.try_get(10)?,
        finished_at: row.try_get(11)?,
        created_by: row.try_get::<Option<Uuid>, _>(12)?.map(ApiKeyId::from_uuid),
        fired: match (row.try_get::<Option<String>, _>(13)?, row.try_get::<Option<DateTime<Utc>>, _>(14)?) {
            (Some(trigger), Some(scheduled_at)) => Some(Fired { trigger, scheduled_at }),
            _ => None,
        },
    })
}

pub(super) fn task_status(s: &str) -> Result<TaskStatus, sqlx::Error> {
    TaskStatus::parse(s).ok_or_else(|| decode(Bad(format!("unknown task status '{s}'"))))
}

pub(super) fn event_kind(s: &str) -> Result<EventKind, sqlx::Error> {
    EventKind::parse(s).ok_or_else(|| decode(Bad(format!("unknown event kind '{s}'"))))
}

pub(super) fn task(row: &PgRow, plan: &Plan) -> Result<TaskRecord, sqlx::Error> {
    let output: Option<Json<Map<String, Value>>> = row.try_get(7)?;
    let position = usize::try_from(row.try_get::<i32, _>(0)?).map_err(decode)?;
    Ok(TaskRecord {
        max_attempts: plan.tasks.get(position).map_or(1, |t| t.retry.max_attempts()),
        position,
        task_id: row.try_get(1)?,
        status: task_status(&row.try_get::<String, _>(2)?)?,
        attempts: u32::try_from(row.try_get::<i32, _>(3)?).map_err(decode)?,
        ready_at: row.try_get(4)?,
        started_at: row.try_get(5)?,
        finished_at: row.try_get(6)?,
        output: output.map(|o| o.0),
        error: row.try_get(8)?,
    })
}

pub(super) async fn find_execution(
    conn: &mut PgConnection,
    id: ExecutionId,
    lock: bool,
) -> Result<Option<ExecutionRecord>, StoreError> {
    let sql = if lock {
        concat!("SELECT ", execution_columns!(), " FROM executions WHERE id = $1 FOR UPDATE")
    } else {
        concat!("SELECT ", execution_columns!(), " FROM executions WHERE id = $1")
    };
    let row = sqlx::query(sql).bind(id.as_uuid()).fetch_optional(&mut *conn).await.map_err(translate)?;
    row.as_ref().map(execution).transpose().map_err(translate)
}

pub(super) async fn exists(tx: &mut PgConnection, id: ExecutionId) -> Result<bool, StoreError> {
    let found: Option<i32> = sqlx::query_scalar("SELECT 1 FROM executions WHERE id = $1")
        .bind(id.as_uuid())
        .fetch_optional(&mut *tx)
        .await
        .map_err(translate)?;
    Ok(found.is_some())
}
