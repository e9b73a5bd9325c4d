//! Live sockets under `/v1/ws/` (docs/live.md): one execution's events, a tenant's, and the
//! reference server's delivery protocol (`/v1/ws/delivery/exec_events:{id}`).
//!
//! Everything that can be refused is refused before the upgrade, with the JSON envelope and
//! the status the same question gets over HTTP. After the upgrade a socket ends with a close
//! code that says why: 1000 the execution finished, 1001 the server is shutting down, 1008
//! the key was revoked or expired or the tenant deleted, 1013 the client fell behind (resume
//! with `since`), 1011 the database could not be read.

use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine as _;
use cloacina_domain::TenantName;
use cloacina_domain::execution::{EventKind, EventRecord, ExecutionId, OutputRecord};
use cloacina_ports::live::{Closed, Next, Scope, Subscription};
use cloacina_ports::{LiveError, Metrics};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;

use super::execution_detail::EventView;
use super::executions::{execution_id, from_error};
use crate::auth::{Caller, TargetTenant};
use crate::error::ApiError;
use crate::openapi::ErrorBody;
use crate::query::{StrictQuery, whole};
use crate::state::AppState;

/// A ping goes to an idle socket this often; a peer that has not answered the one before is
/// dropped.
const PING_EVERY: Duration = Duration::from_secs(20);

/// A frame the peer has not taken in this long ends the socket as a slow consumer.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// The reference delivery protocol's version.
const PROTOCOL_VERSION: i64 = 1;

/// `?since=` of our sockets.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SinceQuery {
    /// Only events with a higher id (the last `sequence_num` received, to resume).
    #[param(value_type = Option<i64>, minimum = 0)]
    pub since: Option<String>,
    /// An execution's socket only: its tasks' output too, the pieces with a higher id (0 for
    /// all; the last `output_seq` received, to resume).
    #[param(value_type = Option<i64>, minimum = 0)]
    pub output_since: Option<String>,
    /// A ticket from `POST /v1/auth/ws-ticket`, for clients that cannot set headers.
    #[param(value_type = Option<String>)]
    pub token: Option<String>,
}

/// `?token=` and `?tenant=` of the delivery socket.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveryQuery {
    /// A ticket from `POST /v1/auth/ws-ticket`, for clients that cannot set headers.
    #[param(value_type = Option<String>)]
    pub token: Option<String>,
    /// For a deployment-wide key: the execution's tenant (else it is looked for).
    #[param(value_type = Option<String>)]
    pub tenant: Option<String>,
}

/// One event on our sockets.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventFrame {
    /// Always `event`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub tenant_id: String,
    pub execution_id: String,
    #[serde(flatten)]
    pub event: EventView,
}

/// One piece of a task's output on an execution's socket (with `output_since`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OutputFrame {
    /// Always `output`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub tenant_id: String,
    pub execution_id: String,
    /// The piece's number, in a sequence of its own (apart from events' `sequence_num`).
    pub output_seq: i64,
    pub task_name: String,
    pub attempt: u32,
    pub stdout: String,
    pub stderr: String,
    /// Whether the attempt's output was cut at the cap.
    pub truncated: bool,
    /// Whether this piece ends its attempt.
    pub ended: bool,
    pub created_at: String,
}

/// `GET /v1/ws/tenants/{tenant}/executions/{id}`.
#[utoipa::path(get, path = "/v1/ws/tenants/{tenant}/executions/{id}", tag = "live", operation_id = "watch_execution",
    params(("tenant" = String, Path, description = "Tenant name"), ("id" = String, Path, description = "Execution id"), SinceQuery),
    responses(
        (status = 101, description = "A WebSocket of `EventFrame`s in id order (and with `output_since`, `OutputFrame`s); closed with 1000 after the final event"),
        (status = 404, description = "No such tenant or execution", body = ErrorBody),
        (status = 401, description = "No valid key or ticket", body = ErrorBody),
        (status = 403, description = "The key may not read this tenant's executions", body = ErrorBody),
        (status = 426, description = "Not a WebSocket upgrade", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn execution(
    State(state): State<AppState>,
    caller: Caller,
    TargetTenant(tenant): TargetTenant,
    Path((_, id)): Path<(String, String)>,
    StrictQuery(q): StrictQuery<SinceQuery>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let id = execution_id(&id)?;
    let since = q.since.as_deref().map(|s| whole("since", Some(s), 0)).transpose()?;
    let output_since = q.output_since.as_deref().map(|s| whole("output_since", Some(s), 0)).transpose()?;
    state.executions.get(&caller.0, &tenant, id).await.map_err(from_error)?;
    let upgrade = upgrade.map_err(|_| upgrade_required())?;
    let sub = state
        .live
        .subscribe_with_output(&caller.0, &tenant, Scope::Execution(id), since, output_since)
        .await
        .map_err(live_error)?;
    Ok(open(upgrade, &state, sub, Framing::Ours { until_final: true }))
}

/// `GET /v1/ws/tenants/{tenant}/executions`.
#[utoipa::path(get, path = "/v1/ws/tenants/{tenant}/executions", tag = "live", operation_id = "watch_executions",
    params(("tenant" = String, Path, description = "Tenant name"), SinceQuery),
    responses(
        (status = 101, description = "A WebSocket of every execution's `EventFrame`s, in id order"),
        (status = 404, description = "No such tenant", body = ErrorBody),
        (status = 401, description = "No valid key or ticket", body = ErrorBody),
        (status = 403, description = "The key may not read this tenant's executions", body = ErrorBody),
        (status = 426, description = "Not a WebSocket upgrade", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn tenant(
    State(state): State<AppState>,
    caller: Caller,
    TargetTenant(tenant): TargetTenant,
    StrictQuery(q): StrictQuery<SinceQuery>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let since = q.since.as_deref().map(|s| whole("since", Some(s), 0)).transpose()?;
    if q.output_since.is_some() {
        return Err(ApiError::invalid_field("output_since", "output comes on an execution's socket only"));
    }
    let sub = state.live.subscribe(&caller.0, &tenant, Scope::Tenant, since).await.map_err(live_error)?;
    let upgrade = upgrade.map_err(|_| upgrade_required())?;
    Ok(open(upgrade, &state, sub, Framing::Ours { until_final: false }))
}

/// `GET /v1/ws/delivery/{recipient}`: the reference protocol, `recipient` being
/// `exec_events:<execution id>`.
#[utoipa::path(get, path = "/v1/ws/delivery/{recipient}", tag = "live", operation_id = "delivery",
    params(("recipient" = String, Path, description = "`exec_events:<execution id>`"), DeliveryQuery),
    responses(
        (status = 101, description = "The reference delivery protocol: welcome, then a push per event"),
        (status = 404, description = "No such execution", body = ErrorBody),
        (status = 401, description = "No valid key or ticket", body = ErrorBody),
        (status = 403, description = "The key may not read this tenant's executions", body = ErrorBody),
        (status = 426, description = "Not a WebSocket upgrade", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn delivery(
    State(state): State<AppState>,
    caller: Caller,
    target: Result<TargetTenant, ApiError>,
    Path(recipient): Path<String>,
    StrictQuery(_q): StrictQuery<DeliveryQuery>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let id = recipient
        .strip_prefix("exec_events:")
        .and_then(|id| id.parse::<ExecutionId>().ok())
        .ok_or_else(|| ApiError::invalid_field("recipient", "the recipient must be exec_events:<execution id>"))?;
    let tenant = match target {
        Ok(TargetTenant(t)) => t,
        Err(_) => find_tenant(&state, &caller, id).await?,
    };
    state.executions.get(&caller.0, &tenant, id).await.map_err(from_error)?;
    let upgrade = upgrade.map_err(|_| upgrade_required())?;
    let known = state.live.last_event_id(&tenant).await.map_err(live_error)?;
    let sub = state.live.subscribe(&caller.0, &tenant, Scope::Execution(id), None).await.map_err(live_error)?;
    let recipient = format!("exec_events:{id}");
    Ok(open(upgrade, &state, sub, Framing::Delivery { recipient, known, skip_to: 0 }))
}

/// A deployment-wide key's execution: whichever tenant has it.
async fn find_tenant(state: &AppState, caller: &Caller, id: ExecutionId) -> Result<TenantName, ApiError> {
    let tenants = state.tenants.list(&caller.0).await.map_err(|e| ApiError::internal(&e.to_string()))?;
    for t in tenants {
        if state.executions.get(&caller.0, &t.name, id).await.is_ok() {
            return Ok(t.name);
        }
    }
    Err(ApiError::not_found("execution_not_found", format!("execution {id} does not exist")))
}

fn upgrade_required() -> ApiError {
    ApiError::new(
        StatusCode::UPGRADE_REQUIRED,
        "upgrade_required",
        "this route is a WebSocket: send an upgrade request",
    )
}

fn live_error(e: LiveError) -> ApiError {
    match e {
        LiveError::Denied(d) => ApiError::forbidden(&d),
        LiveError::NoTenant(t) => ApiError::not_found("tenant_not_found", format!("tenant '{t}' does not exist")),
        LiveError::TooMany(_) => ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too_many_sockets", e.to_string()),
        LiveError::ShuttingDown => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "shutting_down", e.to_string()),
        LiveError::Store(e) => ApiError::store(&e),
    }
}

/// How events go on the wire.
enum Framing {
    /// Our [`EventFrame`]s; with `until_final`, closed with 1000 after the execution's final
    /// event.
    Ours { until_final: bool },
    /// The reference's push frames; events up to `skip_to` (a `hello`'s `since_id`) are not
    /// sent.
    Delivery { recipient: String, known: i64, skip_to: i64 },
}

fn is_final(kind: EventKind) -> bool {
    matches!(kind, EventKind::ExecutionSucceeded | EventKind::ExecutionFailed | EventKind::ExecutionCancelled)
}

impl Framing {
    /// The frame for `e`, or `None` when it is not to be sent.
    fn frame(&self, tenant: &TenantName, e: &EventRecord) -> Option<String> {
        let view = EventView::from(e.clone());
        match self {
            Framing::Ours { .. } => serde_json::to_string(&EventFrame {
                kind: "event",
                tenant_id: tenant.to_string(),
                execution_id: e.execution_id.to_string(),
                event: view,
            })
            .ok(),
            Framing::Delivery { recipient, skip_to, .. } => {
                if e.id <= *skip_to {
                    return None;
                }
                let mut payload = serde_json::to_value(&view).ok()?;
                if let Value::Object(m) = &mut payload {
                    m.insert("execution_id".into(), Value::String(e.execution_id.to_string()));
                }
                let payload = base64::engine::general_purpose::STANDARD.encode(payload.to_string());
                Some(
                    serde_json::json!({
                        "type": "push",
                        "protocol_version": PROTOCOL_VERSION,
                        "id": e.id,
                        "kind": "execution_event",
                        "recipient": recipient,
                        "tenant_id": tenant.as_str(),
                        "payload_b64": payload,
                    })
                    .to_string(),
                )
            }
        }
    }

    /// The frame for a piece of output: our sockets only.
    fn output_frame(&self, tenant: &TenantName, piece: &OutputRecord) -> Option<String> {
        let Framing::Ours { .. } = self else { return None };
        serde_json::to_string(&OutputFrame {
            kind: "output",
            tenant_id: tenant.to_string(),
            execution_id: piece.execution_id.to_string(),
            output_seq: piece.id,
            task_name: piece.task_id.clone(),
            attempt: piece.attempt,
            stdout: piece.stdout.clone(),
            stderr: piece.stderr.clone(),
            truncated: piece.truncated,
            ended: piece.ended,
            created_at: piece.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, false),
        })
        .ok()
    }

    fn ends_after(&self, e: &EventRecord) -> bool {
        matches!(self, Framing::Ours { until_final: true }) && is_final(e.kind)
    }

    /// What the client sent, for the delivery protocol: `Err` with the close code and reason
    /// for a frame it must not send.
    fn client_frame(&mut self, text: &str) -> Result<(), (u16, &'static str)> {
        let Framing::Delivery { skip_to, .. } = self else { return Ok(()) };
        let frame: Value = serde_json::from_str(text).map_err(|_| (4400, "malformed frame"))?;
        let version = frame.get("protocol_version").and_then(Value::as_i64).ok_or((4400, "malformed frame"))?;
        if version != PROTOCOL_VERSION {
            return Err((4426, "unsupported protocol_version"));
        }
        match frame.get("type").and_then(Value::as_str) {
            Some("hello") => match frame.get("since_id") {
                None | Some(Value::Null) => Ok(()),
                Some(v) => {
                    *skip_to = v.as_i64().ok_or((4400, "malformed frame"))?.max(*skip_to);
                    Ok(())
                }
            },
            Some("ack") => frame.get("id").and_then(Value::as_i64).map(drop).ok_or((4400, "malformed frame")),
            _ => Err((4400, "malformed frame")),
        }
    }

    fn welcome(&self) -> Option<String> {
        match self {
            Framing::Ours { .. } => None,
            Framing::Delivery { known, .. } => Some(
                serde_json::json!({"type": "welcome", "protocol_version": PROTOCOL_VERSION, "max_known_id": known})
                    .to_string(),
            ),
        }
    }
}

/// The most a client may send in one message: its frames are a few dozen bytes.
const MAX_INBOUND: usize = 16 * 1024;

fn open(upgrade: WebSocketUpgrade, state: &AppState, sub: Subscription, framing: Framing) -> Response {
    let metrics = state.metrics.clone();
    // Small buffers: a socket mostly waits, and a thousand of them must stay cheap. Frames are
    // written out one at a time; what the peer does not take piles up to the cap, then the
    // send fails and the socket ends as a slow consumer.
    upgrade
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_write_buffer_size(1024 * 1024)
        .max_message_size(MAX_INBOUND)
        .max_frame_size(MAX_INBOUND)
        .on_upgrade(move |socket| pump(socket, sub, framing, metrics))
}

/// The close code and reason for a subscription's end.
fn close_for(why: Closed) -> (u16, &'static str) {
    match why {
        Closed::SlowConsumer => (1013, "slow consumer: reconnect with since"),
        Closed::KeyRevoked => (1008, "API key revoked"),
        Closed::KeyExpired => (1008, "API key expired"),
        Closed::Gone => (1008, "tenant or execution deleted"),
        Closed::ShuttingDown => (1001, "server shutting down: reconnect with since"),
        Closed::Unavailable => (1011, "database unavailable: reconnect with since"),
    }
}

async fn pump(mut socket: WebSocket, mut sub: Subscription, mut framing: Framing, metrics: Arc<dyn Metrics>) {
    metrics.socket_opened();
    let end = run(&mut socket, &mut sub, &mut framing, metrics.as_ref()).await;
    if let Some((code, reason)) = end {
        metrics.socket_closed(code);
        let frame = CloseFrame { code, reason: Utf8Bytes::from_static(reason) };
        let _ = tokio::time::timeout(SEND_TIMEOUT, socket.send(Message::Close(Some(frame)))).await;
    } else {
        metrics.socket_closed(1006);
    }
}

/// Runs the socket; returns the close to send, `None` when the peer went away.
async fn run(
    socket: &mut WebSocket,
    sub: &mut Subscription,
    framing: &mut Framing,
    metrics: &dyn Metrics,
) -> Option<(u16, &'static str)> {
    if let Some(welcome) = framing.welcome() {
        send(socket, welcome, metrics).await.ok()?;
    }
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
    let mut awaiting_pong = false;
    let tenant = sub.tenant().clone();
    loop {
        tokio::select! {
            next = sub.next() => match next {
                Next::Event(e) => {
                    if let Err(end) = send_frame(socket, framing.frame(&tenant, &e), metrics).await {
                        return end;
                    }
                    if framing.ends_after(&e) {
                        return Some((1000, "execution finished"));
                    }
                }
                Next::Output(piece) => {
                    if let Err(end) = send_frame(socket, framing.output_frame(&tenant, &piece), metrics).await {
                        return end;
                    }
                }
                Next::Closed(why) => return Some(close_for(why)),
            },
            msg = socket.recv() => match msg {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return None,
                Some(Ok(Message::Pong(_))) => awaiting_pong = false,
                Some(Ok(Message::Text(text))) => {
                    if let Err(close) = framing.client_frame(text.as_str()) {
                        return Some(close);
                    }
                }
                Some(Ok(_)) => {}
            },
            _ = ping.tick() => {
                if awaiting_pong {
                    return None;
                }
                awaiting_pong = true;
                if socket.send(Message::Ping(Default::default())).await.is_err() {
                    return None;
                }
            }
        }
    }
}

enum Slow {
    Gone,
    Stuck,
}

/// Sends `frame`, if there is one; `Err` with how the socket ends if it cannot be sent.
async fn send_frame(
    socket: &mut WebSocket,
    frame: Option<String>,
    metrics: &dyn Metrics,
) -> Result<(), Option<(u16, &'static str)>> {
    let Some(text) = frame else { return Ok(()) };
    match send(socket, text, metrics).await {
        Ok(()) => Ok(()),
        Err(Slow::Gone) => Err(None),
        Err(Slow::Stuck) => Err(Some(close_for(Closed::SlowConsumer))),
    }
}

async fn send(socket: &mut WebSocket, text: String, metrics: &dyn Metrics) -> Result<(), Slow> {
    match tokio::time::timeout(SEND_TIMEOUT, socket.send(Message::Text(text.into()))).await {
        Ok(Ok(())) => {
            metrics.frame_sent();
            Ok(())
        }
        Ok(Err(_)) => Err(Slow::Gone),
        Err(_) => Err(Slow::Stuck),
    }
}

/// `POST /v1/auth/ws-ticket`'s answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TicketAnswer {
    /// Opens one socket (`?token=`), once, within `expires_in_seconds`, with the rights the
    /// key had when it is used.
    pub ticket: String,
    pub expires_in_seconds: u64,
}

/// `POST /v1/auth/ws-ticket`.
#[utoipa::path(post, path = "/v1/auth/ws-ticket", tag = "live", operation_id = "create_ws_ticket",
    responses(
        (status = 200, description = "A single-use ticket for `?token=` on a socket", body = TicketAnswer),
        (status = 401, description = "No valid key", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn ticket(State(state): State<AppState>, caller: Caller) -> Result<axum::Json<TicketAnswer>, ApiError> {
    let issued = state.tickets.issue(&caller.0).await.map_err(|e| ApiError::store(&e))?;
    Ok(axum::Json(TicketAnswer {
        ticket: issued.ticket.expose().to_owned(),
        expires_in_seconds: issued.expires_in_seconds,
    }))
}
