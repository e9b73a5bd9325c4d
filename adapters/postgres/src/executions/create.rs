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

/// Stores the executions one scheduler pass fires, in three statements whatever their number.
/// The caller has read each workflow (not paused) and locked its package version `FOR SHARE`
/// in the same transaction; every execution carries its fire's key, and one whose key is
/// stored already (another pass fired that scheduled time) is left out. Returns the ids
/// stored, in the order given, and whether any readied a task.
pub(crate) async fn create_fired(
    tx: &mut PgConnection,
    news: &[NewExecution],
) -> Result<(Vec<cloacina_domain::execution::ExecutionId>, bool), StoreError> {
    if news.is_empty() {
        return Ok((Vec::new(), false));
    }
    let col = |f: fn(&NewExecution) -> Option<&str>| news.iter().map(f).collect::<Vec<_>>();
    let ids: Vec<uuid::Uuid> = news.iter().map(|n| n.id.as_uuid()).collect();
    let packages: Vec<uuid::Uuid> = news.iter().map(|n| n.package_id).collect();
    let plans: Vec<Json<Value>> = news.iter().map(|n| Json(n.plan.to_json())).collect();
    let contexts: Vec<Json<&serde_json::Map<String, Value>>> = news.iter().map(|n| Json(&n.context)).collect();
    let created: Vec<chrono::DateTime<chrono::Utc>> = news.iter().map(|n| n.created_at).collect();
    let scheduled: Vec<Option<chrono::DateTime<chrono::Utc>>> =
        news.iter().map(|n| n.fired.as_ref().map(|f| f.scheduled_at)).collect();
    let stored: Vec<uuid::Uuid> = sqlx::query_scalar(
        "INSERT INTO executions (id, workflow, package_id, package_version, status, plan, context, origin,
                                 idempotency_key, created_at, trigger, scheduled_at)
         SELECT id, workflow, package_id, version, 'pending', plan, context, origin, key, created_at, trigger, scheduled_at
         FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::text[], $5::jsonb[], $6::jsonb[], $7::text[], $8::text[],
                     $9::timestamptz[], $10::text[], $11::timestamptz[])
              AS x(id, workflow, package_id, version, plan, context, origin, key, created_at, trigger, scheduled_at)
         ON CONFLICT (idempotency_key) DO NOTHING
         RETURNING id",
    )
    .bind(&ids)
    .bind(col(|n| Some(n.workflow.as_str())))
    .bind(&packages)
    .bind(col(|n| Some(n.package_version.as_str())))
    .bind(&plans)
    .bind(&contexts)
    .bind(col(|n| Some(n.origin.as_str())))
    .bind(col(|n| n.idempotency_key.as_deref()))
    .bind(&created)
    .bind(col(|n| n.fired.as_ref().map(|f| f.trigger.as_str())))
    .bind(&scheduled)
    .fetch_all(&mut *tx)
    .await
    .map_err(translate)?;
    let stored: std::collections::HashSet<uuid::Uuid> = stored.into_iter().collect();
    let kept: Vec<&NewExecution> = news.iter().filter(|n| stored.contains(&n.id.as_uuid())).collect();
    let (mut task_exec, mut task_pos, mut task_ids, mut task_status, mut task_ready) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut readied = false;
    for n in &kept {
        let start = n.plan.start();
        for (position, (task, status)) in n.plan.tasks.iter().zip(&start.status).enumerate() {
            task_exec.push(n.id.as_uuid());
            task_pos.push(i32::try_from(position).unwrap_or(i32::MAX));
            task_ids.push(task.id.as_str());
            task_status.push(status.as_str());
            let ready = *status == TaskStatus::Ready;
            readied |= ready;
            task_ready.push(ready.then_some(n.created_at));
        }
    }
    sqlx::query(
        "INSERT INTO execution_tasks (execution_id, position, task_id, status, ready_at)
         SELECT * FROM unnest($1::uuid[], $2::int[], $3::text[], $4::text[], $5::timestamptz[])",
    )
    .bind(&task_exec)
    .bind(&task_pos)
    .bind(&task_ids)
    .bind(&task_status)
    .bind(&task_ready)
    .execute(&mut *tx)
    .await
    .map_err(translate)?;
    if let Some(first) = kept.first() {
        let events: Vec<(uuid::Uuid, EventDraft)> =
            kept.iter().map(|n| (n.id.as_uuid(), EventDraft::created(n))).collect();
        insert_events(tx, first.created_at, &events).await?;
    }
    Ok((kept.iter().map(|n| n.id).collect(), readied))
}
