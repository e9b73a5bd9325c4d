//! Execution and task rows: the columns read and how they decode, listings.

use chrono::{DateTime, Utc};
use cloacina_domain::ApiKeyId;
use cloacina_domain::execution::{
    EventKind, ExecutionId, ExecutionPage, ExecutionQuery, ExecutionRecord, ExecutionStatus, Fired, Plan, TaskRecord,
    TaskStatus,
};
use rusqlite::types::Type;
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::{Map, Value};

use super::*;

pub(crate) fn conv<E: std::error::Error + Send + Sync + 'static>(col: usize, e: E) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(col, Type::Text, Box::new(e))
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Bad(pub(crate) String);

pub(crate) fn time(row: &Row<'_>, col: usize) -> rusqlite::Result<Option<DateTime<Utc>>> {
    row.get::<_, Option<String>>(col)?
        .map(|s| DateTime::parse_from_rfc3339(&s).map(|t| t.with_timezone(&Utc)).map_err(|e| conv(col, e)))
        .transpose()
}

pub(crate) fn required_time(row: &Row<'_>, col: usize) -> rusqlite::Result<DateTime<Utc>> {
    time(row, col)?.ok_or_else(|| conv(col, Bad("missing time".into())))
}

pub(crate) fn object(row: &Row<'_>, col: usize) -> rusqlite::Result<Option<Map<String, Value>>> {
    row.get::<_, Option<String>>(col)?
        .map(|s| serde_json::from_str::<Map<String, Value>>(&s).map_err(|e| conv(col, e)))
        .transpose()
}

pub(super) fn execution_status(row: &Row<'_>, col: usize) -> rusqlite::Result<ExecutionStatus> {
    let s: String = row.get(col)?;
    ExecutionStatus::parse(&s).ok_or_else(|| conv(col, Bad(format!("unknown execution status '{s}'"))))
}

pub(super) fn task_status(row: &Row<'_>, col: usize) -> rusqlite::Result<TaskStatus> {
    let s: String = row.get(col)?;
    TaskStatus::parse(&s).ok_or_else(|| conv(col, Bad(format!("unknown task status '{s}'"))))
}

pub(super) fn event_kind(row: &Row<'_>, col: usize) -> rusqlite::Result<EventKind> {
    let s: String = row.get(col)?;
    EventKind::parse(&s).ok_or_else(|| conv(col, Bad(format!("unknown event kind '{s}'"))))
}

pub(super) fn execution_id(row: &Row<'_>, col: usize) -> rusqlite::Result<ExecutionId> {
    row.get::<_, String>(col)?.parse().map_err(|e| conv(col, e))
}

pub(super) fn execution(row: &Row<'_>) -> rusqlite::Result<ExecutionRecord> {
    Ok(ExecutionRecord {
        id: execution_id(row, 0)?,
        workflow: row.get(1)?,
        package_id: row.get::<_, String>(2)?.parse().map_err(|e| conv(2, e))?,
        package_version: row.get(3)?,
        status: execution_status(row, 4)?,
        context: object(row, 5)?.unwrap_or_default(),
        error: row.get(6)?,
        origin: row.get(7)?,
        idempotency_key: row.get(8)?,
        created_at: required_time(row, 9)?,
        started_at: time(row, 10)?,
        finished_at: time(row, 11)?,
        created_by: row
            .get::<_, Option<String>>(12)?
            .map(|s| s.parse::<ApiKeyId>().map_err(|e| conv(12, e)))
            .transpose()?,
        fired: match (row.get::<_, Option<String>>(13)?, time(row, 14)?) {
            (Some(trigger), Some(scheduled_at)) => Some(Fired { trigger, scheduled_at }),
            _ => None,
        },
    })
}

pub(super) fn task(row: &Row<'_>, plan: &Plan) -> rusqlite::Result<TaskRecord> {
    let position: usize = row.get::<_, i64>(0)?.try_into().map_err(|e| conv(0, e))?;
    Ok(TaskRecord {
        max_attempts: plan.tasks.get(position).map_or(1, |t| t.retry.max_attempts()),
        position: row.get::<_, i64>(0)?.try_into().map_err(|e| conv(0, e))?,
        task_id: row.get(1)?,
        status: task_status(row, 2)?,
        attempts: row.get::<_, i64>(3)?.try_into().map_err(|e| conv(3, e))?,
        ready_at: time(row, 4)?,
        started_at: time(row, 5)?,
        finished_at: time(row, 6)?,
        output: object(row, 7)?,
        error: row.get(8)?,
    })
}

pub(super) fn find_execution(conn: &Connection, id: ExecutionId) -> rusqlite::Result<Option<ExecutionRecord>> {
    conn.prepare_cached(&format!("SELECT {EXECUTION_COLUMNS} FROM executions WHERE id = ?1"))?
        .query_row([id.to_string()], execution)
        .optional()
}

pub(super) fn list(conn: &Connection, q: &ExecutionQuery) -> rusqlite::Result<ExecutionPage> {
    // The trigger is the last parameter of each statement.
    let filter = |t: u8| {
        format!("(?1 IS NULL OR status = ?1) AND (?2 IS NULL OR workflow = ?2) AND (?{t} IS NULL OR trigger = ?{t})")
    };
    let status = q.status.map(ExecutionStatus::as_str);
    let total: i64 = conn
        .prepare_cached(&format!("SELECT count(*) FROM executions WHERE {}", filter(3)))?
        .query_row(params![status, q.workflow, q.trigger], |r| r.get(0))?;
    let executions = conn
        .prepare_cached(&format!(
            "SELECT {EXECUTION_COLUMNS} FROM executions WHERE {} ORDER BY created_at DESC, id DESC LIMIT ?3 OFFSET ?4",
            filter(5)
        ))?
        .query_map(
            params![status, q.workflow, q.limit, i64::try_from(q.offset).unwrap_or(i64::MAX), q.trigger],
            execution,
        )?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ExecutionPage { executions, total: total.unsigned_abs() })
}

pub(super) fn exists(conn: &Connection, id: ExecutionId) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT 1 FROM executions WHERE id = ?1")?
        .query_row([id.to_string()], |_| Ok(()))
        .optional()
        .map(|r| r.is_some())
}
