//! Package upload (`POST /v1/tenants/{tenant}/workflows`, multipart field `file`) and the
//! package listing (`GET /v1/tenants/{tenant}/packages`).

use axum::Json;
use axum::extract::multipart::{Multipart, MultipartError, MultipartRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use cloacina_domain::package::{PackageRecord, SignatureRefused};
use cloacina_ports::PackageError;
use serde::Serialize;
use tokio::io::AsyncWriteExt as _;

use super::wire_time;
use crate::auth::{Caller, TargetTenant};
use crate::error::ApiError;
use crate::openapi::ErrorBody;
use crate::query::{Paging, StrictQuery};
use crate::state::AppState;

/// A stored package version.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PackageView {
    pub package_id: String,
    pub tenant_id: String,
    pub name: String,
    pub version: String,
    pub description: Option<String>,
    /// SHA-256 of the archive, hex.
    pub content_hash: String,
    pub size_bytes: u64,
    /// The workflows this version declares.
    pub workflows: Vec<String>,
    pub uploaded_at: String,
    pub uploaded_by: Option<String>,
}

impl PackageView {
    fn new(tenant: &str, r: &PackageRecord) -> Self {
        Self {
            package_id: r.id.to_string(),
            tenant_id: tenant.to_owned(),
            name: r.name.to_string(),
            version: r.version.to_string(),
            description: r.description.clone(),
            content_hash: r.content_hash.clone(),
            size_bytes: r.size_bytes,
            workflows: r.workflows.clone(),
            uploaded_at: wire_time(r.uploaded_at),
            uploaded_by: r.uploaded_by.map(|k| k.to_string()),
        }
    }
}

/// An upload's answer: the package, and whether this upload created it (201) or the same
/// bytes were there already (200).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Uploaded {
    #[serde(flatten)]
    pub package: PackageView,
    pub created: bool,
}

/// A listing: the list envelope.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PackageList {
    pub tenant_id: String,
    pub items: Vec<PackageView>,
    pub total: usize,
}

fn from_error(e: PackageError) -> ApiError {
    match e {
        PackageError::Denied(d) => ApiError::forbidden(&d),
        PackageError::NoSuchTenant(t) => {
            ApiError::not_found("tenant_not_found", format!("tenant '{t}' does not exist"))
        }
        PackageError::Invalid(e) => {
            let mut err = ApiError::invalid_field("file", e.to_string());
            err.code = "invalid_package";
            err
        }
        e @ PackageError::NoSuchVersion(..) => ApiError::not_found("package_not_found", e.to_string()),
        PackageError::Conflict(c) => ApiError::new(StatusCode::CONFLICT, "package_conflict", c.to_string()),
        PackageError::Unsigned(refused) => {
            let status = match refused {
                SignatureRefused::Untrusted(_) => StatusCode::FORBIDDEN,
                _ => StatusCode::BAD_REQUEST,
            };
            ApiError::new(status, refused.code(), refused.to_string()).with_field("signature")
        }
        PackageError::Store(e) => ApiError::store(&e),
    }
}

/// The most a signature document may hold.
const MAX_SIGNATURE: usize = 16 * 1024;

/// The `signature` field: a small UTF-8 document.
async fn read_signature(field: &mut axum::extract::multipart::Field<'_>) -> Result<String, ApiError> {
    let mut bytes = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(|e| multipart_error(&e))? {
        bytes.extend_from_slice(&chunk);
        if bytes.len() > MAX_SIGNATURE {
            return Err(ApiError::invalid_field("signature", format!("a signature is at most {MAX_SIGNATURE} bytes")));
        }
    }
    String::from_utf8(bytes).map_err(|_| ApiError::invalid_field("signature", "the signature is not UTF-8 text"))
}

fn multipart_error(e: &MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "the package is larger than the upload limit")
    } else {
        ApiError::invalid_field("file", format!("the multipart body could not be read: {}", e.body_text()))
    }
}

/// `POST /v1/tenants/{tenant}/workflows`: upload a `.cloacina` package (multipart field
/// `file`, at most 100 MiB). It is checked as hostile input before anything is stored; the
/// same bytes again change nothing.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/workflows", tag = "workflows", operation_id = "upload_package",
    params(("tenant" = String, Path, description = "Tenant name")),
    request_body(content_type = "multipart/form-data",
        description = "Field `file`: the .cloacina archive; field `signature` (optional): its .sig document"),
    responses((status = 201, body = Uploaded), (status = 200, body = Uploaded, description = "Uploaded before"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn upload(
    State(state): State<AppState>,
    caller: Caller,
    TargetTenant(tenant): TargetTenant,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<(StatusCode, Json<Uploaded>), ApiError> {
    let mut multipart = multipart.map_err(|e| {
        ApiError::invalid_field("file", format!("send the package as multipart/form-data with a field 'file': {e}"))
    })?;
    // The upload is spooled to a private temporary file as it arrives (removed when this
    // request ends), so a large package never sits in memory whole.
    let mut archive = None;
    let mut signature = None;
    while let Some(mut field) = multipart.next_field().await.map_err(|e| multipart_error(&e))? {
        if field.name() == Some("signature") {
            signature = Some(read_signature(&mut field).await?);
            continue;
        }
        if field.name() != Some("file") {
            continue;
        }
        let spool = tempfile::NamedTempFile::new()
            .map_err(|e| ApiError::internal(&format!("cannot create a file for the upload: {e}")))?;
        let mut file = tokio::fs::File::from_std(
            spool.reopen().map_err(|e| ApiError::internal(&format!("cannot open the upload file: {e}")))?,
        );
        while let Some(chunk) = field.chunk().await.map_err(|e| multipart_error(&e))? {
            file.write_all(&chunk).await.map_err(|e| ApiError::internal(&format!("cannot write the upload: {e}")))?;
        }
        file.flush().await.map_err(|e| ApiError::internal(&format!("cannot write the upload: {e}")))?;
        archive = Some(spool);
    }
    let archive = archive.ok_or_else(|| ApiError::invalid_field("file", "the multipart field 'file' is missing"))?;
    let stored = state.packages.upload(&caller.0, &tenant, archive.path(), signature).await.map_err(from_error)?;
    let status = if stored.created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(Uploaded { package: PackageView::new(tenant.as_str(), &stored.record), created: stored.created })))
}

/// `GET /v1/tenants/{tenant}/packages`: every uploaded version, by name, newest first.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/packages", tag = "workflows", operation_id = "list_packages",
    params(("tenant" = String, Path, description = "Tenant name"), Paging),
    responses((status = 200, body = PackageList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    TargetTenant(tenant): TargetTenant,
    StrictQuery(paging): StrictQuery<Paging>,
) -> Result<Json<PackageList>, ApiError> {
    let packages = state.packages.list(&caller.0, &tenant).await.map_err(from_error)?;
    let (page, total) = paging.apply(packages)?;
    Ok(Json(PackageList {
        tenant_id: tenant.to_string(),
        total,
        items: page.iter().map(|p| PackageView::new(tenant.as_str(), p)).collect(),
    }))
}

/// A deletion's answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PackageDeleted {
    #[schema(value_type = String, example = "deleted")]
    pub status: &'static str,
    pub package_name: String,
    pub version: String,
}

/// `DELETE /v1/tenants/{tenant}/workflows/{name}/{version}`: delete one version of package
/// `name`. If it was the version in force, the newest remaining one takes its place (its
/// workflows with it); with none left, the package's workflows go.
#[utoipa::path(delete, path = "/v1/tenants/{tenant}/workflows/{name}/{version}", tag = "workflows", operation_id = "delete_package",
    params(("tenant" = String, Path, description = "Tenant name"), ("name" = String, Path, description = "Package name"),
        ("version" = String, Path, description = "Package version")),
    responses((status = 200, body = PackageDeleted), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    TargetTenant(tenant): TargetTenant,
    Path((_, name, version)): Path<(String, String, String)>,
) -> Result<Json<PackageDeleted>, ApiError> {
    let gone = state.packages.delete(&caller.0, &tenant, &name, &version).await.map_err(from_error)?;
    Ok(Json(PackageDeleted {
        status: "deleted",
        package_name: gone.name.to_string(),
        version: gone.version.to_string(),
    }))
}
