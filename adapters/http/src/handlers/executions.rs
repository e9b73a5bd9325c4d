//! Executions: `POST …/workflows/{name}/execute`, and listing, inspecting, cancelling and
//! retrying them under `/v1/tenants/{tenant}/executions` (their tasks, events and logs are in
//! [`super::execution_detail`]).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use cloacina_domain::execution::{ExecutionId, ExecutionQuery, ExecutionRecord, ExecutionStatus};
use cloacina_ports::ExecutionError;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::wire_time;
use crate::auth::{Caller, TargetTenant};
use crate::error::{ApiError, OptionalJsonBody};
use crate::openapi::ErrorBody;
use crate::query::{DEFAULT_PAGE, StrictQuery, pagination};
use crate::state::AppState;

pub(super) fn from_error(e: ExecutionError) -> ApiError {
    match e {
        ExecutionError::Denied(d) => ApiError::forbidden(&d),
        ExecutionError::NoSuchTenant(t) => {
            ApiError::not_found("tenant_not_found", format!("tenant '{t}' does not exist"))
        }
        ExecutionError::NoSuchWorkflow(w) => {
            ApiError::not_found("workflow_not_found", format!("workflow '{w}' does not exist"))
        }
        e @ ExecutionError::NoSuchExecution(_) => ApiError::not_found("execution_not_found", e.to_string()),
        e @ ExecutionError::NoSuchTask(..) => ApiError::not_found("task_not_found", e.to_string()),
        e @ ExecutionError::Paused(_) => ApiError::new(StatusCode::CONFLICT, "workflow_paused", e.to_string()),
        e @ ExecutionError::BadIdempotencyKey => ApiError::invalid_field("Idempotency-Key", e.to_string()),
        e @ ExecutionError::IdempotencyKeyReused(..) => {
            ApiError::new(StatusCode::CONFLICT, "idempotency_key_reused", e.to_string()).with_field("Idempotency-Key")
        }
        e @ ExecutionError::WrongState(_) => ApiError::new(StatusCode::CONFLICT, "invalid_state", e.to_string()),
        ExecutionError::Store(e) => ApiError::store(&e),
    }
}

/// An execution id from the path: anything but a UUID names no execution.
pub(super) fn execution_id(raw: &str) -> Result<ExecutionId, ApiError> {
    raw.parse().map_err(|_| ApiError::not_found("execution_not_found", format!("execution {raw} does not exist")))
}

/// `POST …/execute`'s body. Both the body and `context` may be left out.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecuteBody {
    /// The context the workflow's first tasks receive: a JSON object.
    /// `null` is the same as leaving it out.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub context: Option<Map<String, Value>>,
}

/// An accepted execution.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ExecuteAnswer {
    pub execution_id: String,
    pub workflow_name: String,
    pub tenant_id: String,
    /// Always `scheduled`.
    #[schema(value_type = String, example = "scheduled")]
    pub status: &'static str,
    pub package_version: String,
    pub created_at: String,
}

/// `POST /v1/tenants/{tenant}/workflows/{name}/execute`: 202 with the new execution. With an
/// `Idempotency-Key` header, a repeat answers the first execution (header
/// `Idempotent-Replayed: true`). A paused workflow answers 409.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/workflows/{name}/execute", tag = "executions", operation_id = "execute_workflow",
    params(("tenant" = String, Path, description = "Tenant name"), ("name" = String, Path, description = "Workflow name"),
        ("Idempotency-Key" = Option<String>, Header, description = "A repeat with the same key returns the first execution")),
    request_body(content = ExecuteBody, description = "Optional"),
    responses((status = 202, body = ExecuteAnswer), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn execute(
    State(state): State<AppState>,
    caller: Caller,
    TargetTenant(tenant): TargetTenant,
    Path((_, name)): Path<(String, String)>,
    headers: HeaderMap,
    OptionalJsonBody(body): OptionalJsonBody<ExecuteBody>,
) -> Result<Response, ApiError> {
    let key = match headers.get("idempotency-key") {
        None => None,
        Some(v) => Some(v.to_str().map_err(|_| from_error(ExecutionError::BadIdempotencyKey))?.to_owned()),
    };
    let accepted = state
        .executions
        .execute(&caller.0, &tenant, &name, body.context.unwrap_or_default(), key)
        .await
        .map_err(from_error)?;
    let e = &accepted.execution;
    let answer = ExecuteAnswer {
        execution_id: e.id.to_string(),
        workflow_name: e.workflow.clone(),
        tenant_id: tenant.to_string(),
        status: "scheduled",
        package_version: e.package_version.clone(),
        created_at: wire_time(e.created_at),
    };
    let mut response = (StatusCode::ACCEPTED, Json(answer)).into_response();
    if accepted.replayed {
        response.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// One execution.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ExecutionView {
    /// The execution's id, as `execution_id` (listings' rows carry both names).
    pub id: String,
    pub execution_id: String,
    pub tenant_id: String,
    pub workflow_name: String,
    pub package_version: String,
    /// `Pending`, `Running`, `Completed`, `Failed` or `Cancelled`.
    #[schema(value_type = String, example = "Completed")]
    pub status: &'static str,
    /// The context it started with.
    #[schema(value_type = Object)]
    pub context: Map<String, Value>,
    /// Why it failed.
    pub error: Option<String>,
    /// `api`, `trigger:<name>` (on schedule) or `trigger:<name>:manual` (fired by hand).
    pub origin: String,
    /// The same, under the reference server's name.
    pub trigger_origin: String,
    pub idempotency_key: Option<String>,
    pub created_at: String,
    /// When its first task started; until then, when it was accepted.
    pub started_at: String,
    /// When it finished; `null` until then.
    pub completed_at: Option<String>,
    /// From start to finish (or to now, while it runs), in milliseconds.
    pub duration_ms: Option<i64>,
    pub created_by: Option<String>,
    /// The trigger that started it, if one did.
    pub trigger: Option<String>,
    /// The scheduled time it was fired for (the time of a fire by hand).
    pub scheduled_time: Option<String>,
}

impl ExecutionView {
    fn new(tenant: &str, e: ExecutionRecord) -> Self {
        let duration_ms =
            e.started_at.map(|s| (e.finished_at.unwrap_or_else(chrono::Utc::now) - s).num_milliseconds().max(0));
        Self {
            id: e.id.to_string(),
            execution_id: e.id.to_string(),
            tenant_id: tenant.to_owned(),
            workflow_name: e.workflow,
            package_version: e.package_version,
            status: e.status.wire_name(),
            context: e.context,
            error: e.error,
            trigger_origin: e.origin.clone(),
            origin: e.origin,
            idempotency_key: e.idempotency_key,
            created_at: wire_time(e.created_at),
            started_at: wire_time(e.started_at.unwrap_or(e.created_at)),
            completed_at: e.finished_at.map(wire_time),
            duration_ms,
            created_by: e.created_by.map(|k| k.to_string()),
            trigger: e.fired.as_ref().map(|f| f.trigger.clone()),
            scheduled_time: e.fired.map(|f| wire_time(f.scheduled_at)),
        }
    }
}

/// `GET …/executions`' query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only executions in this status (`Completed` or `completed`, …).
    pub status: Option<String>,
    /// Only executions of this workflow.
    pub workflow: Option<String>,
    /// Only executions this trigger started (on schedule or by hand).
    pub trigger: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    pub limit: Option<String>,
    /// Executions to skip (default 0).
    #[param(value_type = Option<i64>, minimum = 0)]
    pub offset: Option<String>,
}

/// A page of executions, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ExecutionList {
    pub tenant_id: String,
    pub items: Vec<ExecutionView>,
    /// How many match the filters in all.
    pub total: u64,
    pub limit: u32,
    pub offset: u64,
}

/// `GET /v1/tenants/{tenant}/executions`.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/executions", tag = "executions", operation_id = "list_executions",
    params(("tenant" = String, Path, description = "Tenant name"), ListQuery),
    responses((status = 200, body = ExecutionList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    TargetTenant(tenant): TargetTenant,
    StrictQuery(q): StrictQuery<ListQuery>,
) -> Result<Json<ExecutionList>, ApiError> {
    let status = q
        .status
        .map(|s| {
            ExecutionStatus::from_filter(&s).ok_or_else(|| {
                ApiError::invalid_field(
                    "status",
                    "status must be one of: Pending, Running, Completed, Failed, Cancelled",
                )
            })
        })
        .transpose()?;
    let (limit, offset) = pagination(q.limit.as_deref(), q.offset.as_deref(), DEFAULT_PAGE)?;
    let page = state
        .executions
        .list(&caller.0, &tenant, &ExecutionQuery { status, workflow: q.workflow, trigger: q.trigger, limit, offset })
        .await
        .map_err(from_error)?;
    Ok(Json(ExecutionList {
        tenant_id: tenant.to_string(),
        items: page.executions.into_iter().map(|e| ExecutionView::new(tenant.as_str(), e)).collect(),
        total: page.total,
        limit,
        offset,
    }))
}

/// `GET /v1/tenants/{tenant}/executions/{id}`.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/executions/{id}", tag = "executions", operation_id = "get_execution",
    params(("tenant" = String, Path, description = "Tenant name"), ("id" = String, Path, description = "Execution id")),
    responses((status = 200, body = ExecutionView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    TargetTenant(tenant): TargetTenant,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<ExecutionView>, ApiError> {
    let e = state.executions.get(&caller.0, &tenant, execution_id(&id)?).await.map_err(from_error)?;
    Ok(Json(ExecutionView::new(tenant.as_str(), e)))
}

/// `POST /v1/tenants/{tenant}/executions/{id}/cancel`: 409 if it has finished.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/executions/{id}/cancel", tag = "executions", operation_id = "cancel_execution",
    params(("tenant" = String, Path, description = "Tenant name"), ("id" = String, Path, description = "Execution id")),
    responses((status = 200, body = ExecutionView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    TargetTenant(tenant): TargetTenant,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<ExecutionView>, ApiError> {
    let e = state.executions.cancel(&caller.0, &tenant, execution_id(&id)?).await.map_err(from_error)?;
    Ok(Json(ExecutionView::new(tenant.as_str(), e)))
}

/// `POST /v1/tenants/{tenant}/executions/{id}/retry`: runs a failed or cancelled execution's
/// unsuccessful tasks again (202); 409 otherwise.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/executions/{id}/retry", tag = "executions", operation_id = "retry_execution",
    params(("tenant" = String, Path, description = "Tenant name"), ("id" = String, Path, description = "Execution id")),
    responses((status = 202, body = ExecutionView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn retry(
    State(state): State<AppState>,
    caller: Caller,
    TargetTenant(tenant): TargetTenant,
    Path((_, id)): Path<(String, String)>,
) -> Result<(StatusCode, Json<ExecutionView>), ApiError> {
    let e = state.executions.retry(&caller.0, &tenant, execution_id(&id)?).await.map_err(from_error)?;
    Ok((StatusCode::ACCEPTED, Json(ExecutionView::new(tenant.as_str(), e))))
}
