//! Talking to a server: the HTTP calls (which server and key: `context`).

use std::time::Duration;

use cloacina_domain::{Secret, TenantName};
use reqwest::Method;
use serde::Serialize;
use serde_json::Value;

pub use crate::context::{Context, DEFAULT_SERVER, resolve_key};
use crate::exit::CliError;

/// A name as a path segment; anything that would change the path is refused here.
pub fn segment(name: &str) -> Result<&str, CliError> {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.+".contains(&b)) {
        return Err(CliError::Usage(format!("'{name}' is not a valid name")));
    }
    Ok(name)
}

/// Who a key is, as the CLI needs it.
#[derive(Debug, Clone)]
pub struct Me {
    pub is_admin: bool,
    pub tenant: Option<TenantName>,
}

/// Which server a client talks to: its URL, where that came from (for messages), and how
/// long a request may take.
#[derive(Debug, Clone)]
pub struct Server {
    pub url: String,
    pub origin: String,
    pub timeout: Duration,
}

/// An authenticated HTTP client for one server.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    server: String,
    origin: String,
    timeout: Duration,
    /// `None` for a client of the public routes only.
    key: Option<Secret>,
}

/// How many times an idempotent request is sent at most when the server cannot be reached or
/// answers 502, 503 or 504, and the wait before the first retry (doubled for each next one).
const ATTEMPTS: u32 = 4;
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// The longest `Retry-After` honoured between two attempts.
const LONGEST_RETRY_AFTER: Duration = Duration::from_secs(5);

impl Client {
    /// # Errors
    /// [`CliError::Usage`] for a server URL that is not http(s).
    pub fn new(server: Server, key: Secret) -> Result<Self, CliError> {
        Self::build(server, Some(key))
    }

    /// A client that sends no key, for the public routes (`/openapi.json`, `/health`).
    ///
    /// # Errors
    /// As [`Client::new`].
    pub fn public(server: Server) -> Result<Self, CliError> {
        Self::build(server, None)
    }

    fn build(server: Server, key: Option<Secret>) -> Result<Self, CliError> {
        let url = server.url.trim_end_matches('/').to_owned();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(CliError::Usage(format!(
                "server URL must start with http:// or https://: {url} ({})",
                server.origin
            )));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(server.timeout.min(Duration::from_secs(10)))
            .timeout(server.timeout)
            .user_agent(concat!("cloacinactl/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| CliError::Local(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self { http, server: url, origin: server.origin, timeout: server.timeout, key })
    }

    /// The server's URL.
    pub fn url(&self) -> &str {
        &self.server
    }

    /// Where the server's URL came from ("from --server", "the default: …").
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The key requests carry, if any.
    pub(crate) fn key(&self) -> Option<&Secret> {
        self.key.as_ref()
    }

    fn authorised(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.key {
            Some(key) => req.bearer_auth(key.expose()),
            None => req,
        }
    }

    /// Streams the body of `GET path` into `dest`, through a temporary file beside it renamed
    /// once whole (the body's last line must be the export's end line); returns the bytes.
    ///
    /// # Errors
    /// As [`Client::call`]; [`CliError::Local`] when the file cannot be written or the
    /// stream was cut off.
    pub async fn download(&self, path: &str, dest: &std::path::Path) -> Result<u64, CliError> {
        use std::io::Write as _;
        let url = format!("{}{path}", self.server);
        let outcome = self.authorised(self.http.get(&url)).send().await;
        let mut response = match outcome {
            Ok(r) if r.status().is_success() => r,
            Ok(r) => {
                let status = r.status().as_u16();
                let kind = r
                    .headers()
                    .get(reqwest::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                let text = r.text().await.unwrap_or_default();
                return self.answer(Ok((status, Response { kind, text, replayed: false }, None))).map(|_| 0);
            }
            Err(e) => return Err(self.unreachable(&e)),
        };
        let local = |e: std::io::Error| CliError::Local(format!("cannot write {}: {e}", dest.display()));
        let dir = dest.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(local)?;
        let (mut bytes, mut tail) = (0u64, Vec::new());
        while let Some(chunk) = response.chunk().await.map_err(|e| self.unreachable(&e))? {
            tmp.write_all(&chunk).map_err(local)?;
            bytes += chunk.len() as u64;
            tail.extend_from_slice(&chunk);
            let keep = tail.len().saturating_sub(4096);
            tail.drain(..keep);
        }
        let last = String::from_utf8_lossy(&tail);
        if !last.trim_end().rsplit('\n').next().is_some_and(|l| l.starts_with("{\"end\":")) {
            return Err(CliError::Local("the export stream was cut off before its end: nothing was written".into()));
        }
        tmp.persist(dest).map_err(|e| local(e.error))?;
        Ok(bytes)
    }

    /// Sends `file` as the body of `POST path` and returns the JSON answer.
    ///
    /// # Errors
    /// [`CliError::Local`] if the file cannot be read, else as [`Client::call`].
    pub async fn post_file(&self, path: &str, file: &std::path::Path, content_type: &str) -> Result<Value, CliError> {
        let bytes = std::fs::read(file).map_err(|e| CliError::Local(format!("cannot read {}: {e}", file.display())))?;
        let request = self
            .authorised(self.http.post(format!("{}{path}", self.server)))
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(bytes);
        self.send(request).await
    }

    /// Uploads `file` as the multipart field `file` and returns the JSON answer.
    ///
    /// # Errors
    /// [`CliError::Local`] if the file cannot be read, else as [`Client::call`].
    pub async fn upload(&self, path: &str, file: &std::path::Path) -> Result<Value, CliError> {
        let bytes = std::fs::read(file).map_err(|e| CliError::Local(format!("cannot read {}: {e}", file.display())))?;
        let name = file.file_name().map_or_else(|| "package.cloacina".into(), |n| n.to_string_lossy().into_owned());
        let mut form =
            reqwest::multipart::Form::new().part("file", reqwest::multipart::Part::bytes(bytes).file_name(name));
        let sig = crate::commands::signing::signature_path(file);
        if let Ok(signature) = std::fs::read_to_string(&sig) {
            form = form.text("signature", signature);
        }
        let request = self.authorised(self.http.post(format!("{}{path}", self.server))).multipart(form);
        self.send(request).await
    }

    /// Sends one request and returns the JSON answer.
    ///
    /// # Errors
    /// [`CliError::Unreachable`] when no answer came, [`CliError::Api`] for an error answer.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&(impl Serialize + Sync)>,
    ) -> Result<Value, CliError> {
        let url = format!("{}{path}", self.server);
        let mut req = self.authorised(self.http.request(method, &url));
        if let Some(b) = body {
            req = req.json(b);
        }
        self.send(req).await
    }

    /// As [`Client::call`], with extra request headers; also says whether the server answered
    /// with a replay of an earlier request of the same `Idempotency-Key`.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn call_with_headers(
        &self,
        method: Method,
        path: &str,
        body: Option<&(impl Serialize + Sync)>,
        headers: &[(&str, &str)],
    ) -> Result<(Value, bool), CliError> {
        let url = format!("{}{path}", self.server);
        let mut req = self.authorised(self.http.request(method, &url));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        self.send_full(req).await
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<Value, CliError> {
        self.send_full(req).await.map(|(json, _)| json)
    }

    /// Sends `req`, again after a backoff while an idempotent one (by method, or carrying an
    /// `Idempotency-Key`) finds the server unreachable or answering 502/503/504, and reads the
    /// JSON answer.
    async fn send_full(&self, req: reqwest::RequestBuilder) -> Result<(Value, bool), CliError> {
        let built = req.try_clone().and_then(|r| r.build().ok());
        let retryable = built.as_ref().is_some_and(|r| {
            matches!(r.method().as_str(), "GET" | "HEAD" | "PUT" | "DELETE" | "OPTIONS")
                || r.headers().contains_key("idempotency-key")
        });
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 1;
        let mut req = req;
        loop {
            let again = if retryable && attempt < ATTEMPTS { req.try_clone() } else { None };
            let outcome = self.send_once(req).await;
            let wait = match (&outcome, &again) {
                // A server that took the request and said nothing is not asked again: the
                // timeout bounds the whole command.
                (Err(e), Some(_)) if !e.is_timeout() => backoff,
                (Ok((502..=504, _, retry_after)), Some(_)) => {
                    retry_after.map_or(backoff, |d| d.min(LONGEST_RETRY_AFTER))
                }
                _ => return self.answer(outcome),
            };
            tokio::time::sleep(wait).await;
            backoff *= 2;
            attempt += 1;
            req = again.unwrap_or_else(|| unreachable!("retried only with a copy"));
        }
    }

    async fn send_once(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<(u16, Response, Option<Duration>), reqwest::Error> {
        let response = req.send().await?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let kind = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let replayed = response.headers().get("idempotent-replayed").is_some_and(|v| v.as_bytes() == b"true");
        let text = response.text().await?;
        Ok((status, Response { kind, text, replayed }, retry_after))
    }

    fn answer(
        &self,
        outcome: Result<(u16, Response, Option<Duration>), reqwest::Error>,
    ) -> Result<(Value, bool), CliError> {
        let (status, response, retry_after) = match outcome {
            Ok(answered) => answered,
            Err(e) => return Err(self.unreachable(&e)),
        };
        let json = if response.text.trim().is_empty() {
            Value::Null
        } else {
            match serde_json::from_str::<Value>(&response.text) {
                Ok(v) if (200..300).contains(&status) || v.get("error").is_some_and(Value::is_string) => v,
                _ => return Err(self.foreign(status, &response)),
            }
        };
        if (200..300).contains(&status) {
            return Ok((json, response.replayed));
        }
        let status = reqwest::StatusCode::from_u16(status).unwrap_or(reqwest::StatusCode::INTERNAL_SERVER_ERROR);
        let field = |k: &str| json.get(k).and_then(Value::as_str).map(str::to_owned);
        let mut message = field("error").unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned());
        if let Some(f) = field("field").filter(|f| !message.contains(f.as_str())) {
            message = format!("{f}: {message}");
        }
        if let Some(wait) = retry_after.filter(|_| matches!(status.as_u16(), 429 | 503)) {
            message =
                format!("{message}; try again in {}", humantime::format_duration(wait.max(Duration::from_secs(1))));
        }
        Err(CliError::Api {
            status: status.as_u16(),
            code: field("code").unwrap_or_else(|| "http_error".into()),
            message,
        })
    }

    fn unreachable(&self, e: &reqwest::Error) -> CliError {
        let cause = if e.is_timeout() {
            format!("no answer within {} (--request-timeout)", humantime::format_duration(self.timeout))
        } else if e.is_connect() {
            format!("{}; is a server running there? `cloacinactl serve` starts one", root_cause(e))
        } else {
            root_cause(e)
        };
        CliError::Unreachable { server: self.server.clone(), origin: self.origin.clone(), cause }
    }

    fn foreign(&self, status: u16, response: &Response) -> CliError {
        let what = if response.kind.is_empty() {
            "a body without a content type".to_owned()
        } else {
            format!("a {} body", response.kind.split(';').next().unwrap_or_default().trim())
        };
        CliError::Foreign { server: self.server.clone(), origin: self.origin.clone(), status, what }
    }

    /// Reads the list route `path` page after page, 1,000 rows at a time, with `query`
    /// (`&status=…`, or empty) added, handing each page's rows to `take` until a page comes
    /// back short or `take` answers `false`.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn pages(
        &self,
        path: &str,
        query: &str,
        mut take: impl FnMut(Vec<Value>) -> bool,
    ) -> Result<(), CliError> {
        const PAGE: usize = 1000;
        let mut offset = 0;
        loop {
            let page =
                self.call(Method::GET, &format!("{path}?limit={PAGE}&offset={offset}{query}"), None::<&()>).await?;
            let rows = crate::output::items(&page);
            let last = rows.len() < PAGE;
            offset += rows.len();
            if !take(rows) || last {
                return Ok(());
            }
        }
    }

    /// `GET /v1/auth/whoami`.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn whoami(&self) -> Result<Me, CliError> {
        let v = self.call(Method::GET, "/v1/auth/whoami", None::<&()>).await?;
        let tenant = v.get("tenant_id").and_then(Value::as_str).and_then(|t| TenantName::parse(t).ok());
        Ok(Me { is_admin: v.get("is_admin").and_then(Value::as_bool).unwrap_or(false), tenant })
    }
}

/// An answer as it came: its content type and body.
struct Response {
    kind: String,
    text: String,
    /// `Idempotent-Replayed: true`.
    replayed: bool,
}

/// The innermost cause of a transport error ("Connection refused"), without the URL's query.
fn root_cause(e: &reqwest::Error) -> String {
    let mut source: &dyn std::error::Error = e;
    while let Some(next) = source.source() {
        source = next;
    }
    source.to_string()
}
