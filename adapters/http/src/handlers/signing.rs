//! Signed packages (docs/packages.md, "Signed packages"): the keys a tenant trusts,
//! `/v1/tenants/{tenant}/signing-keys`, and whether it requires signatures,
//! `/v1/tenants/{tenant}/signature-policy`. Tenant admins only.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use cloacina_domain::package::{SignaturePolicy, TrustedSigner};
use cloacina_ports::SigningError;
use serde::{Deserialize, Serialize};

use super::wire_time;
use crate::auth::{Caller, TargetTenant};
use crate::error::{ApiError, JsonBody};
use crate::openapi::ErrorBody;
use crate::state::AppState;

fn from_error(e: SigningError) -> ApiError {
    match e {
        SigningError::Denied(d) => ApiError::forbidden(&d),
        SigningError::NoSuchTenant(t) => {
            ApiError::not_found("tenant_not_found", format!("tenant '{t}' does not exist"))
        }
        e @ SigningError::NoSuchSigner(_) => ApiError::not_found("signing_key_not_found", e.to_string()),
        SigningError::Invalid(field, message) => ApiError::invalid_field(field, message),
        e @ SigningError::NameTaken(_) => {
            ApiError::new(StatusCode::CONFLICT, "signing_key_exists", e.to_string()).with_field("name")
        }
        e @ SigningError::KeyTaken(_) => {
            ApiError::new(StatusCode::CONFLICT, "signing_key_exists", e.to_string()).with_field("public_key")
        }
        SigningError::Store(e) => ApiError::store(&e),
    }
}

/// A key to trust.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddSignerBody {
    /// The tenant's name for the key: letters, digits, `-`, `_`, `.`.
    pub name: String,
    /// `ed25519:<base64>`, as `cloacinactl package keygen` writes it.
    pub public_key: String,
}

/// A trusted key.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SignerView {
    pub id: String,
    pub name: String,
    /// The id signatures name the key by.
    pub key_id: String,
    pub public_key: String,
    pub created_at: String,
    /// The API key that registered it.
    pub created_by: Option<String>,
}

impl From<TrustedSigner> for SignerView {
    fn from(s: TrustedSigner) -> Self {
        Self {
            id: s.id.to_string(),
            key_id: s.key.id(),
            public_key: s.key.to_text(),
            name: s.name,
            created_at: wire_time(s.created_at),
            created_by: s.created_by.map(|k| k.to_string()),
        }
    }
}

/// The trusted keys and the policy.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SignerList {
    pub tenant_id: String,
    pub items: Vec<SignerView>,
    pub total: usize,
    pub require_signatures: bool,
}

/// Whether uploads must be signed.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyBody {
    pub require_signatures: bool,
}

/// The policy as it is.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PolicyView {
    pub tenant_id: String,
    pub require_signatures: bool,
    pub updated_at: Option<String>,
    pub updated_by: Option<String>,
}

impl PolicyView {
    fn new(tenant: &str, p: SignaturePolicy) -> Self {
        Self {
            tenant_id: tenant.to_owned(),
            require_signatures: p.require_signatures,
            updated_at: p.updated_at.map(wire_time),
            updated_by: p.updated_by.map(|k| k.to_string()),
        }
    }
}

/// A removal's answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SignerRemoved {
    #[schema(value_type = String, example = "removed")]
    pub status: &'static str,
    pub name: String,
    pub key_id: String,
}

/// `GET /v1/tenants/{tenant}/signing-keys`.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/signing-keys", tag = "signing", operation_id = "list_signing_keys",
    params(("tenant" = String, Path, description = "Tenant name")),
    responses((status = 200, body = SignerList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    TargetTenant(tenant): TargetTenant,
) -> Result<Json<SignerList>, ApiError> {
    let (signers, policy) = state.signing.list(&caller.0, &tenant).await.map_err(from_error)?;
    Ok(Json(SignerList {
        tenant_id: tenant.to_string(),
        total: signers.len(),
        items: signers.into_iter().map(SignerView::from).collect(),
        require_signatures: policy.require_signatures,
    }))
}

/// `POST /v1/tenants/{tenant}/signing-keys`: trust a public key.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/signing-keys", tag = "signing", operation_id = "add_signing_key",
    params(("tenant" = String, Path, description = "Tenant name")),
    request_body = AddSignerBody,
    responses((status = 201, body = SignerView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn add(
    State(state): State<AppState>,
    caller: Caller,
    TargetTenant(tenant): TargetTenant,
    JsonBody(body): JsonBody<AddSignerBody>,
) -> Result<(StatusCode, Json<SignerView>), ApiError> {
    let added = state.signing.add(&caller.0, &tenant, &body.name, &body.public_key).await.map_err(from_error)?;
    Ok((StatusCode::CREATED, Json(added.into())))
}

/// `DELETE /v1/tenants/{tenant}/signing-keys/{name}`: stop trusting a key.
#[utoipa::path(delete, path = "/v1/tenants/{tenant}/signing-keys/{name}", tag = "signing",
    operation_id = "remove_signing_key",
    params(("tenant" = String, Path, description = "Tenant name"), ("name" = String, Path, description = "The key's name")),
    responses((status = 200, body = SignerRemoved), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    TargetTenant(tenant): TargetTenant,
    Path((_, name)): Path<(String, String)>,
) -> Result<Json<SignerRemoved>, ApiError> {
    let gone = state.signing.remove(&caller.0, &tenant, &name).await.map_err(from_error)?;
    Ok(Json(SignerRemoved { status: "removed", key_id: gone.key.id(), name: gone.name }))
}

/// `GET /v1/tenants/{tenant}/signature-policy`.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/signature-policy", tag = "signing", operation_id = "get_signature_policy",
    params(("tenant" = String, Path, description = "Tenant name")),
    responses((status = 200, body = PolicyView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn policy(
    State(state): State<AppState>,
    caller: Caller,
    TargetTenant(tenant): TargetTenant,
) -> Result<Json<PolicyView>, ApiError> {
    let (_, policy) = state.signing.list(&caller.0, &tenant).await.map_err(from_error)?;
    Ok(Json(PolicyView::new(tenant.as_str(), policy)))
}

/// `PUT /v1/tenants/{tenant}/signature-policy` `{"require_signatures": bool}`.
#[utoipa::path(put, path = "/v1/tenants/{tenant}/signature-policy", tag = "signing", operation_id = "set_signature_policy",
    params(("tenant" = String, Path, description = "Tenant name")),
    request_body = PolicyBody,
    responses((status = 200, body = PolicyView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn set_policy(
    State(state): State<AppState>,
    caller: Caller,
    TargetTenant(tenant): TargetTenant,
    JsonBody(body): JsonBody<PolicyBody>,
) -> Result<Json<PolicyView>, ApiError> {
    let set = state.signing.set_required(&caller.0, &tenant, body.require_signatures).await.map_err(from_error)?;
    Ok(Json(PolicyView::new(tenant.as_str(), set)))
}
