//! The audit trail: `GET /v1/tenants/{tenant}/audit` (the tenant's chain, tenant admin) and
//! `GET /v1/audit` (the control chain, god keys). Each row carries every field its hash
//! covers, so a client can check the chain itself (`cloacinactl audit verify`).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, SecondsFormat, Utc};
use cloacina_domain::audit::{AuditFilter, AuditRecord, ChainHead};
use cloacina_domain::ports::{AuditPage, Chain};
use cloacina_ports::AuditError;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::auth::{Caller, TargetTenant};
use crate::error::ApiError;
use crate::openapi::ErrorBody;
use crate::query::{DEFAULT_PAGE, StrictQuery, pagination};
use crate::state::AppState;

fn from_error(e: AuditError) -> ApiError {
    match e {
        AuditError::Denied(d) => ApiError::forbidden(&d),
        AuditError::NoSuchTenant(t) => ApiError::not_found("tenant_not_found", format!("tenant '{t}' does not exist")),
        AuditError::Store(e) => ApiError::store(&e),
    }
}

/// Times to the microsecond: what the row's hash covers.
fn exact(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The filters and cursor of a listing.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only this action (`key.create`, `workflow.execute`, …).
    pub action: Option<String>,
    /// Only the actions of this key id.
    pub actor: Option<String>,
    /// Rows at or after this time (RFC 3339).
    pub since: Option<String>,
    /// Rows before this time (RFC 3339).
    pub until: Option<String>,
    /// Rows after this sequence number, oldest first (for reading a whole chain, and
    /// following it).
    #[param(value_type = Option<i64>, minimum = 0)]
    pub after: Option<String>,
    /// Rows before this sequence number, newest first (the next page of a listing).
    #[param(value_type = Option<i64>, minimum = 0)]
    pub before: Option<String>,
    /// Rows in the page, 1 to 1000 (default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    pub limit: Option<String>,
}

fn bad(field: &str, message: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_field", message).with_field(field)
}

fn time(field: &str, text: Option<&str>) -> Result<Option<DateTime<Utc>>, ApiError> {
    text.map(|t| {
        DateTime::parse_from_rfc3339(t)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| bad(field, format!("{field} must be an RFC 3339 time such as 2026-12-07T10:00:00Z: {e}")))
    })
    .transpose()
}

fn seq(field: &str, text: Option<&str>) -> Result<Option<u64>, ApiError> {
    text.map(|t| {
        t.parse::<i64>()
            .ok()
            .and_then(|n| u64::try_from(n).ok())
            .ok_or_else(|| bad(field, format!("{field} must be a row number (0 to 2^63-1), not {t:?}")))
    })
    .transpose()
}

impl AuditQuery {
    fn parse(&self) -> Result<(AuditFilter, u32), ApiError> {
        let (limit, _) = pagination(self.limit.as_deref(), None, DEFAULT_PAGE)?;
        let filter = AuditFilter {
            action: self.action.as_deref().map(str::parse).transpose().map_err(|e| bad("action", format!("{e}")))?,
            actor: self
                .actor
                .as_deref()
                .map(|a| a.parse().map_err(|_| bad("actor", format!("actor must be a key id (a UUID), not {a:?}"))))
                .transpose()?,
            since: time("since", self.since.as_deref())?,
            until: time("until", self.until.as_deref())?,
            after: seq("after", self.after.as_deref())?,
            before: seq("before", self.before.as_deref())?,
        };
        if filter.after.is_some() && filter.before.is_some() {
            return Err(bad("before", "give after or before, not both".into()));
        }
        Ok((filter, limit))
    }
}

/// Who acted.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditActor {
    pub key_id: String,
    pub key_name: String,
}

/// One row of a chain.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditRow {
    /// The row's place in its chain: 1, 2, 3 … with no gap.
    pub seq: u64,
    /// When, to the microsecond.
    pub at: String,
    /// The acting key; `null` for the server itself and for refused callers.
    pub actor: Option<AuditActor>,
    /// The tenant acted on; `null` in the control chain.
    pub tenant: Option<String>,
    /// `noun.verb`: `key.create`, `workflow.execute`, `auth.failures`, …
    pub action: String,
    pub target: String,
    /// `ok`, or `denied` for failed authentication.
    pub outcome: String,
    pub request_id: Option<String>,
    pub client: Option<String>,
    /// Names, roles, versions and counts; never a secret.
    #[schema(value_type = Object)]
    pub detail: Map<String, Value>,
    /// The hash of row `seq - 1` (64 zeros for the first).
    pub prev_hash: String,
    /// SHA-256 over this row's fields and `prev_hash`.
    pub hash: String,
}

impl From<AuditRecord> for AuditRow {
    fn from(r: AuditRecord) -> Self {
        let e = r.entry;
        Self {
            seq: r.seq,
            at: exact(e.at),
            actor: e.actor.map(|a| AuditActor { key_id: a.key_id.to_string(), key_name: a.key_name }),
            tenant: e.tenant.map(|t| t.to_string()),
            action: e.action.as_str().to_owned(),
            target: e.target,
            outcome: e.outcome.as_str().to_owned(),
            request_id: e.origin.request_id,
            client: e.origin.client,
            detail: e.detail,
            prev_hash: r.prev_hash,
            hash: r.hash,
        }
    }
}

/// Where a chain stands.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditHead {
    /// The last row (0: none yet).
    pub seq: u64,
    pub hash: String,
    /// The last row the retention prune removed (0: none); the first row kept follows it.
    pub anchor_seq: u64,
    pub anchor_hash: String,
}

impl From<ChainHead> for AuditHead {
    fn from(h: ChainHead) -> Self {
        Self { seq: h.seq, hash: h.hash, anchor_seq: h.anchor_seq, anchor_hash: h.anchor_hash }
    }
}

/// A page of a chain.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditList {
    /// The tenant, or `null` for the control chain.
    pub tenant_id: Option<String>,
    /// Newest first; oldest first when `after` was given.
    pub items: Vec<AuditRow>,
    /// Rows matching the filters in all.
    pub total: u64,
    /// The cursor for the next page (`after=` or `before=`, as this page was read); `null`
    /// when this page was the last.
    pub next_cursor: Option<u64>,
    pub head: AuditHead,
}

fn page(tenant: Option<String>, page: AuditPage, filter: &AuditFilter, limit: u32) -> AuditList {
    let full = page.items.len() >= limit as usize;
    let next_cursor = page.items.last().map(|r| r.seq).filter(|_| full || filter.after.is_some());
    AuditList {
        tenant_id: tenant,
        items: page.items.into_iter().map(AuditRow::from).collect(),
        total: page.total,
        next_cursor,
        head: page.head.into(),
    }
}

/// `GET /v1/tenants/{tenant}/audit`.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/audit", tag = "audit", operation_id = "list_tenant_audit",
    params(("tenant" = String, Path, description = "Tenant name"), AuditQuery),
    responses((status = 200, body = AuditList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn tenant(
    State(state): State<AppState>,
    caller: Caller,
    TargetTenant(tenant): TargetTenant,
    StrictQuery(q): StrictQuery<AuditQuery>,
) -> Result<Json<AuditList>, ApiError> {
    let (filter, limit) = q.parse()?;
    let found =
        state.audit.list(&caller.0, &Chain::Tenant(tenant.clone()), &filter, limit).await.map_err(from_error)?;
    Ok(Json(page(Some(tenant.to_string()), found, &filter, limit)))
}

/// `GET /v1/audit`: the control chain.
#[utoipa::path(get, path = "/v1/audit", tag = "audit", operation_id = "list_audit",
    params(AuditQuery),
    responses((status = 200, body = AuditList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn control(
    State(state): State<AppState>,
    caller: Caller,
    StrictQuery(q): StrictQuery<AuditQuery>,
) -> Result<Json<AuditList>, ApiError> {
    let (filter, limit) = q.parse()?;
    let found = state.audit.list(&caller.0, &Chain::Control, &filter, limit).await.map_err(from_error)?;
    Ok(Json(page(None, found, &filter, limit)))
}
