//! Trigger endpoints under `/v1/tenants/{tenant}/triggers` (docs/triggers.md). Shapes are the
//! reference server's (wire.md) with ours added: time zone, policies, counts.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use cloacina_domain::TenantName;
use cloacina_domain::trigger::TriggerRecord;
use cloacina_ports::{TriggerDetail, TriggerError};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::wire_time;
use crate::auth::{Caller, TargetTenant};
use crate::error::{ApiError, OptionalJsonBody};
use crate::openapi::ErrorBody;
use crate::query::{DEFAULT_PAGE, Paging, StrictQuery, pagination};
use crate::state::AppState;

fn from_error(e: TriggerError) -> ApiError {
    match e {
        TriggerError::Denied(d) => ApiError::forbidden(&d),
        TriggerError::NoSuchTenant(t) => {
            ApiError::not_found("tenant_not_found", format!("tenant '{t}' does not exist"))
        }
        TriggerError::NoSuchTrigger(t) => {
            ApiError::not_found("trigger_not_found", format!("trigger '{t}' does not exist"))
        }
        e @ TriggerError::WorkflowPaused(_) => ApiError::new(StatusCode::CONFLICT, "workflow_paused", e.to_string()),
        TriggerError::Store(e) => ApiError::store(&e),
    }
}

/// How many scheduled times of a trigger ended each way.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FireCountsView {
    pub fired: u64,
    pub caught_up: u64,
    pub skipped_overlap: u64,
    pub skipped_paused: u64,
    pub skipped_catchup: u64,
    pub missed: u64,
}

/// One trigger.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TriggerView {
    /// The trigger's name (the reference's schedule id).
    pub id: String,
    pub trigger_name: String,
    pub name: String,
    /// Always `cron`.
    #[schema(value_type = String, example = "cron")]
    pub schedule_type: &'static str,
    pub workflow_name: String,
    pub package_name: String,
    /// `!paused`.
    pub enabled: bool,
    pub cron_expression: String,
    pub timezone: String,
    /// Always `null`: cron triggers do not poll.
    #[schema(value_type = Option<u64>)]
    pub poll_interval_ms: Option<u64>,
    /// `skip`, `latest` or `all`.
    pub catchup: String,
    pub catchup_window_seconds: u64,
    /// `skip`, `allow`, `buffer_one` or `cancel_other`.
    pub overlap: String,
    #[schema(value_type = Object)]
    pub context: Map<String, Value>,
    /// The next scheduled time; `null` while paused or if it never matches again.
    pub next_run_at: Option<String>,
    /// The scheduled time of the newest fire that started an execution.
    pub last_run_at: Option<String>,
    /// Always `null`: cron triggers do not poll.
    #[schema(value_type = Option<String>)]
    pub last_poll_at: Option<String>,
    pub paused: bool,
    pub paused_at: Option<String>,
    pub counts: FireCountsView,
    pub created_at: String,
    pub updated_at: String,
}

impl From<TriggerRecord> for TriggerView {
    fn from(t: TriggerRecord) -> Self {
        let name = t.name().to_owned();
        let c = t.counts;
        Self {
            id: name.clone(),
            trigger_name: name.clone(),
            name,
            schedule_type: "cron",
            workflow_name: t.workflow,
            package_name: t.package_name,
            enabled: !t.paused,
            cron_expression: t.def.cron.as_str().to_owned(),
            timezone: t.def.timezone.name().to_owned(),
            poll_interval_ms: None,
            catchup: t.def.catchup.as_str().to_owned(),
            catchup_window_seconds: t.def.catchup_window.as_secs(),
            overlap: t.def.overlap.as_str().to_owned(),
            context: t.def.context,
            next_run_at: if t.paused { None } else { t.next_fire_at.map(wire_time) },
            last_run_at: t.last_fire_at.map(wire_time),
            last_poll_at: None,
            paused: t.paused,
            paused_at: t.paused_at.map(wire_time),
            counts: FireCountsView {
                fired: c.fired,
                caught_up: c.caught_up,
                skipped_overlap: c.skipped_overlap,
                skipped_paused: c.skipped_paused,
                skipped_catchup: c.skipped_catchup,
                missed: c.missed,
            },
            created_at: wire_time(t.created_at),
            updated_at: wire_time(t.updated_at),
        }
    }
}

/// A page of triggers, by name.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TriggerList {
    pub tenant_id: String,
    pub items: Vec<TriggerView>,
    pub total: u64,
    pub limit: u32,
    pub offset: u64,
}

/// `GET /v1/tenants/{tenant}/triggers`.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/triggers", tag = "triggers", operation_id = "list_triggers",
    params(("tenant" = String, Path, description = "Tenant name"), Paging),
    responses((status = 200, body = TriggerList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    TargetTenant(tenant): TargetTenant,
    StrictQuery(q): StrictQuery<Paging>,
) -> Result<Json<TriggerList>, ApiError> {
    let (limit, offset) = pagination(q.limit.as_deref(), q.offset.as_deref(), DEFAULT_PAGE)?;
    let page = state.triggers.list(&caller.0, &tenant, limit, offset).await.map_err(from_error)?;
    Ok(Json(TriggerList {
        tenant_id: tenant.to_string(),
        items: page.items.into_iter().map(TriggerView::from).collect(),
        total: page.total,
        limit,
        offset,
    }))
}

/// One of a trigger's recent executions.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RecentExecution {
    pub id: String,
    pub execution_id: String,
    pub scheduled_time: Option<String>,
    pub started_at: String,
    pub completed_at: Option<String>,
    /// `Pending`, `Running`, `Completed`, `Failed` or `Cancelled`.
    #[schema(value_type = String, example = "Completed")]
    pub status: &'static str,
    /// `trigger:<name>` on schedule, `trigger:<name>:manual` by hand.
    pub origin: String,
}

/// A trigger inspected.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TriggerInspection {
    pub tenant_id: String,
    pub schedule: TriggerView,
    /// Its next scheduled times (at most 5; none while paused).
    pub next_fire_times: Vec<String>,
    /// The executions it started, newest first (at most 10).
    pub recent_executions: Vec<RecentExecution>,
}

impl TriggerInspection {
    fn new(tenant: &TenantName, d: TriggerDetail) -> Self {
        Self {
            tenant_id: tenant.to_string(),
            schedule: d.trigger.into(),
            next_fire_times: d.upcoming.into_iter().map(wire_time).collect(),
            recent_executions: d
                .recent
                .into_iter()
                .map(|e| RecentExecution {
                    id: e.id.to_string(),
                    execution_id: e.id.to_string(),
                    scheduled_time: e.fired.map(|f| wire_time(f.scheduled_at)),
                    started_at: wire_time(e.started_at.unwrap_or(e.created_at)),
                    completed_at: e.finished_at.map(wire_time),
                    status: e.status.wire_name(),
                    origin: e.origin,
                })
                .collect(),
        }
    }
}

/// `GET /v1/tenants/{tenant}/triggers/{name}`: the trigger, its next 5 fire times and its 10
/// most recent executions.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/triggers/{name}", tag = "triggers", operation_id = "get_trigger",
    params(("tenant" = String, Path, description = "Tenant name"), ("name" = String, Path, description = "Trigger name")),
    responses((status = 200, body = TriggerInspection), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    TargetTenant(tenant): TargetTenant,
    Path((_, name)): Path<(String, String)>,
) -> Result<Json<TriggerInspection>, ApiError> {
    let detail = state.triggers.get(&caller.0, &tenant, &name).await.map_err(from_error)?;
    Ok(Json(TriggerInspection::new(&tenant, detail)))
}

/// A pause's or resume's answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TriggerPauseAnswer {
    pub tenant_id: String,
    pub id: String,
    pub name: String,
    /// `paused` or `resumed`.
    #[schema(value_type = String, example = "paused")]
    pub status: &'static str,
    pub paused: bool,
    pub next_run_at: Option<String>,
}

async fn set_paused(
    state: &AppState,
    caller: &Caller,
    tenant: TenantName,
    name: &str,
    paused: bool,
) -> Result<Json<TriggerPauseAnswer>, ApiError> {
    let t = state.triggers.set_paused(&caller.0, &tenant, name, paused).await.map_err(from_error)?;
    Ok(Json(TriggerPauseAnswer {
        tenant_id: tenant.to_string(),
        id: t.name().to_owned(),
        name: t.name().to_owned(),
        status: if paused { "paused" } else { "resumed" },
        paused: t.paused,
        next_run_at: if t.paused { None } else { t.next_fire_at.map(wire_time) },
    }))
}

/// `POST /v1/tenants/{tenant}/triggers/{name}/pause`: nothing fires, nothing is counted, until
/// it is resumed. Pausing twice changes nothing.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/triggers/{name}/pause", tag = "triggers", operation_id = "pause_trigger",
    params(("tenant" = String, Path, description = "Tenant name"), ("name" = String, Path, description = "Trigger name")),
    responses((status = 200, body = TriggerPauseAnswer), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn pause(
    State(state): State<AppState>,
    caller: Caller,
    TargetTenant(tenant): TargetTenant,
    Path((_, name)): Path<(String, String)>,
) -> Result<Json<TriggerPauseAnswer>, ApiError> {
    set_paused(&state, &caller, tenant, &name, true).await
}

/// `POST /v1/tenants/{tenant}/triggers/{name}/resume`: scheduled again from now; what came due
/// while paused is not caught up.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/triggers/{name}/resume", tag = "triggers", operation_id = "resume_trigger",
    params(("tenant" = String, Path, description = "Tenant name"), ("name" = String, Path, description = "Trigger name")),
    responses((status = 200, body = TriggerPauseAnswer), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn resume(
    State(state): State<AppState>,
    caller: Caller,
    TargetTenant(tenant): TargetTenant,
    Path((_, name)): Path<(String, String)>,
) -> Result<Json<TriggerPauseAnswer>, ApiError> {
    set_paused(&state, &caller, tenant, &name, false).await
}

/// `POST …/fire`'s body. Both the body and `event` may be left out.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FireBody {
    /// Merged over the trigger's context (the event wins a clash). `null` is the same as
    /// leaving it out.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub event: Option<Map<String, Value>>,
}

/// One execution a fire started.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FiredExecution {
    pub workflow_name: String,
    pub execution_id: String,
}

/// A fire's answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FireAnswer {
    pub tenant_id: String,
    pub trigger: String,
    pub fired: bool,
    pub executions: Vec<FiredExecution>,
}

/// `POST /v1/tenants/{tenant}/triggers/{name}/fire`: one execution now, outside the schedule
/// (its origin `trigger:<name>:manual`). A paused trigger fires too; a paused workflow answers
/// 409.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/triggers/{name}/fire", tag = "triggers", operation_id = "fire_trigger",
    params(("tenant" = String, Path, description = "Tenant name"), ("name" = String, Path, description = "Trigger name")),
    request_body(content = FireBody, description = "Optional"),
    responses((status = 200, body = FireAnswer), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn fire(
    State(state): State<AppState>,
    caller: Caller,
    TargetTenant(tenant): TargetTenant,
    Path((_, name)): Path<(String, String)>,
    OptionalJsonBody(body): OptionalJsonBody<FireBody>,
) -> Result<Json<FireAnswer>, ApiError> {
    let e = state.triggers.fire(&caller.0, &tenant, &name, body.event.unwrap_or_default()).await.map_err(from_error)?;
    Ok(Json(FireAnswer {
        tenant_id: tenant.to_string(),
        trigger: name,
        fired: true,
        executions: vec![FiredExecution { workflow_name: e.workflow, execution_id: e.id.to_string() }],
    }))
}
