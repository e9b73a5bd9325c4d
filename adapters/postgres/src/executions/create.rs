//! Storing a new execution and its tasks, once per idempotency key.

use cloacina_domain::execution::{EventDraft, ExecutionCreated, NewExecution, TaskStatus};
use cloacina_domain::ports::StoreError;
use sqlx::PgConnection;
use sqlx::types::Json;

use crate::db::translate;

use super::*;

pub(crate) async fn create(tx: &mut PgConnection, new: &NewExecution) -> Result<(ExecutionCreated, bool), StoreError> {
    if let Some(key) = &new.idempotency_key {
        let first =
            sqlx::query(concat!("SELECT ", execution_columns!(), " FROM executions WHERE idempotency_key = $1"))
                .bind(key)
                .fetch_optional(&mut *tx)
                .await
                .map_err(translate)?;
        if let Some(row) = first {
            return Ok((ExecutionCreated::Existing(execution(&row).map_err(translate)?), false));
        }
    }
    let paused: Option<bool> = sqlx::query_scalar("SELECT paused FROM workflows WHERE name = $1")
        .bind(&new.workflow)
        .fetch_optional(&mut *tx)
        .await
        .map_err(translate)?;
    match paused {
        None => return Ok((ExecutionCreated::Gone, false)),
        Some(true) => return Ok((ExecutionCreated::Paused, false)),
        Some(false) => {}
    }
    // Locks the version against a concurrent delete until this commits.
    let package: Option<i32> = sqlx::query_scalar("SELECT 1 FROM packages WHERE id = $1 FOR SHARE")
        .bind(new.package_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(translate)?;
    if package.is_none() {
        return Ok((ExecutionCreated::Gone, false));
    }
    let inserted = sqlx::query(concat!(
        "INSERT INTO executions (id, workflow, package_id, package_version, status, plan, context, origin,
                                 idempotency_key, created_at, created_by, trigger, scheduled_at)
         VALUES ($1, $2, $3, $4, 'pending', $5, $6, $7, $8, $9, $10, $11, $12)
         ON CONFLICT (idempotency_key) DO NOTHING
         RETURNING ",
        execution_columns!()
    ))
    .bind(new.id.as_uuid())
    .bind(&new.workflow)
    .bind(new.package_id)
    .bind(&new.package_version)
    .bind(Json(new.plan.to_json()))
    .bind(Json(&new.context))
    .bind(&new.origin)
    .bind(&new.idempotency_key)
    .bind(new.created_at)
    .bind(new.created_by.map(|k| k.as_uuid()))
    .bind(new.fired.as_ref().map(|f| f.trigger.as_str()))
    .bind(new.fired.as_ref().map(|f| f.scheduled_at))
    .fetch_optional(&mut *tx)
    .await
    .map_err(translate)?;
    let Some(row) = inserted else {
        // A concurrent request with the same key committed first.
        let row = sqlx::query(concat!("SELECT ", execution_columns!(), " FROM executions WHERE idempotency_key = $1"))
            .bind(&new.idempotency_key)
            .fetch_one(&mut *tx)
            .await
            .map_err(translate)?;
        return Ok((ExecutionCreated::Existing(execution(&row).map_err(translate)?), false));
    };
    let record = execution(&row).map_err(translate)?;
    let start = new.plan.start();
    let ids: Vec<&str> = new.plan.tasks.iter().map(|t| t.id.as_str()).collect();
    let statuses: Vec<&str> = start.status.iter().map(|s| s.as_str()).collect();
    let readied = start.status.contains(&TaskStatus::Ready);
    sqlx::query(
        "INSERT INTO execution_tasks (execution_id, position, task_id, status, ready_at)
         SELECT $1, (n - 1)::int, t, s, CASE WHEN s = 'ready' THEN $2 END
         FROM unnest($3::text[], $4::text[]) WITH ORDINALITY AS x(t, s, n)",
    )
    .bind(new.id.as_uuid())
    .bind(new.created_at)
    .bind(&ids)
    .bind(&statuses)
    .execute(&mut *tx)
    .await
    .map_err(translate)?;
    let created = EventDraft::created(new);
    insert_events(tx, new.created_at, &[(new.id.as_uuid(), created)]).await?;
    Ok((ExecutionCreated::Created(record), readied))
}
