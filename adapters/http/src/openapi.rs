//! The OpenAPI document, served at `GET /openapi.json`.
//!
//! Each handler carries its `#[utoipa::path]`; this file gathers them. A test checks that the
//! document and [`ROUTES`](crate::ROUTES) name the same routes, so neither drifts.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::handlers::{
    audit, execution_detail, executions, health, keys, live, packages, secrets, signing, tenants, transfer, triggers,
    whoami, workflows,
};

/// The error envelope every failure answers (documentation of `ApiError`'s wire form).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong, for people.
    pub error: String,
    /// What went wrong, for programs: `invalid_field`, `forbidden`, `rate_limited`, …
    pub code: String,
    /// The request field at fault, when there is one.
    pub field: Option<String>,
}

/// `{"status": "ok"}` and `{"status": "ready"}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StatusBody {
    pub status: String,
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Cloacina", description = "Multi-tenant workflow control plane"),
    paths(
        health::health,
        health::ready,
        health::metrics,
        openapi_json,
        whoami::whoami,
        live::ticket,
        keys::create_any,
        keys::list_all,
        keys::revoke_any,
        keys::create_in_tenant,
        keys::list_tenant,
        keys::revoke_in_tenant,
        tenants::create,
        tenants::list,
        tenants::get,
        tenants::update,
        tenants::delete,
        transfer::export,
        transfer::import,
        audit::control,
        audit::tenant,
        workflows::list,
        packages::upload,
        packages::list,
        packages::delete,
        secrets::create,
        secrets::list,
        secrets::get,
        secrets::rotate,
        secrets::delete,
        signing::list,
        signing::add,
        signing::remove,
        signing::policy,
        signing::set_policy,
        workflows::get,
        workflows::pause,
        workflows::resume,
        executions::execute,
        executions::list,
        executions::get,
        execution_detail::tasks,
        execution_detail::events,
        execution_detail::logs,
        executions::cancel,
        executions::retry,
        triggers::list,
        triggers::get,
        triggers::pause,
        triggers::resume,
        triggers::fire,
        live::tenant,
        live::execution,
        live::delivery,
    ),
    modifiers(&BearerKeys, &PathRules, &LegacyKeyPaths)
)]
struct ApiDoc;

/// API keys travel as `Authorization: Bearer clk_…`.
struct BearerKeys;

impl Modify for BearerKeys {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let mut scheme = Http::new(HttpAuthScheme::Bearer);
        scheme.bearer_format = Some("clk_ API key".into());
        doc.components.get_or_insert_with(Default::default).add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

/// What every route shares: a `{tenant}` is a tenant name (the pattern the server checks); an
/// operation that takes a parameter or a body can answer `400` (a path segment, query value or
/// body the server refuses), one with a body `413`, and a keyed one `429` (the failed-auth
/// throttle) and `503` (no database, or the request timeout), all with the envelope.
struct PathRules;

/// [`cloacina_domain::TenantName`]'s rule.
const TENANT_PATTERN: &str = "^[a-z][a-z0-9_-]{0,47}$";

impl Modify for PathRules {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::path::ParameterIn;
        use utoipa::openapi::{ObjectBuilder, RefOr, Response, Type};
        let envelope = |description: &str| -> RefOr<Response> {
            utoipa::openapi::ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    utoipa::openapi::content::ContentBuilder::new()
                        .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name("ErrorBody"))))
                        .build(),
                )
                .build()
                .into()
        };
        let bad_input = envelope("Bad input: a path segment, query value or body the server refuses");
        let too_large = envelope("The body is over the route's limit");
        let throttled = envelope("Too many failed authentications from this address (with Retry-After)");
        let unavailable = envelope("The database is unavailable, or the request ran past the timeout");
        for item in doc.paths.paths.values_mut() {
            for op in
                [&mut item.get, &mut item.post, &mut item.put, &mut item.patch, &mut item.delete].into_iter().flatten()
            {
                let mut takes_input = op.request_body.is_some();
                for param in op.parameters.iter_mut().flatten() {
                    takes_input = true;
                    if param.name == "tenant" && param.parameter_in == ParameterIn::Path {
                        let schema = ObjectBuilder::new().schema_type(Type::String).pattern(Some(TENANT_PATTERN));
                        param.schema = Some(RefOr::T(schema.into()));
                    }
                }
                let responses = &mut op.responses.responses;
                if takes_input {
                    responses.entry("400".to_owned()).or_insert_with(|| bad_input.clone());
                }
                if op.request_body.is_some() {
                    responses.entry("413".to_owned()).or_insert_with(|| too_large.clone());
                }
                if op.security.as_ref().is_some_and(|s| !s.is_empty()) {
                    responses.entry("429".to_owned()).or_insert_with(|| throttled.clone());
                    responses.entry("503".to_owned()).or_insert_with(|| unavailable.clone());
                }
            }
        }
    }
}

/// `/auth/keys…` serve the same operations as `/v1/auth/keys…` (seed 001 uses them); the
/// copies get operation ids of their own, as OpenAPI requires.
struct LegacyKeyPaths;

impl Modify for LegacyKeyPaths {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        for (v1, legacy) in [("/v1/auth/keys", "/auth/keys"), ("/v1/auth/keys/{id}", "/auth/keys/{id}")] {
            let Some(mut item) = doc.paths.paths.get(v1).cloned() else { continue };
            for op in [&mut item.get, &mut item.post, &mut item.delete].into_iter().flatten() {
                op.operation_id = op.operation_id.take().map(|id| format!("{id}_unversioned"));
            }
            doc.paths.paths.insert(legacy.to_owned(), item);
        }
    }
}

/// The document as JSON text, built once.
pub fn document() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| ApiDoc::openapi().to_json().unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}")))
}

/// `GET /openapi.json`.
#[utoipa::path(get, path = "/openapi.json", tag = "probes", responses((status = 200, description = "This document")))]
pub async fn openapi_json() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], document()).into_response()
}
