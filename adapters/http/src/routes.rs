//! The route table and the router built from it.
//!
//! [`ROUTES`] is the one place a route is declared: its method, its path template, the
//! [`Access`] it needs and its handler. The router is built from the table, so a route
//! cannot exist without a declared permission, and the isolation matrix is generated from it.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::Method;
use axum::middleware::from_fn_with_state;
use axum::routing::{MethodFilter, MethodRouter};
use cloacina_domain::Permission;

use crate::auth::{Guard, guard};
use crate::error::ApiError;
use crate::handlers::{
    audit, execution_detail, executions, health, keys, live, packages, secrets, signing, tenants, transfer, triggers,
    whoami, workflows,
};
use crate::state::AppState;
use crate::{observe, openapi};

/// What a route requires of the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// No key: probes and metrics.
    Public,
    /// A valid key holding this permission (on the `{tenant}` in the path, if the
    /// permission is tenant-scoped).
    Key(Permission),
}

/// One route.
#[derive(Clone)]
pub struct RouteSpec {
    pub method: Method,
    /// The axum path template, e.g. `/v1/tenants/{tenant}/keys/{id}`.
    pub path: &'static str,
    pub access: Access,
    /// Takes a package upload (the upload body limit) rather than a small JSON body.
    pub upload: bool,
    /// A WebSocket: the key may also come as a ticket (`?token=`), and without a `{tenant}`
    /// in the path the tenant is the key's own (or a deployment-wide key's `?tenant=`).
    pub socket: bool,
    handler: fn(MethodFilter) -> MethodRouter<AppState>,
}

impl std::fmt::Debug for RouteSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} ({:?})", self.method, self.path, self.access)
    }
}

/// Turns a handler into the function the table stores.
macro_rules! handler {
    ($h:path) => {{
        fn route(filter: MethodFilter) -> MethodRouter<AppState> {
            axum::routing::on(filter, $h)
        }
        route
    }};
}

const fn spec(
    method: Method,
    path: &'static str,
    access: Access,
    handler: fn(MethodFilter) -> MethodRouter<AppState>,
) -> RouteSpec {
    RouteSpec { method, path, access, upload: false, socket: false, handler }
}

/// A route whose body is a package upload.
const fn upload(
    method: Method,
    path: &'static str,
    access: Access,
    handler: fn(MethodFilter) -> MethodRouter<AppState>,
) -> RouteSpec {
    RouteSpec { method, path, access, upload: true, socket: false, handler }
}

/// A WebSocket route (`GET` with an upgrade).
const fn socket(path: &'static str, access: Access, handler: fn(MethodFilter) -> MethodRouter<AppState>) -> RouteSpec {
    RouteSpec { method: Method::GET, path, access, upload: false, socket: true, handler }
}

use Access::{Key, Public};
use Permission as P;

/// Every route the server answers.
pub static ROUTES: &[RouteSpec] = &[
    spec(Method::GET, "/health", Public, handler!(health::health)),
    spec(Method::GET, "/ready", Public, handler!(health::ready)),
    spec(Method::GET, "/metrics", Public, handler!(health::metrics)),
    spec(Method::GET, "/openapi.json", Public, handler!(openapi::openapi_json)),
    spec(Method::GET, "/v1/auth/whoami", Key(P::WhoAmI), handler!(whoami::whoami)),
    spec(Method::POST, "/v1/auth/ws-ticket", Key(P::WhoAmI), handler!(live::ticket)),
    // Deployment-wide keys; `/auth/keys` is the older spelling seed 001 uses.
    spec(Method::POST, "/v1/auth/keys", Key(P::GodKeyManage), handler!(keys::create_any)),
    spec(Method::GET, "/v1/auth/keys", Key(P::GodKeyManage), handler!(keys::list_all)),
    spec(Method::DELETE, "/v1/auth/keys/{id}", Key(P::GodKeyManage), handler!(keys::revoke_any)),
    spec(Method::POST, "/auth/keys", Key(P::GodKeyManage), handler!(keys::create_any)),
    spec(Method::GET, "/auth/keys", Key(P::GodKeyManage), handler!(keys::list_all)),
    spec(Method::DELETE, "/auth/keys/{id}", Key(P::GodKeyManage), handler!(keys::revoke_any)),
    // Tenants.
    spec(Method::POST, "/v1/tenants", Key(P::TenantCreate), handler!(tenants::create)),
    spec(Method::GET, "/v1/tenants", Key(P::TenantList), handler!(tenants::list)),
    spec(Method::GET, "/v1/tenants/{tenant}", Key(P::TenantRead), handler!(tenants::get)),
    spec(Method::PATCH, "/v1/tenants/{tenant}", Key(P::TenantUpdate), handler!(tenants::update)),
    spec(Method::DELETE, "/v1/tenants/{tenant}", Key(P::TenantDelete), handler!(tenants::delete)),
    spec(Method::GET, "/v1/tenants/{tenant}/export", Key(P::TenantRead), handler!(transfer::export)),
    upload(Method::POST, "/v1/tenants/import", Key(P::TenantCreate), handler!(transfer::import)),
    // The audit trail: the control chain, and one tenant's.
    spec(Method::GET, "/v1/audit", Key(P::DeploymentAuditRead), handler!(audit::control)),
    spec(Method::GET, "/v1/tenants/{tenant}/audit", Key(P::AuditRead), handler!(audit::tenant)),
    // One tenant's keys.
    spec(Method::POST, "/v1/tenants/{tenant}/keys", Key(P::KeyCreate), handler!(keys::create_in_tenant)),
    spec(Method::GET, "/v1/tenants/{tenant}/keys", Key(P::KeyList), handler!(keys::list_tenant)),
    spec(Method::DELETE, "/v1/tenants/{tenant}/keys/{id}", Key(P::KeyRevoke), handler!(keys::revoke_in_tenant)),
    // One tenant's workflows and packages.
    spec(Method::GET, "/v1/tenants/{tenant}/workflows", Key(P::WorkflowRead), handler!(workflows::list)),
    upload(Method::POST, "/v1/tenants/{tenant}/workflows", Key(P::WorkflowUpload), handler!(packages::upload)),
    spec(Method::GET, "/v1/tenants/{tenant}/packages", Key(P::WorkflowRead), handler!(packages::list)),
    spec(Method::GET, "/v1/tenants/{tenant}/workflows/{name}", Key(P::WorkflowRead), handler!(workflows::get)),
    spec(
        Method::POST,
        "/v1/tenants/{tenant}/workflows/{name}/pause",
        Key(P::WorkflowPause),
        handler!(workflows::pause),
    ),
    spec(
        Method::POST,
        "/v1/tenants/{tenant}/workflows/{name}/resume",
        Key(P::WorkflowPause),
        handler!(workflows::resume),
    ),
    spec(
        Method::DELETE,
        "/v1/tenants/{tenant}/workflows/{name}/{version}",
        Key(P::WorkflowDelete),
        handler!(packages::delete),
    ),
    spec(
        Method::POST,
        "/v1/tenants/{tenant}/workflows/{name}/execute",
        Key(P::WorkflowExecute),
        handler!(executions::execute),
    ),
    // One tenant's secrets.
    spec(Method::POST, "/v1/tenants/{tenant}/secrets", Key(P::SecretManage), handler!(secrets::create)),
    spec(Method::GET, "/v1/tenants/{tenant}/secrets", Key(P::SecretRead), handler!(secrets::list)),
    spec(Method::GET, "/v1/tenants/{tenant}/secrets/{name}", Key(P::SecretRead), handler!(secrets::get)),
    spec(Method::PUT, "/v1/tenants/{tenant}/secrets/{name}", Key(P::SecretManage), handler!(secrets::rotate)),
    spec(Method::DELETE, "/v1/tenants/{tenant}/secrets/{name}", Key(P::SecretManage), handler!(secrets::delete)),
    // One tenant's signing keys and signature policy.
    spec(Method::GET, "/v1/tenants/{tenant}/signing-keys", Key(P::SigningManage), handler!(signing::list)),
    spec(Method::POST, "/v1/tenants/{tenant}/signing-keys", Key(P::SigningManage), handler!(signing::add)),
    spec(Method::DELETE, "/v1/tenants/{tenant}/signing-keys/{name}", Key(P::SigningManage), handler!(signing::remove)),
    spec(Method::GET, "/v1/tenants/{tenant}/signature-policy", Key(P::SigningManage), handler!(signing::policy)),
    spec(Method::PUT, "/v1/tenants/{tenant}/signature-policy", Key(P::SigningManage), handler!(signing::set_policy)),
    // One tenant's triggers.
    spec(Method::GET, "/v1/tenants/{tenant}/triggers", Key(P::TriggerRead), handler!(triggers::list)),
    spec(Method::GET, "/v1/tenants/{tenant}/triggers/{name}", Key(P::TriggerRead), handler!(triggers::get)),
    spec(Method::POST, "/v1/tenants/{tenant}/triggers/{name}/pause", Key(P::TriggerManage), handler!(triggers::pause)),
    spec(
        Method::POST,
        "/v1/tenants/{tenant}/triggers/{name}/resume",
        Key(P::TriggerManage),
        handler!(triggers::resume),
    ),
    spec(Method::POST, "/v1/tenants/{tenant}/triggers/{name}/fire", Key(P::TriggerManage), handler!(triggers::fire)),
    // One tenant's executions.
    spec(Method::GET, "/v1/tenants/{tenant}/executions", Key(P::ExecutionRead), handler!(executions::list)),
    spec(Method::GET, "/v1/tenants/{tenant}/executions/{id}", Key(P::ExecutionRead), handler!(executions::get)),
    spec(
        Method::GET,
        "/v1/tenants/{tenant}/executions/{id}/tasks",
        Key(P::ExecutionRead),
        handler!(execution_detail::tasks),
    ),
    spec(
        Method::GET,
        "/v1/tenants/{tenant}/executions/{id}/events",
        Key(P::ExecutionRead),
        handler!(execution_detail::events),
    ),
    spec(
        Method::GET,
        "/v1/tenants/{tenant}/executions/{id}/tasks/{task}/logs",
        Key(P::ExecutionRead),
        handler!(execution_detail::logs),
    ),
    spec(
        Method::POST,
        "/v1/tenants/{tenant}/executions/{id}/cancel",
        Key(P::ExecutionCancel),
        handler!(executions::cancel),
    ),
    spec(
        Method::POST,
        "/v1/tenants/{tenant}/executions/{id}/retry",
        Key(P::ExecutionRetry),
        handler!(executions::retry),
    ),
    // Live sockets.
    socket("/v1/ws/tenants/{tenant}/executions", Key(P::ExecutionRead), handler!(live::tenant)),
    socket("/v1/ws/tenants/{tenant}/executions/{id}", Key(P::ExecutionRead), handler!(live::execution)),
    socket("/v1/ws/delivery/{recipient}", Key(P::ExecutionRead), handler!(live::delivery)),
];

/// Builds the router: every route of [`ROUTES`] behind its guard, the JSON error envelope for
/// unknown routes and wrong methods, and the observability layers.
///
/// # Panics
/// If [`ROUTES`] holds a method axum cannot route; a unit test builds the router.
pub fn router(state: AppState) -> Router {
    let mut router = Router::new();
    for spec in ROUTES {
        #[allow(clippy::expect_used)]
        let filter = MethodFilter::try_from(spec.method.clone()).expect("route table method");
        let mut route = (spec.handler)(filter).route_layer(from_fn_with_state(Guard::new(state.clone(), spec), guard));
        if spec.upload {
            route = route.layer(DefaultBodyLimit::max(state.config.upload_body_limit));
        }
        router = router.route(spec.path, route);
    }
    let limit = state.config.json_body_limit;
    let router =
        router.fallback(not_found).method_not_allowed_fallback(method_not_allowed).layer(DefaultBodyLimit::max(limit));
    observe::wrap(router, &state).with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::not_found("not_found", "no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(axum::http::StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "method not allowed on this route")
}
