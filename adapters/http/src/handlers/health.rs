//! Probes and metrics: public, no key.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::openapi::StatusBody;
use crate::state::AppState;

/// How long `/ready` waits for the database.
const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// `GET /health`: the process is alive. Touches no database.
#[utoipa::path(get, path = "/health", tag = "probes", responses((status = 200, body = StatusBody)))]
pub async fn health() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /ready`: 200 when the database answers and its schema is current; 503 otherwise and
/// from the moment shutdown begins.
#[utoipa::path(get, path = "/ready", tag = "probes",
    responses((status = 200, body = StatusBody), (status = 503, description = "Database unavailable or shutting down")))]
pub async fn ready(State(state): State<AppState>) -> Response {
    let unready = |code: &str, error: &str| {
        let body = json!({ "status": "unavailable", "error": error, "code": code });
        (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
    };
    if state.is_shutting_down() {
        return unready("shutting_down", "the server is shutting down");
    }
    // A probe must answer promptly even while the database hangs.
    match tokio::time::timeout(READY_TIMEOUT, state.health.ping()).await {
        Ok(Ok(())) => Json(json!({ "status": "ready" })).into_response(),
        Err(_) => {
            tracing::warn!("readiness check timed out");
            unready("database_unavailable", "the database did not answer in time")
        }
        Ok(Err(e)) => {
            tracing::warn!(cause = %e, "readiness check failed");
            unready("database_unavailable", "the database is unavailable or not migrated")
        }
    }
}

/// `GET /metrics`: the Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", tag = "probes",
    responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    // The executions and queue gauges come from a census taken now and then, in the
    // background: this answer shows the last one.
    state.census.refresh_if_stale();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], state.metrics.render()).into_response()
}
