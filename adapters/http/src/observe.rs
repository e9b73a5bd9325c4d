//! What wraps every request: request ids, a span, the timeout, panics turned into the error
//! envelope, and the HTTP metrics by route template.

use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::error::ApiError;
use crate::routes::ROUTES;
use crate::state::AppState;

/// The header that carries the request id, kept when the client sends one.
pub const REQUEST_ID: &str = "x-request-id";

/// Wraps `router` in the per-request layers (outermost first): request id, trace span,
/// panic catcher, metrics, timeout.
pub fn wrap(router: Router<AppState>, state: &AppState) -> Router<AppState> {
    let header = axum::http::HeaderName::from_static(REQUEST_ID);
    router.layer(
        ServiceBuilder::new()
            .layer(axum::middleware::map_request(drop_insane_request_id))
            .layer(SetRequestIdLayer::new(header.clone(), FastRequestId))
            .layer(PropagateRequestIdLayer::new(header))
            .layer(TraceLayer::new_for_http().make_span_with(span_for))
            .layer(CatchPanicLayer::custom(|_| ApiError::internal("handler panicked").into_response()))
            .layer(from_fn_with_state(state.clone(), record))
            .layer(from_fn_with_state(state.clone(), timeout)),
    )
}

/// An inbound id is kept only if it is 1–128 visible ASCII characters; otherwise it is
/// dropped and a UUID takes its place, so logs never carry what a client made up to break them.
async fn drop_insane_request_id(mut req: Request) -> Request {
    if req.headers().get(REQUEST_ID).is_some_and(|v| !sane_request_id(v)) {
        req.headers_mut().remove(REQUEST_ID);
    }
    req
}

fn span_for(req: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let id = req.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("");
    let route = req.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str);
    tracing::info_span!("request", method = %req.method(), route, request_id = id, key_id = tracing::field::Empty)
}

async fn record(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(req.method());
    let route = req.extensions().get::<MatchedPath>().map_or("unmatched", |p| route_label(p.as_str()));
    let response = next.run(req).await;
    let status = response.status();
    state.metrics.http_request(method, route, status.as_u16(), started.elapsed().as_secs_f64());
    tracing::debug!(status = status.as_u16(), elapsed_ms = started.elapsed().as_millis() as u64, "request done");
    response
}

/// The method as a label; unusual methods share one, so the label set stays bounded.
fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// The route template as the table holds it.
fn route_label(matched: &str) -> &'static str {
    ROUTES.iter().find(|r| r.path == matched).map_or("unmatched", |r| r.path)
}

/// Request ids: random UUIDs from the thread's CSPRNG, with no system call per request.
#[derive(Clone, Copy, Debug, Default)]
struct FastRequestId;

impl MakeRequestId for FastRequestId {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        let id = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
        HeaderValue::from_str(id.hyphenated().encode_lower(&mut uuid::Uuid::encode_buffer())).ok().map(RequestId::new)
    }
}

async fn timeout(State(state): State<AppState>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(state.config.request_timeout, next.run(req)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(axum::http::StatusCode::SERVICE_UNAVAILABLE, "timeout", "the request timed out")
            .into_response(),
    }
}

fn sane_request_id(value: &HeaderValue) -> bool {
    let b = value.as_bytes();
    !b.is_empty() && b.len() <= 128 && b.iter().all(u8::is_ascii_graphic)
}
