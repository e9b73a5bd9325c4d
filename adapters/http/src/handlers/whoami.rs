//! `GET /v1/auth/whoami`.

use axum::Json;
use serde::Serialize;

use super::wire_time;
use crate::auth::Caller;

/// Who the presented key is. Never the key itself.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WhoAmI {
    pub key_id: String,
    pub name: String,
    pub is_admin: bool,
    /// The key's tenant; `null` for an admin (god) key.
    pub tenant_id: Option<String>,
    /// `admin` for a god key, else the key's role.
    #[schema(value_type = String, example = "write")]
    pub role: &'static str,
    /// The same, under the name key listings use.
    #[schema(value_type = String, example = "write")]
    pub permissions: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

/// Answers with the caller's identity.
#[utoipa::path(get, path = "/v1/auth/whoami", tag = "keys",
    responses((status = 200, body = WhoAmI), (status = 401, body = crate::openapi::ErrorBody)),
    security(("bearer" = [])))]
pub async fn whoami(Caller(p): Caller) -> Json<WhoAmI> {
    Json(WhoAmI {
        key_id: p.key_id.to_string(),
        name: p.key_name.clone(),
        is_admin: p.authority.is_god(),
        tenant_id: p.authority.tenant().map(|t| t.as_str().to_owned()),
        role: p.authority.permissions_label(),
        permissions: p.authority.permissions_label(),
        expires_at: p.expires_at.map(wire_time),
    })
}
