//! Tenant endpoints: `POST|GET /v1/tenants`, `GET|PATCH|DELETE /v1/tenants/{tenant}` (god keys).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use cloacina_domain::tenant::TenantPassword;
use cloacina_domain::{Secret, Setting, TaskNetwork, TenantChange, TenantDescription, TenantName, TenantRecord};
use cloacina_ports::TenantError;
use serde::{Deserialize, Deserializer, Serialize};

use super::wire_time;
use crate::auth::{Caller, TargetTenant};
use crate::error::{ApiError, JsonBody};
use crate::openapi::ErrorBody;
use crate::query::{Paging, StrictQuery};
use crate::state::AppState;

/// The body of a create. Schema and role names are generated, never taken from here.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenantBody {
    /// `^[a-z][a-z0-9_-]{0,47}$`, not `public`.
    #[serde(alias = "schema_name")]
    pub name: String,
    /// Free text, at most 256 characters.
    #[serde(default)]
    pub description: Option<String>,
    /// The tenant's database role password: 16 to 256 visible ASCII characters. Left out or
    /// `null`, a random one nobody is shown. Never echoed or logged.
    #[serde(default)]
    pub password: Option<String>,
}

/// A tenant. The database role's password is never shown.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TenantView {
    pub name: String,
    /// The database schema holding the tenant's data.
    pub schema_name: String,
    /// The database role its requests run as (`null` on SQLite).
    pub username: Option<String>,
    pub description: Option<String>,
    /// `public`, which always exists and cannot be deleted.
    pub builtin: bool,
    pub created_at: String,
    /// How the tenant's tasks reach the network, if a god key set it; `null` follows the
    /// servers' `--task-network`.
    #[schema(value_type = Option<String>, example = "host")]
    pub task_network: Option<&'static str>,
    /// Requests a second each of its keys may send, if a god key set it (0: no limit);
    /// `null` follows the servers' `--rate-limit-per-key`.
    pub rate_limit_per_key: Option<u32>,
}

impl From<&TenantRecord> for TenantView {
    fn from(t: &TenantRecord) -> Self {
        Self {
            name: t.name.to_string(),
            schema_name: t.schema.clone(),
            username: t.db_role.clone(),
            description: t.description.as_ref().map(|d| d.as_str().to_owned()),
            builtin: t.is_builtin(),
            created_at: wire_time(t.created_at),
            task_network: t.task_network.map(TaskNetwork::as_str),
            rate_limit_per_key: t.rate_limit_per_key,
        }
    }
}

/// The highest per-key request limit a tenant can be given, in requests a second.
const MAX_RATE_LIMIT: u32 = 1_000_000;

/// The body of a change (a JSON merge patch): a field left out stays as it is.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTenantBody {
    /// `"host"`, `"none"`, or `null` to follow the servers' `--task-network` again.
    #[serde(default, deserialize_with = "setting")]
    #[schema(value_type = Option<String>, example = "host")]
    pub task_network: Setting<String>,
    /// Authenticated requests a second each of the tenant's keys may send (0: no limit), or
    /// `null` to follow the servers' `--rate-limit-per-key` again.
    #[serde(default, deserialize_with = "number_setting")]
    #[schema(value_type = Option<u32>, minimum = 0, maximum = 1_000_000, example = 200)]
    pub rate_limit_per_key: Setting<u32>,
}

/// [`setting`] for a whole number.
fn number_setting<'de, D: Deserializer<'de>>(d: D) -> Result<Setting<u32>, D::Error> {
    Option::<u32>::deserialize(d).map(|v| v.map_or(Setting::Default, Setting::Set))
}

/// Tells a field given as `null` ([`Setting::Default`]) from one left out ([`Setting::Keep`],
/// serde's default when the field is absent).
fn setting<'de, D: Deserializer<'de>>(d: D) -> Result<Setting<String>, D::Error> {
    Option::<String>::deserialize(d).map(|v| v.map_or(Setting::Default, Setting::Set))
}

/// A listing: the list envelope.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TenantList {
    pub items: Vec<TenantView>,
    pub total: usize,
}

/// A deletion's answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TenantRemoved {
    #[schema(value_type = String, example = "removed")]
    pub status: &'static str,
    pub name: String,
    pub schema_name: String,
    /// Active keys of the tenant revoked with it.
    pub revoked_keys: u64,
    /// Always true: its work queue went with its schema, so no worker claims anything of it
    /// again (attempts already running end without being recorded).
    pub runner_evicted: bool,
    /// Always true: every server forgets its cached keys and schema within a second.
    pub db_cache_evicted: bool,
}

pub(crate) fn from_error(e: TenantError) -> ApiError {
    match e {
        TenantError::Denied(d) => ApiError::forbidden(&d),
        TenantError::Exists(t) => {
            ApiError::new(StatusCode::CONFLICT, "tenant_exists", format!("tenant '{t}' already exists"))
        }
        TenantError::NotFound(t) => ApiError::not_found("tenant_not_found", format!("tenant '{t}' does not exist")),
        e @ TenantError::Builtin => ApiError::new(StatusCode::BAD_REQUEST, "builtin_tenant", e.to_string()),
        TenantError::Unsupported(m) => ApiError::new(StatusCode::BAD_REQUEST, "multi_tenancy_unavailable", m),
        e @ TenantError::Invalid(..) => ApiError::new(StatusCode::BAD_REQUEST, "invalid_export", e.to_string()),
        TenantError::Store(e) => ApiError::store(&e),
    }
}

/// `POST /v1/tenants`: the schema, the database role and its grants, and the tenant
/// migrations, all or nothing.
#[utoipa::path(post, path = "/v1/tenants", operation_id = "create_tenant", tag = "tenants", request_body = CreateTenantBody,
    responses((status = 201, body = TenantView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<CreateTenantBody>,
) -> Result<(StatusCode, Json<TenantView>), ApiError> {
    let name = TenantName::parse_new(&body.name).map_err(|e| ApiError::invalid_field("name", e.to_string()))?;
    let description = body
        .description
        .as_deref()
        .map(TenantDescription::parse)
        .transpose()
        .map_err(|e| ApiError::invalid_field("description", e.to_string()))?;
    let password = body
        .password
        .map(|p| TenantPassword::parse(Secret::new(p)))
        .transpose()
        .map_err(|e| ApiError::invalid_field("password", e.to_string()))?;
    let record = state.tenants.create(&caller.0, name, description, password).await.map_err(from_error)?;
    Ok((StatusCode::CREATED, Json(TenantView::from(&record))))
}

/// `GET /v1/tenants`: every tenant, `public` first.
#[utoipa::path(get, path = "/v1/tenants", operation_id = "list_tenants", tag = "tenants", params(Paging),
    responses((status = 200, body = TenantList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    StrictQuery(paging): StrictQuery<Paging>,
) -> Result<Json<TenantList>, ApiError> {
    let tenants = state.tenants.list(&caller.0).await.map_err(from_error)?;
    let (page, total) = paging.apply(tenants)?;
    Ok(Json(TenantList { total, items: page.iter().map(TenantView::from).collect() }))
}

/// `GET /v1/tenants/{tenant}`.
#[utoipa::path(get, path = "/v1/tenants/{tenant}", operation_id = "get_tenant", tag = "tenants",
    params(("tenant" = String, Path, description = "Tenant name")),
    responses((status = 200, body = TenantView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    TargetTenant(tenant): TargetTenant,
) -> Result<Json<TenantView>, ApiError> {
    let record = state.tenants.get(&caller.0, &tenant).await.map_err(from_error)?;
    Ok(Json(TenantView::from(&record)))
}

/// `PATCH /v1/tenants/{tenant}`: changes the tenant's settings. Attempts claimed from then on,
/// on every server, run with them.
#[utoipa::path(patch, path = "/v1/tenants/{tenant}", operation_id = "update_tenant", tag = "tenants",
    params(("tenant" = String, Path, description = "Tenant name")), request_body = UpdateTenantBody,
    responses((status = 200, body = TenantView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    TargetTenant(tenant): TargetTenant,
    JsonBody(body): JsonBody<UpdateTenantBody>,
) -> Result<Json<TenantView>, ApiError> {
    let task_network = body
        .task_network
        .try_map(|n| n.parse::<TaskNetwork>())
        .map_err(|e| ApiError::invalid_field("task_network", format!("task_network: {e}")))?;
    if let Setting::Set(n) = body.rate_limit_per_key
        && n > MAX_RATE_LIMIT
    {
        return Err(ApiError::invalid_field(
            "rate_limit_per_key",
            format!("rate_limit_per_key must be from 0 (no limit) to {MAX_RATE_LIMIT} requests a second, not {n}"),
        ));
    }
    let change = TenantChange { task_network, rate_limit_per_key: body.rate_limit_per_key };
    let record = state.tenants.update(&caller.0, &tenant, &change).await.map_err(from_error)?;
    state.limits.forget_tenant(&tenant);
    Ok(Json(TenantView::from(&record)))
}

/// `DELETE /v1/tenants/{tenant}`: revokes the tenant's keys and drops its schema and role;
/// every replica forgets it within a second. The name can be created again at once.
#[utoipa::path(delete, path = "/v1/tenants/{tenant}", operation_id = "delete_tenant", tag = "tenants",
    params(("tenant" = String, Path, description = "Tenant name")),
    responses((status = 200, body = TenantRemoved), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    TargetTenant(tenant): TargetTenant,
) -> Result<Json<TenantRemoved>, ApiError> {
    let deleted = state.tenants.delete(&caller.0, &tenant).await.map_err(from_error)?;
    Ok(Json(TenantRemoved {
        status: "removed",
        name: deleted.record.name.to_string(),
        schema_name: deleted.record.schema,
        revoked_keys: deleted.revoked_keys,
        runner_evicted: true,
        db_cache_evicted: true,
    }))
}
