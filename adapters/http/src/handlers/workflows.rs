//! Workflow endpoints under `/v1/tenants/{tenant}/workflows`.

use axum::Json;
use axum::extract::{Path, State};
use cloacina_domain::{TenantName, WorkflowSummary};
use cloacina_ports::WorkflowError;
use serde::Serialize;

use super::wire_time;
use crate::auth::{Caller, TargetTenant};
use crate::error::ApiError;
use crate::openapi::ErrorBody;
use crate::state::AppState;

/// A workflow in a listing.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WorkflowView {
    pub name: String,
    pub package_name: String,
    pub version: String,
    pub description: Option<String>,
    /// Task ids, in dependency order.
    pub tasks: Vec<String>,
    pub paused: bool,
    pub updated_at: String,
}

impl From<WorkflowSummary> for WorkflowView {
    fn from(w: WorkflowSummary) -> Self {
        Self {
            name: w.name,
            package_name: w.package_name,
            version: w.version,
            description: w.description,
            tasks: w.tasks,
            paused: w.paused,
            updated_at: wire_time(w.updated_at),
        }
    }
}

/// A listing: the list envelope.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WorkflowList {
    pub tenant_id: String,
    pub items: Vec<WorkflowView>,
    pub total: usize,
}

/// `GET /v1/tenants/{tenant}/workflows`: read in the tenant's own schema, as its role.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/workflows", operation_id = "list_workflows", tag = "workflows",
    params(("tenant" = String, Path, description = "Tenant name")),
    responses((status = 200, body = WorkflowList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    TargetTenant(tenant): TargetTenant,
) -> Result<Json<WorkflowList>, ApiError> {
    let workflows = state.workflows.list(&caller.0, &tenant).await.map_err(from_error)?;
    Ok(Json(WorkflowList {
        tenant_id: tenant.to_string(),
        total: workflows.len(),
        items: workflows.into_iter().map(WorkflowView::from).collect(),
    }))
}

fn from_error(e: WorkflowError) -> ApiError {
    match e {
        WorkflowError::Denied(d) => ApiError::forbidden(&d),
        WorkflowError::NoSuchTenant(t) => {
            ApiError::not_found("tenant_not_found", format!("tenant '{t}' does not exist"))
        }
        WorkflowError::NoSuchWorkflow(w) => {
            ApiError::not_found("workflow_not_found", format!("workflow '{w}' does not exist"))
        }
        WorkflowError::Store(e) => ApiError::store(&e),
    }
}

/// A workflow with the tenant it belongs to.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WorkflowDetail {
    pub tenant_id: String,
    #[serde(flatten)]
    pub workflow: WorkflowView,
}

/// `GET /v1/tenants/{tenant}/workflows/{name}`.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/workflows/{name}", tag = "workflows", operation_id = "get_workflow",
    params(("tenant" = String, Path, description = "Tenant name"), ("name" = String, Path, description = "Workflow name")),
    responses((status = 200, body = WorkflowDetail), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    TargetTenant(tenant): TargetTenant,
    Path((_, name)): Path<(String, String)>,
) -> Result<Json<WorkflowDetail>, ApiError> {
    let w = state.workflows.get(&caller.0, &tenant, &name).await.map_err(from_error)?;
    Ok(Json(WorkflowDetail { tenant_id: tenant.to_string(), workflow: w.into() }))
}

async fn set_paused(
    state: &AppState,
    caller: &Caller,
    tenant: TenantName,
    name: &str,
    paused: bool,
) -> Result<Json<WorkflowDetail>, ApiError> {
    let w = state.workflows.set_paused(&caller.0, &tenant, name, paused).await.map_err(from_error)?;
    Ok(Json(WorkflowDetail { tenant_id: tenant.to_string(), workflow: w.into() }))
}

/// `POST /v1/tenants/{tenant}/workflows/{name}/pause`: its triggers stop firing and new
/// executions are refused until it is resumed. Pausing twice changes nothing.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/workflows/{name}/pause", tag = "workflows", operation_id = "pause_workflow",
    params(("tenant" = String, Path, description = "Tenant name"), ("name" = String, Path, description = "Workflow name")),
    responses((status = 200, body = WorkflowDetail), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn pause(
    State(state): State<AppState>,
    caller: Caller,
    TargetTenant(tenant): TargetTenant,
    Path((_, name)): Path<(String, String)>,
) -> Result<Json<WorkflowDetail>, ApiError> {
    set_paused(&state, &caller, tenant, &name, true).await
}

/// `POST /v1/tenants/{tenant}/workflows/{name}/resume`.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/workflows/{name}/resume", tag = "workflows", operation_id = "resume_workflow",
    params(("tenant" = String, Path, description = "Tenant name"), ("name" = String, Path, description = "Workflow name")),
    responses((status = 200, body = WorkflowDetail), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn resume(
    State(state): State<AppState>,
    caller: Caller,
    TargetTenant(tenant): TargetTenant,
    Path((_, name)): Path<(String, String)>,
) -> Result<Json<WorkflowDetail>, ApiError> {
    set_paused(&state, &caller, tenant, &name, false).await
}
