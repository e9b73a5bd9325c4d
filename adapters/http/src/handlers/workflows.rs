//! Workflow endpoints under `/v1/tenants/{tenant}/workflows`.

use axum::Json;
use axum::extract::{Path, State};
use cloacina_domain::{TenantName, WorkflowSummary};
use cloacina_ports::WorkflowError;
use serde::Serialize;
use serde_json::Value;

use super::wire_time;
use crate::auth::{Caller, TargetTenant};
use crate::error::ApiError;
use crate::openapi::ErrorBody;
use crate::query::{Paging, StrictQuery};
use crate::state::AppState;

/// A workflow in a listing.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WorkflowView {
    /// The id of the package version in force.
    pub id: String,
    pub name: String,
    /// The same, under the reference server's name.
    pub workflow_name: String,
    pub package_name: String,
    pub version: String,
    pub description: Option<String>,
    /// Task ids, in dependency order.
    pub tasks: Vec<String>,
    pub paused: bool,
    /// When the version in force was uploaded.
    pub created_at: String,
    /// When this workflow last changed (a new version, a pause).
    pub updated_at: String,
}

impl From<WorkflowSummary> for WorkflowView {
    fn from(w: WorkflowSummary) -> Self {
        Self {
            id: w.package_id.to_string(),
            workflow_name: w.name.clone(),
            name: w.name,
            package_name: w.package_name,
            version: w.version,
            description: w.description,
            tasks: w.tasks,
            paused: w.paused,
            created_at: wire_time(w.created_at),
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
    params(("tenant" = String, Path, description = "Tenant name"), Paging),
    responses((status = 200, body = WorkflowList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    TargetTenant(tenant): TargetTenant,
    StrictQuery(paging): StrictQuery<Paging>,
) -> Result<Json<WorkflowList>, ApiError> {
    let workflows = state.workflows.list(&caller.0, &tenant).await.map_err(from_error)?;
    let (page, total) = paging.apply(workflows)?;
    Ok(Json(WorkflowList {
        tenant_id: tenant.to_string(),
        total,
        items: page.into_iter().map(WorkflowView::from).collect(),
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

/// One node of a workflow's task graph.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TaskNodeView {
    pub id: String,
    /// The tasks it depends on.
    pub dependencies: Vec<String>,
    /// Always `null`: manifests give tasks no description.
    #[schema(value_type = Option<String>)]
    pub description: Option<String>,
    #[schema(value_type = Option<String>)]
    pub doc_what: Option<String>,
    #[schema(value_type = Option<String>)]
    pub doc_why: Option<String>,
    /// The argv, run in the package folder.
    pub command: Vec<String>,
    pub timeout_seconds: u64,
    /// The first attempt and its retries.
    pub max_attempts: u32,
    /// The names of the variables its `env` sets (never their values).
    pub env: Vec<String>,
}

/// A workflow with the tenant it belongs to and its task graph.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WorkflowDetail {
    pub tenant_id: String,
    #[serde(flatten)]
    pub workflow: WorkflowView,
    pub task_graph: Vec<TaskNodeView>,
    /// Always `success`: packages need no build.
    #[schema(value_type = String, example = "success")]
    pub build_status: &'static str,
    #[schema(value_type = Option<String>)]
    pub build_error: Option<String>,
    /// Always empty: manifests declare no parameters; a workflow takes any context object.
    #[schema(value_type = Vec<Object>)]
    pub declared_params: Vec<Value>,
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
    let (w, graph) = state.workflows.detail(&caller.0, &tenant, &name).await.map_err(from_error)?;
    Ok(Json(WorkflowDetail {
        tenant_id: tenant.to_string(),
        workflow: w.into(),
        task_graph: graph
            .into_iter()
            .map(|n| TaskNodeView {
                id: n.id,
                dependencies: n.dependencies,
                description: None,
                doc_what: None,
                doc_why: None,
                command: n.command,
                timeout_seconds: n.timeout.as_secs(),
                max_attempts: n.max_attempts,
                env: n.env,
            })
            .collect(),
        build_status: "success",
        build_error: None,
        declared_params: Vec::new(),
    }))
}

/// A pause's or resume's answer: the workflow as it now is.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PauseAnswer {
    pub tenant_id: String,
    /// `paused` or `resumed`.
    #[schema(value_type = String, example = "paused")]
    pub status: &'static str,
    #[serde(flatten)]
    pub workflow: WorkflowView,
}

async fn set_paused(
    state: &AppState,
    caller: &Caller,
    tenant: TenantName,
    name: &str,
    paused: bool,
) -> Result<Json<PauseAnswer>, ApiError> {
    let w = state.workflows.set_paused(&caller.0, &tenant, name, paused).await.map_err(from_error)?;
    Ok(Json(PauseAnswer {
        tenant_id: tenant.to_string(),
        status: if paused { "paused" } else { "resumed" },
        workflow: w.into(),
    }))
}

/// `POST /v1/tenants/{tenant}/workflows/{name}/pause`: its triggers stop firing and new
/// executions are refused until it is resumed. Pausing twice changes nothing.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/workflows/{name}/pause", tag = "workflows", operation_id = "pause_workflow",
    params(("tenant" = String, Path, description = "Tenant name"), ("name" = String, Path, description = "Workflow name")),
    responses((status = 200, body = PauseAnswer), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn pause(
    State(state): State<AppState>,
    caller: Caller,
    TargetTenant(tenant): TargetTenant,
    Path((_, name)): Path<(String, String)>,
) -> Result<Json<PauseAnswer>, ApiError> {
    set_paused(&state, &caller, tenant, &name, true).await
}

/// `POST /v1/tenants/{tenant}/workflows/{name}/resume`.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/workflows/{name}/resume", tag = "workflows", operation_id = "resume_workflow",
    params(("tenant" = String, Path, description = "Tenant name"), ("name" = String, Path, description = "Workflow name")),
    responses((status = 200, body = PauseAnswer), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn resume(
    State(state): State<AppState>,
    caller: Caller,
    TargetTenant(tenant): TargetTenant,
    Path((_, name)): Path<(String, String)>,
) -> Result<Json<PauseAnswer>, ApiError> {
    set_paused(&state, &caller, tenant, &name, false).await
}
