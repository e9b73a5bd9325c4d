//! API key endpoints: `/v1/auth/keys` (deployment-wide, god keys) and
//! `/v1/tenants/{tenant}/keys` (one tenant, its admins or god keys).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use cloacina_domain::authz::created_authority;
use cloacina_domain::{ApiKeyId, Authority, KeyName, KeyRecord, Role, TenantName};
use cloacina_ports::{CreateKey, CreateKeyError, KeyScope, ListKeysError, RevokeKeyError};
use serde::{Deserialize, Serialize};

use super::wire_time;
use crate::auth::{Caller, TargetTenant};
use crate::error::{ApiError, JsonBody};
use crate::openapi::ErrorBody;
use crate::query::{Paging, StrictQuery};
use crate::state::AppState;

/// The body of a create. Unknown fields are refused, so `is_admin` cannot be smuggled in.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyBody {
    pub name: String,
    /// `read` (the default for a tenant key), `write` or `admin`.
    #[serde(default)]
    pub role: Option<String>,
    /// The tenant of the new key; without it `/v1/auth/keys` makes an admin (god) key.
    #[serde(default, alias = "tenant_id")]
    pub tenant: Option<String>,
    /// Optional RFC 3339 expiry, in the future.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

/// A key as listings show it: never a hash, never the plaintext.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KeyView {
    pub id: String,
    pub name: String,
    /// `admin` for a god key, else the key's role.
    #[schema(value_type = String, example = "read")]
    pub permissions: &'static str,
    pub tenant_id: Option<String>,
    pub is_admin: bool,
    pub created_at: String,
    pub revoked: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
}

impl From<&KeyRecord> for KeyView {
    fn from(k: &KeyRecord) -> Self {
        Self {
            id: k.id.to_string(),
            name: k.name.as_str().to_owned(),
            permissions: k.authority.permissions_label(),
            tenant_id: k.authority.tenant().map(|t| t.as_str().to_owned()),
            is_admin: k.authority.is_god(),
            created_at: wire_time(k.created_at),
            revoked: k.revoked,
            revoked_at: k.revoked_at.map(wire_time),
            expires_at: k.expires_at.map(wire_time),
            last_used_at: k.last_used_at.map(wire_time),
            created_by: k.created_by.map(|id| id.to_string()),
        }
    }
}

/// A create's answer: the key's fields and, this once, its plaintext.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedView {
    pub id: String,
    pub name: String,
    /// The key itself: shown in this answer only.
    pub key: String,
    #[schema(value_type = String, example = "admin")]
    pub permissions: &'static str,
    pub tenant_id: Option<String>,
    pub is_admin: bool,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

/// A listing: the list envelope, with `tenant_id` when it is one tenant's.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KeyList {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    pub items: Vec<KeyView>,
    pub total: usize,
}

/// A revocation's answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Revoked {
    #[schema(value_type = String, example = "revoked")]
    pub status: &'static str,
    pub id: String,
}

fn parse_role(role: Option<&str>) -> Result<Option<Role>, ApiError> {
    role.map(|r| r.parse::<Role>().map_err(|e| ApiError::invalid_field("role", e.to_string()))).transpose()
}

fn parse_common(body: &CreateKeyBody) -> Result<(KeyName, Option<Role>), ApiError> {
    let name = KeyName::parse(&body.name).map_err(|e| ApiError::invalid_field("name", e.to_string()))?;
    Ok((name, parse_role(body.role.as_deref())?))
}

async fn create(
    state: &AppState,
    caller: &Caller,
    request: CreateKey,
) -> Result<(StatusCode, Json<CreatedView>), ApiError> {
    let created = state.keys.create(&caller.0, request).await.map_err(from_create)?;
    let r = &created.record;
    Ok((
        StatusCode::CREATED,
        Json(CreatedView {
            id: r.id.to_string(),
            name: r.name.as_str().to_owned(),
            key: created.plaintext.expose().to_owned(),
            permissions: r.authority.permissions_label(),
            tenant_id: r.authority.tenant().map(|t| t.as_str().to_owned()),
            is_admin: r.authority.is_god(),
            created_at: wire_time(r.created_at),
            expires_at: r.expires_at.map(wire_time),
        }),
    ))
}

/// `POST /v1/auth/keys`: without `tenant`, an admin (god) key, or for role `read` or `write`
/// a key of `public`; with a tenant, a key of it (role `read` unless given).
#[utoipa::path(post, path = "/v1/auth/keys", tag = "keys", request_body = CreateKeyBody,
    responses((status = 201, body = CreatedView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_any(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<CreateKeyBody>,
) -> Result<(StatusCode, Json<CreatedView>), ApiError> {
    let (name, role) = parse_common(&body)?;
    let tenant = body
        .tenant
        .as_deref()
        .map(TenantName::parse)
        .transpose()
        .map_err(|e| ApiError::invalid_field("tenant", e.to_string()))?;
    let authority = created_authority(tenant, role);
    create(&state, &caller, CreateKey { name, authority, expires_at: body.expires_at }).await
}

/// `POST /v1/tenants/{tenant}/keys`: a key of that tenant, role `read` unless given.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/keys", tag = "keys", request_body = CreateKeyBody,
    params(("tenant" = String, Path, description = "Tenant name")),
    responses((status = 201, body = CreatedView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_in_tenant(
    State(state): State<AppState>,
    caller: Caller,
    TargetTenant(tenant): TargetTenant,
    JsonBody(body): JsonBody<CreateKeyBody>,
) -> Result<(StatusCode, Json<CreatedView>), ApiError> {
    let (name, role) = parse_common(&body)?;
    if body.tenant.as_deref().is_some_and(|t| t != tenant.as_str()) {
        return Err(ApiError::invalid_field("tenant", "the body's tenant differs from the tenant in the path"));
    }
    let authority = Authority::Tenant { tenant, role: role.unwrap_or(Role::Read) };
    create(&state, &caller, CreateKey { name, authority, expires_at: body.expires_at }).await
}

async fn list(state: &AppState, caller: &Caller, scope: KeyScope, paging: &Paging) -> Result<Json<KeyList>, ApiError> {
    let tenant_id = match &scope {
        KeyScope::Tenant(t) => Some(t.to_string()),
        KeyScope::All => None,
    };
    let keys = state.keys.list(&caller.0, scope).await.map_err(|e| match e {
        ListKeysError::Denied(d) => ApiError::forbidden(&d),
        ListKeysError::NoSuchTenant(t) => no_such_tenant(&t),
        ListKeysError::Store(e) => ApiError::store(&e),
    })?;
    let (page, total) = paging.apply(keys)?;
    Ok(Json(KeyList { tenant_id, total, items: page.iter().map(KeyView::from).collect() }))
}

/// `GET /v1/auth/keys`: every key of the deployment.
#[utoipa::path(get, path = "/v1/auth/keys", tag = "keys", params(Paging),
    responses((status = 200, body = KeyList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_all(
    State(state): State<AppState>,
    caller: Caller,
    StrictQuery(paging): StrictQuery<Paging>,
) -> Result<Json<KeyList>, ApiError> {
    list(&state, &caller, KeyScope::All, &paging).await
}

/// `GET /v1/tenants/{tenant}/keys`: that tenant's keys.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/keys", tag = "keys",
    params(("tenant" = String, Path, description = "Tenant name"), Paging),
    responses((status = 200, body = KeyList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_tenant(
    State(state): State<AppState>,
    caller: Caller,
    TargetTenant(tenant): TargetTenant,
    StrictQuery(paging): StrictQuery<Paging>,
) -> Result<Json<KeyList>, ApiError> {
    list(&state, &caller, KeyScope::Tenant(tenant), &paging).await
}

async fn revoke(state: &AppState, caller: &Caller, scope: KeyScope, id: &str) -> Result<Json<Revoked>, ApiError> {
    let key_id: ApiKeyId =
        id.parse().map_err(|e: cloacina_domain::key::ApiKeyIdError| ApiError::invalid_field("id", e.to_string()))?;
    state.keys.revoke(&caller.0, scope, key_id).await.map_err(|e| match e {
        RevokeKeyError::Denied(d) => ApiError::forbidden(&d),
        RevokeKeyError::NotFound => ApiError::not_found("key_not_found", "key not found or already revoked"),
        RevokeKeyError::LastGodKey => ApiError::new(
            StatusCode::CONFLICT,
            "last_admin_key",
            "the last active admin key cannot be revoked through the API; create another admin key first",
        ),
        RevokeKeyError::Store(e) => ApiError::store(&e),
    })?;
    Ok(Json(Revoked { status: "revoked", id: key_id.to_string() }))
}

/// `DELETE /v1/auth/keys/{id}`: revoke any key.
#[utoipa::path(delete, path = "/v1/auth/keys/{id}", tag = "keys",
    params(("id" = String, Path, description = "Key id (UUID)")),
    responses((status = 200, body = Revoked), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn revoke_any(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Revoked>, ApiError> {
    revoke(&state, &caller, KeyScope::All, &id).await
}

/// `DELETE /v1/tenants/{tenant}/keys/{id}`: revoke one of that tenant's keys.
#[utoipa::path(delete, path = "/v1/tenants/{tenant}/keys/{id}", tag = "keys",
    params(("tenant" = String, Path, description = "Tenant name"), ("id" = String, Path, description = "Key id (UUID)")),
    responses((status = 200, body = Revoked), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn revoke_in_tenant(
    State(state): State<AppState>,
    caller: Caller,
    TargetTenant(tenant): TargetTenant,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<Revoked>, ApiError> {
    revoke(&state, &caller, KeyScope::Tenant(tenant), &id).await
}

fn no_such_tenant(t: &TenantName) -> ApiError {
    ApiError::not_found("tenant_not_found", format!("tenant '{t}' does not exist"))
}

fn from_create(e: CreateKeyError) -> ApiError {
    match e {
        CreateKeyError::Denied(d) => ApiError::forbidden(&d),
        CreateKeyError::NoSuchTenant(t) => no_such_tenant(&t),
        CreateKeyError::Expiry(e) => ApiError::invalid_field("expires_at", e.to_string()),
        taken @ CreateKeyError::NameTaken(_) => {
            ApiError::new(StatusCode::CONFLICT, "key_name_taken", taken.to_string()).with_field("name")
        }
        CreateKeyError::Store(e) => ApiError::store(&e),
    }
}
