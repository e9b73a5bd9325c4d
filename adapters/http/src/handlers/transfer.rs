//! `GET /v1/tenants/{tenant}/export` (streamed JSON lines) and `POST /v1/tenants/import`
//! (god keys): a tenant moved whole between deployments (docs/tenants.md).

use async_trait::async_trait;
use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use cloacina_domain::ports::{ExportSink, ExportSource};
use cloacina_domain::{TenantDescription, TenantName};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::tenants::{TenantView, from_error};
use crate::auth::{Caller, TargetTenant};
use crate::error::ApiError;
use crate::openapi::ErrorBody;
use crate::query::StrictQuery;
use crate::state::AppState;

/// The longest line an import reads (a package archive's chunk is a MiB, twice that as hex).
const MAX_LINE: usize = 8 * 1024 * 1024;

struct ChannelSink(tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>);

#[async_trait]
impl ExportSink for ChannelSink {
    async fn line(&mut self, mut line: String) -> bool {
        line.push('\n');
        self.0.send(Ok(Bytes::from(line))).await.is_ok()
    }
}

/// `GET /v1/tenants/{tenant}/export`: the tenant's data as JSON lines, streamed.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/export", tag = "tenants", operation_id = "export_tenant",
    params(("tenant" = String, Path, description = "Tenant name")),
    responses((status = 200, description = "JSON lines: a header, the rows, an end line", content_type = "application/x-ndjson"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn export(
    State(state): State<AppState>,
    caller: Caller,
    TargetTenant(tenant): TargetTenant,
) -> Result<Response, ApiError> {
    state.transfer.may_export(&caller.0).map_err(from_error)?;
    // Refusals (no such tenant, SQLite) answer before the first byte.
    state.tenants.get(&caller.0, &tenant).await.map_err(from_error)?;
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let (failed_tx, failed_rx) = tokio::sync::oneshot::channel();
    let transfer = state.transfer.clone();
    tokio::spawn(async move {
        let mut sink = ChannelSink(tx.clone());
        if let Err(e) = transfer.export(&caller.0, &tenant, &mut sink).await {
            tracing::warn!(%tenant, error = %e, "an export failed: its stream ends without its end line");
            let _ = failed_tx.send(e);
            let _ = tx.send(Err(std::io::Error::other("the export failed"))).await;
        }
    });
    // A failure before the first line (a single-tenant backend) still answers with its status.
    let first = match rx.recv().await {
        Some(Ok(bytes)) => bytes,
        _ => {
            return Err(match failed_rx.await {
                Ok(e) => from_error(e),
                Err(_) => ApiError::internal("the export ended before it began"),
            });
        }
    };
    let rest = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let body = Body::from_stream(futures::stream::once(async move { Ok::<_, std::io::Error>(first) }).chain(rest));
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response())
}

/// An import's body as lines.
struct BodyLines {
    stream: axum::body::BodyDataStream,
    buf: Vec<u8>,
    done: bool,
}

#[async_trait]
impl ExportSource for BodyLines {
    async fn next_line(&mut self) -> Option<Result<String, String>> {
        loop {
            if let Some(end) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=end).collect();
                return Some(String::from_utf8(line[..end].to_vec()).map_err(|_| "a line is not UTF-8".to_owned()));
            }
            if self.done {
                if self.buf.is_empty() {
                    return None;
                }
                let rest = std::mem::take(&mut self.buf);
                return Some(String::from_utf8(rest).map_err(|_| "a line is not UTF-8".to_owned()));
            }
            if self.buf.len() > MAX_LINE {
                return Some(Err(format!("a line is longer than {MAX_LINE} bytes")));
            }
            match self.stream.next().await {
                Some(Ok(chunk)) => self.buf.extend_from_slice(&chunk),
                Some(Err(e)) => return Some(Err(format!("the body could not be read: {e}"))),
                None => self.done = true,
            }
        }
    }
}

/// Where an import goes.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ImportQuery {
    /// The new tenant's name (`^[a-z][a-z0-9_-]{0,47}$`).
    pub name: Option<String>,
    /// Its description.
    pub description: Option<String>,
}

/// An import's answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Imported {
    #[serde(flatten)]
    pub tenant: TenantView,
    /// Rows put back.
    pub rows: u64,
    /// Keys in the export, not imported: mint new ones.
    pub keys_not_imported: u64,
}

/// `POST /v1/tenants/import?name=NAME`: a tenant made from an export (the body, as
/// `GET …/export` wrote it), all or nothing.
#[utoipa::path(post, path = "/v1/tenants/import", tag = "tenants", operation_id = "import_tenant",
    params(ImportQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream",
        description = "An export, as GET /v1/tenants/{tenant}/export wrote it (JSON lines; any content type)"),
    responses((status = 201, body = Imported), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn import(
    State(state): State<AppState>,
    caller: Caller,
    StrictQuery(q): StrictQuery<ImportQuery>,
    body: Body,
) -> Result<(StatusCode, Json<Imported>), ApiError> {
    let name = q.name.as_deref().ok_or_else(|| ApiError::invalid_field("name", "name the new tenant: ?name=NAME"))?;
    let name = TenantName::parse(name).map_err(|e| ApiError::invalid_field("name", e.to_string()))?;
    let description = q
        .description
        .as_deref()
        .map(TenantDescription::parse)
        .transpose()
        .map_err(|e| ApiError::invalid_field("description", e.to_string()))?;
    let mut lines = BodyLines { stream: body.into_data_stream(), buf: Vec::new(), done: false };
    let (record, summary) =
        state.transfer.import(&caller.0, name, description, &mut lines).await.map_err(from_error)?;
    Ok((
        StatusCode::CREATED,
        Json(Imported { tenant: TenantView::from(&record), rows: summary.rows, keys_not_imported: summary.keys }),
    ))
}
