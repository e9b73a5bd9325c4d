//! One error shape for every failure: `{"error": "...", "code": "...", "field": "..."?}`.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cloacina_domain::Denied;
use cloacina_domain::ports::StoreError;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// An error answer. Internal causes are logged where they happen and never sent.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
    retry_after: Option<u64>,
}

#[derive(Serialize)]
struct Envelope<'a> {
    error: &'a str,
    code: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), field: None, retry_after: None }
    }

    /// 400 naming the field at fault.
    pub fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        Self { field: Some(field.to_owned()), ..Self::new(StatusCode::BAD_REQUEST, "invalid_field", message) }
    }

    /// The same error, naming `field` as the one at fault.
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message)
    }

    pub fn forbidden(denied: &Denied) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", denied.to_string())
    }

    pub fn too_many_requests(retry_after_secs: u64) -> Self {
        Self {
            retry_after: Some(retry_after_secs.max(1)),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "too many failed authentication attempts")
        }
    }

    /// 503 for an unreachable database, 500 otherwise; the cause goes to the log only.
    pub fn store(e: &StoreError) -> Self {
        match e {
            StoreError::Unavailable(cause) => {
                tracing::warn!(%cause, "database unavailable");
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "database_unavailable", "the database is unavailable")
            }
            // The domain's checks passed, yet a rule of the schema refused the write (a race, or
            // a rule an operator added). The kind is said; the constraint and SQL stay in the log.
            StoreError::Constraint(c) => {
                tracing::warn!(constraint = ?c.name, kind = c.kind.as_str(), "a schema rule refused a write");
                Self::new(
                    StatusCode::CONFLICT,
                    "conflict",
                    format!("the request conflicts with the stored data (a {} rule refused it)", c.kind.as_str()),
                )
            }
            StoreError::Unsupported(message) => {
                Self::new(StatusCode::BAD_REQUEST, "unsupported_by_backend", message.clone())
            }
            StoreError::Unexpected(cause) => Self::internal(cause),
        }
    }

    /// 500; `cause` is logged, never sent.
    pub fn internal(cause: &str) -> Self {
        tracing::error!(%cause, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal server error")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Envelope { error: &self.message, code: self.code, field: self.field.as_deref() };
        let mut response = (self.status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Bearer realm="cloacina", error="invalid_token""#),
            );
        }
        if let Some(secs) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            headers.insert(header::RETRY_AFTER, v);
        }
        response
    }
}

/// A JSON body whose every failure is an [`ApiError`] naming the field at fault. The body is
/// read as JSON whatever `Content-Type` says, as `curl -d` users expect.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        parse_json(&body_bytes(req, state).await?).map(JsonBody)
    }
}

/// As [`JsonBody`], for a body that may be left out: an empty (or all-whitespace) body is
/// `T::default()`.
#[derive(Debug, Clone, Copy, Default)]
pub struct OptionalJsonBody<T>(pub T);

impl<S, T> FromRequest<S> for OptionalJsonBody<T>
where
    T: DeserializeOwned + Default,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = body_bytes(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(T::default()));
        }
        parse_json(&bytes).map(OptionalJsonBody)
    }
}

/// The body, up to the route's limit; over it, `413` with the envelope.
async fn body_bytes<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "the request body is too large")
        } else {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", "the request body could not be read")
        }
    })
}

/// Parses a JSON body, naming the field at fault when the JSON is well-formed but wrong.
///
/// Every body is a JSON object: an array (which serde would read field by field) or any other
/// value is refused before it is deserialised.
///
/// # Errors
/// 400 `invalid_json` for malformed JSON or a body that is not an object, 400
/// `invalid_field` (with `field`) otherwise.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let malformed =
        |message: &str| ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", format!("malformed JSON: {message}"));
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => {}
        Some(_) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_json",
                "the request body must be a JSON object",
            ));
        }
        None => return Err(malformed("the body is empty")),
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let message = strip_position(&inner.to_string());
        if inner.is_syntax() || inner.is_eof() {
            malformed(&message)
        } else if path.is_empty() || path == "." {
            // A missing or unknown top-level field: serde names it between backticks.
            let field = message.split('`').nth(1).map(str::to_owned);
            ApiError { field, ..ApiError::new(StatusCode::BAD_REQUEST, "invalid_field", message) }
        } else {
            ApiError::invalid_field(&path, format!("{path}: {message}"))
        }
    })?;
    de.end().map_err(|e| malformed(&strip_position(&e.to_string())))?;
    Ok(value)
}

/// serde_json appends " at line L column C"; clients need the field, not the position.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}
