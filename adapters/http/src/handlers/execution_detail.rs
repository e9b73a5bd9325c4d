//! What an execution is made of: its tasks, its events and each task's logs, under
//! `/v1/tenants/{tenant}/executions/{id}`.

use axum::Json;
use axum::extract::{Path, State};
use cloacina_domain::execution::{EventRecord, ExecutionRecord, TaskLog, TaskRecord};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::executions::{execution_id, from_error};
use super::wire_time;
use crate::auth::{Caller, TargetTenant};
use crate::error::ApiError;
use crate::openapi::ErrorBody;
use crate::query::{DEFAULT_PAGE, StrictQuery, pagination, whole};
use crate::state::AppState;

/// One task of an execution: the reference server's fields (docs/api.md, "Reference
/// compatibility"), and ours.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TaskView {
    /// A stable id of this task of this execution.
    pub id: String,
    /// The task's id in its workflow (as `task_id`).
    pub task_name: String,
    pub task_id: String,
    pub position: usize,
    /// `NotStarted`, `Ready`, `Running`, `Completed`, `Failed`, `Skipped` or `Cancelled`.
    #[schema(value_type = String, example = "Completed")]
    pub status: &'static str,
    /// Attempts started.
    pub attempt: u32,
    /// The most it gets: the first and its retries.
    pub max_attempts: u32,
    pub ready_at: Option<String>,
    pub started_at: Option<String>,
    pub completed_at: Option<String>,
    /// When the task was created: with its execution.
    pub created_at: String,
    /// When it last changed.
    pub updated_at: String,
    /// Always `null`: no task has a state finer than its status.
    #[schema(value_type = Option<String>)]
    pub sub_status: Option<String>,
    /// Why its last attempt failed.
    pub last_error: Option<String>,
    /// Always `null`: `last_error` says it all.
    #[schema(value_type = Option<String>)]
    pub error_details: Option<String>,
    /// The object the task wrote to `$CLOACINA_OUTPUT_FILE`.
    #[schema(value_type = Option<Object>)]
    pub output: Option<Map<String, Value>>,
}

impl TaskView {
    fn new(execution: &ExecutionRecord, t: TaskRecord) -> Self {
        let id = uuid::Uuid::new_v5(&execution.id.as_uuid(), t.position.to_string().as_bytes());
        let updated = [t.finished_at, t.started_at, t.ready_at].into_iter().flatten().max();
        Self {
            id: id.to_string(),
            task_name: t.task_id.clone(),
            task_id: t.task_id,
            position: t.position,
            status: t.status.wire_name(),
            attempt: t.attempts,
            max_attempts: t.max_attempts,
            ready_at: t.ready_at.map(wire_time),
            started_at: t.started_at.map(wire_time),
            completed_at: t.finished_at.map(wire_time),
            created_at: wire_time(execution.created_at),
            updated_at: wire_time(updated.unwrap_or(execution.created_at).max(execution.created_at)),
            sub_status: None,
            last_error: t.error,
            error_details: None,
            output: t.output,
        }
    }
}

/// An execution's tasks.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TaskList {
    pub tenant_id: String,
    pub execution_id: String,
    pub tasks: Vec<TaskView>,
}

/// `GET /v1/tenants/{tenant}/executions/{id}/tasks`: in dependency order.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/executions/{id}/tasks", tag = "executions", operation_id = "list_execution_tasks",
    params(("tenant" = String, Path, description = "Tenant name"), ("id" = String, Path, description = "Execution id")),
    responses((status = 200, body = TaskList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn tasks(
    State(state): State<AppState>,
    caller: Caller,
    TargetTenant(tenant): TargetTenant,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<TaskList>, ApiError> {
    let id = execution_id(&id)?;
    let tasks = state.executions.tasks(&caller.0, &tenant, id).await.map_err(from_error)?;
    let execution = state.executions.get(&caller.0, &tenant, id).await.map_err(from_error)?;
    Ok(Json(TaskList {
        tenant_id: tenant.to_string(),
        execution_id: id.to_string(),
        tasks: tasks.into_iter().map(|t| TaskView::new(&execution, t)).collect(),
    }))
}

/// `GET …/events`' query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Only events after this event id (default 0: from the start).
    #[param(value_type = Option<i64>, minimum = 0)]
    pub since: Option<String>,
    /// Most events returned, 1 to 1,000 (default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    pub limit: Option<String>,
}

/// One event: the reference server's fields (docs/api.md, "Reference compatibility"), and
/// its detail as an object.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventView {
    /// The event's id, as text (the number `sequence_num` is).
    pub id: String,
    /// Ids grow with time within a tenant; `since` takes one.
    pub sequence_num: i64,
    /// `execution_created`, `task_started`, `task_succeeded`, `task_retrying`, `task_failed`,
    /// `task_ready`, `task_skipped`, `task_cancelled`, `task_lease_expired`, `task_released`,
    /// `execution_succeeded`, `execution_failed`, `execution_cancelled`, `execution_retried`.
    pub event_type: String,
    /// The detail as JSON text (`null` when it has none), as the reference's clients read it.
    pub event_data: Option<String>,
    /// The task it is about, if any.
    pub task_name: Option<String>,
    pub created_at: String,
    /// The detail as an object.
    #[schema(value_type = Object)]
    pub detail: Value,
}

impl From<EventRecord> for EventView {
    fn from(e: EventRecord) -> Self {
        let has_detail = e.detail.as_object().is_some_and(|m| !m.is_empty());
        Self {
            id: e.id.to_string(),
            sequence_num: e.id,
            event_type: e.kind.as_str().to_owned(),
            event_data: has_detail.then(|| e.detail.to_string()),
            task_name: e.task,
            created_at: e.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, false),
            detail: e.detail,
        }
    }
}

/// A page of events, oldest first; `next` is the `since` of the following page.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventList {
    pub tenant_id: String,
    pub execution_id: String,
    pub events: Vec<EventView>,
    pub next: i64,
}

/// `GET /v1/tenants/{tenant}/executions/{id}/events?since=`.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/executions/{id}/events", tag = "executions", operation_id = "list_execution_events",
    params(("tenant" = String, Path, description = "Tenant name"), ("id" = String, Path, description = "Execution id"), EventsQuery),
    responses((status = 200, body = EventList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn events(
    State(state): State<AppState>,
    caller: Caller,
    TargetTenant(tenant): TargetTenant,
    Path((_, id)): Path<(String, String)>,
    StrictQuery(q): StrictQuery<EventsQuery>,
) -> Result<Json<EventList>, ApiError> {
    let id = execution_id(&id)?;
    let since = whole("since", q.since.as_deref(), 0)?;
    let (limit, _) = pagination(q.limit.as_deref(), None, DEFAULT_PAGE)?;
    let events = state.executions.events(&caller.0, &tenant, id, since, limit).await.map_err(from_error)?;
    let next = events.last().map_or(since, |e| e.id);
    Ok(Json(EventList {
        tenant_id: tenant.to_string(),
        execution_id: id.to_string(),
        events: events.into_iter().map(EventView::from).collect(),
        next,
    }))
}

/// One attempt's captured output: a running attempt's as far as it has come (kept about
/// every second).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LogView {
    pub attempt: u32,
    pub stdout: String,
    pub stderr: String,
    /// Whether either stream was cut at the server's cap.
    pub truncated: bool,
    /// When its output was last kept.
    pub at: String,
    /// Whether the attempt's end was kept; `false` while it runs (or if its server died
    /// under it).
    pub ended: bool,
}

impl From<TaskLog> for LogView {
    fn from(l: TaskLog) -> Self {
        Self {
            attempt: l.attempt,
            stdout: l.stdout,
            stderr: l.stderr,
            truncated: l.truncated,
            at: wire_time(l.at),
            ended: l.ended,
        }
    }
}

/// A task's logs, every attempt.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LogList {
    pub execution_id: String,
    pub task_id: String,
    pub attempts: Vec<LogView>,
}

/// `GET /v1/tenants/{tenant}/executions/{id}/tasks/{task}/logs`.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/executions/{id}/tasks/{task}/logs", tag = "executions", operation_id = "get_task_logs",
    params(("tenant" = String, Path, description = "Tenant name"), ("id" = String, Path, description = "Execution id"),
        ("task" = String, Path, description = "Task id")),
    responses((status = 200, body = LogList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn logs(
    State(state): State<AppState>,
    caller: Caller,
    TargetTenant(tenant): TargetTenant,
    Path((_, id, task)): Path<(String, String, String)>,
) -> Result<Json<LogList>, ApiError> {
    let id = execution_id(&id)?;
    let logs = state.executions.logs(&caller.0, &tenant, id, &task).await.map_err(from_error)?;
    Ok(Json(LogList {
        execution_id: id.to_string(),
        task_id: task,
        attempts: logs.into_iter().map(LogView::from).collect(),
    }))
}
