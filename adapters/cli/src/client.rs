//! Talking to a server: which server, which key, which tenant, and the HTTP calls.

use std::time::Duration;

use cloacina_domain::{Secret, TenantName};
use reqwest::Method;
use serde::Serialize;
use serde_json::Value;

use crate::args::Globals;
use crate::config::{ConfigFile, Profile};
use crate::exit::CliError;
use crate::home::Home;

/// The server used when neither a flag, the environment nor a profile names one.
pub const DEFAULT_SERVER: &str = "http://localhost:8080";

/// What a client command knows before it calls the server.
#[derive(Debug)]
pub struct Context {
    pub globals: Globals,
    pub home: Home,
    pub config: ConfigFile,
}

impl Context {
    /// Reads the config file from the home folder.
    ///
    /// # Errors
    /// [`CliError::Local`] if there is no home folder or the file does not parse.
    pub fn load(globals: Globals) -> Result<Self, CliError> {
        let home = Home::resolve(globals.home.as_deref()).map_err(CliError::Local)?;
        let config = ConfigFile::load(&home.config_file()).map_err(CliError::Local)?;
        Ok(Self { globals, home, config })
    }

    /// The profile in force: `--profile`/`CLOACINA_PROFILE`, else `default_profile`.
    ///
    /// # Errors
    /// [`CliError::Usage`] if a profile is named that the file does not hold.
    pub fn profile(&self) -> Result<Option<&Profile>, CliError> {
        let name = self.globals.profile.as_deref().or(self.config.settings.default_profile.as_deref());
        match name {
            None => Ok(None),
            Some(n) => self.config.settings.profiles.get(n).map(Some).ok_or_else(|| {
                CliError::Usage(format!("no profile named '{n}' in {}", self.home.config_file().display()))
            }),
        }
    }

    /// A client for the server in force, with the key in force.
    ///
    /// # Errors
    /// [`CliError::Usage`] when no key is given anywhere or a key reference cannot be read.
    pub fn client(&self) -> Result<Client, CliError> {
        let profile = self.profile()?;
        let server = self
            .globals
            .server
            .clone()
            .or_else(|| profile.and_then(|p| p.server.clone()))
            .unwrap_or_else(|| DEFAULT_SERVER.to_owned());
        let reference =
            self.globals.api_key.clone().or_else(|| profile.and_then(|p| p.api_key.clone())).ok_or_else(|| {
                CliError::Usage("no API key: pass --api-key, set CLOACINA_API_KEY, or use a profile".into())
            })?;
        Client::new(&server, resolve_key(&reference)?)
    }

    /// The tenant named by `--tenant`/`CLOACINA_TENANT` or the profile, if any.
    ///
    /// # Errors
    /// [`CliError::Usage`] for a name that is not a valid tenant name.
    pub fn explicit_tenant(&self) -> Result<Option<TenantName>, CliError> {
        let name = match &self.globals.tenant {
            Some(t) => Some(t.clone()),
            None => self.profile()?.and_then(|p| p.tenant.clone()),
        };
        name.map(|n| TenantName::parse(&n).map_err(|e| CliError::Usage(format!("--tenant '{n}': {e}")))).transpose()
    }

    /// The tenant a command acts on: the explicit one, else the key's own, else `public`.
    ///
    /// # Errors
    /// As [`Context::explicit_tenant`], or the whoami call's error.
    pub async fn tenant(&self, client: &Client) -> Result<TenantName, CliError> {
        if let Some(t) = self.explicit_tenant()? {
            return Ok(t);
        }
        let me = client.whoami().await?;
        Ok(me.tenant.unwrap_or_else(TenantName::public))
    }
}

/// A name as a path segment; anything that would change the path is refused here.
pub fn segment(name: &str) -> Result<&str, CliError> {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.+".contains(&b)) {
        return Err(CliError::Usage(format!("'{name}' is not a valid name")));
    }
    Ok(name)
}

/// Reads a key reference: `env:VAR`, `file:PATH` (surrounding whitespace trimmed) or the key.
///
/// # Errors
/// [`CliError::Usage`] naming the variable or file that cannot be read, never the key.
pub fn resolve_key(reference: &str) -> Result<Secret, CliError> {
    let key = if let Some(var) = reference.strip_prefix("env:") {
        std::env::var(var)
            .map_err(|_| CliError::Usage(format!("environment variable {var} (from env:{var}) is not set")))?
    } else if let Some(path) = reference.strip_prefix("file:") {
        std::fs::read_to_string(path).map_err(|e| CliError::Usage(format!("cannot read key file {path}: {e}")))?
    } else {
        reference.to_owned()
    };
    let key = key.trim();
    if key.is_empty() {
        return Err(CliError::Usage("the API key is empty".into()));
    }
    Ok(Secret::new(key))
}

/// Who a key is, as the CLI needs it.
#[derive(Debug, Clone)]
pub struct Me {
    pub is_admin: bool,
    pub tenant: Option<TenantName>,
}

/// An authenticated HTTP client for one server.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    server: String,
    key: Secret,
}

impl Client {
    /// # Errors
    /// [`CliError::Usage`] for a server URL that is not http(s).
    pub fn new(server: &str, key: Secret) -> Result<Self, CliError> {
        let server = server.trim_end_matches('/').to_owned();
        if !(server.starts_with("http://") || server.starts_with("https://")) {
            return Err(CliError::Usage(format!("server URL must start with http:// or https://: {server}")));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(120))
            .user_agent(concat!("cloacinactl/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| CliError::Local(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self { http, server, key })
    }

    /// Uploads `file` as the multipart field `file` and returns the JSON answer.
    ///
    /// # Errors
    /// [`CliError::Local`] if the file cannot be read, else as [`Client::call`].
    pub async fn upload(&self, path: &str, file: &std::path::Path) -> Result<Value, CliError> {
        let bytes = std::fs::read(file).map_err(|e| CliError::Local(format!("cannot read {}: {e}", file.display())))?;
        let name = file.file_name().map_or_else(|| "package.cloacina".into(), |n| n.to_string_lossy().into_owned());
        let form = reqwest::multipart::Form::new().part("file", reqwest::multipart::Part::bytes(bytes).file_name(name));
        let request = self.http.post(format!("{}{path}", self.server)).bearer_auth(self.key.expose()).multipart(form);
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
        let mut req = self.http.request(method, &url).bearer_auth(self.key.expose());
        if let Some(b) = body {
            req = req.json(b);
        }
        self.send(req).await
    }

    /// As [`Client::call`], with extra request headers.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn call_with_headers(
        &self,
        method: Method,
        path: &str,
        body: Option<&(impl Serialize + Sync)>,
        headers: &[(&str, &str)],
    ) -> Result<Value, CliError> {
        let url = format!("{}{path}", self.server);
        let mut req = self.http.request(method, &url).bearer_auth(self.key.expose());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        self.send(req).await
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<Value, CliError> {
        let response = req
            .send()
            .await
            .map_err(|e| CliError::Unreachable { server: self.server.clone(), cause: root_cause(&e) })?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| CliError::Unreachable { server: self.server.clone(), cause: root_cause(&e) })?;
        let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(json);
        }
        let field = |k: &str| json.get(k).and_then(Value::as_str).map(str::to_owned);
        let mut message = field("error").unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned());
        if let Some(f) = field("field").filter(|f| !message.contains(f.as_str())) {
            message = format!("{f}: {message}");
        }
        Err(CliError::Api {
            status: status.as_u16(),
            code: field("code").unwrap_or_else(|| "http_error".into()),
            message,
        })
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

/// The innermost cause of a transport error ("Connection refused"), without the URL's query.
fn root_cause(e: &reqwest::Error) -> String {
    let mut source: &dyn std::error::Error = e;
    while let Some(next) = source.source() {
        source = next;
    }
    source.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_references_read_the_environment_or_a_file() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("k");
        std::fs::write(&file, "clk_from_file\n").unwrap();
        assert_eq!(resolve_key(&format!("file:{}", file.display())).unwrap().expose(), "clk_from_file");
        assert_eq!(resolve_key("clk_literal").unwrap().expose(), "clk_literal");
        let err = resolve_key("env:CLOACINA_TEST_SURELY_UNSET_VAR").unwrap_err().to_string();
        assert!(err.contains("CLOACINA_TEST_SURELY_UNSET_VAR"));
        assert!(resolve_key("file:/nonexistent/k").is_err());
    }
}
