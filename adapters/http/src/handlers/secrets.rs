//! Tenant secrets under `/v1/tenants/{tenant}/secrets` (docs/secrets.md): values go in, and
//! every answer is metadata only, the reference server's shape (wire.md).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use cloacina_domain::secrets::SecretRecord;
use cloacina_ports::SecretsServiceError;
use serde::{Deserialize, Serialize};

use super::wire_time;
use crate::auth::{Caller, TargetTenant};
use crate::error::{ApiError, JsonBody};
use crate::openapi::ErrorBody;
use crate::state::AppState;

fn from_error(e: SecretsServiceError) -> ApiError {
    match e {
        SecretsServiceError::Denied(d) => ApiError::forbidden(&d),
        e @ (SecretsServiceError::Unavailable | SecretsServiceError::Keys(_)) => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "secrets_unavailable", e.to_string())
        }
        SecretsServiceError::NoSuchTenant(t) => {
            ApiError::not_found("tenant_not_found", format!("tenant '{t}' does not exist"))
        }
        e @ SecretsServiceError::NoSuchSecret(_) => ApiError::not_found("secret_not_found", e.to_string()),
        e @ SecretsServiceError::Exists(_) => {
            ApiError::new(StatusCode::CONFLICT, "secret_exists", e.to_string()).with_field("name")
        }
        SecretsServiceError::Invalid(field, message) => ApiError::invalid_field(&field, message),
        SecretsServiceError::Store(e) => ApiError::store(&e),
    }
}

/// A new secret.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSecretBody {
    /// 1 to 64 of a-z, 0-9, `-`, `_`.
    pub name: String,
    /// Field name → value; the values never come back.
    pub fields: BTreeMap<String, String>,
}

/// A secret's new fields.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateSecretBody {
    pub fields: BTreeMap<String, String>,
}

/// A secret as every answer shows it: never a value.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SecretView {
    pub id: String,
    pub name: String,
    pub field_names: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<SecretRecord> for SecretView {
    fn from(r: SecretRecord) -> Self {
        Self {
            id: r.id.to_string(),
            name: r.name.as_str().to_owned(),
            field_names: r.field_names,
            created_at: wire_time(r.created_at),
            updated_at: wire_time(r.updated_at),
        }
    }
}

/// The tenant's secrets.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SecretList {
    pub tenant_id: String,
    pub items: Vec<SecretView>,
    pub total: usize,
}

/// A deletion's answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SecretDeleted {
    #[schema(value_type = String, example = "deleted")]
    pub status: &'static str,
    pub name: String,
}

/// `POST /v1/tenants/{tenant}/secrets`.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/secrets", tag = "secrets", operation_id = "create_secret",
    params(("tenant" = String, Path, description = "Tenant name")),
    request_body = CreateSecretBody,
    responses((status = 201, body = SecretView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    TargetTenant(tenant): TargetTenant,
    JsonBody(body): JsonBody<CreateSecretBody>,
) -> Result<(StatusCode, Json<SecretView>), ApiError> {
    let made = state.secrets.create(&caller.0, &tenant, &body.name, body.fields).await.map_err(from_error)?;
    Ok((StatusCode::CREATED, Json(made.into())))
}

/// `GET /v1/tenants/{tenant}/secrets`.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/secrets", tag = "secrets", operation_id = "list_secrets",
    params(("tenant" = String, Path, description = "Tenant name")),
    responses((status = 200, body = SecretList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    TargetTenant(tenant): TargetTenant,
) -> Result<Json<SecretList>, ApiError> {
    let all = state.secrets.list(&caller.0, &tenant).await.map_err(from_error)?;
    Ok(Json(SecretList {
        tenant_id: tenant.to_string(),
        total: all.len(),
        items: all.into_iter().map(Into::into).collect(),
    }))
}

/// `GET /v1/tenants/{tenant}/secrets/{name}`.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/secrets/{name}", tag = "secrets", operation_id = "get_secret",
    params(("tenant" = String, Path, description = "Tenant name"), ("name" = String, Path, description = "Secret name")),
    responses((status = 200, body = SecretView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    TargetTenant(tenant): TargetTenant,
    Path((_, name)): Path<(String, String)>,
) -> Result<Json<SecretView>, ApiError> {
    Ok(Json(state.secrets.get(&caller.0, &tenant, &name).await.map_err(from_error)?.into()))
}

/// `PUT /v1/tenants/{tenant}/secrets/{name}`: rotate, `{"fields": {…}}`.
#[utoipa::path(put, path = "/v1/tenants/{tenant}/secrets/{name}", tag = "secrets", operation_id = "rotate_secret",
    params(("tenant" = String, Path, description = "Tenant name"), ("name" = String, Path, description = "Secret name")),
    request_body = RotateSecretBody,
    responses((status = 200, body = SecretView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn rotate(
    State(state): State<AppState>,
    caller: Caller,
    TargetTenant(tenant): TargetTenant,
    Path((_, name)): Path<(String, String)>,
    JsonBody(body): JsonBody<RotateSecretBody>,
) -> Result<Json<SecretView>, ApiError> {
    Ok(Json(state.secrets.rotate(&caller.0, &tenant, &name, body.fields).await.map_err(from_error)?.into()))
}

/// `DELETE /v1/tenants/{tenant}/secrets/{name}`.
#[utoipa::path(delete, path = "/v1/tenants/{tenant}/secrets/{name}", tag = "secrets", operation_id = "delete_secret",
    params(("tenant" = String, Path, description = "Tenant name"), ("name" = String, Path, description = "Secret name")),
    responses((status = 200, body = SecretDeleted), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    TargetTenant(tenant): TargetTenant,
    Path((_, name)): Path<(String, String)>,
) -> Result<Json<SecretDeleted>, ApiError> {
    let gone = state.secrets.delete(&caller.0, &tenant, &name).await.map_err(from_error)?;
    Ok(Json(SecretDeleted { status: "deleted", name: gone.name.as_str().to_owned() }))
}
