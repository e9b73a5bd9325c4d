//! `auth whoami|status` and `version`: who the key in force is, where it talks to, and which
//! releases the client and the server run.

use reqwest::Method;
use serde_json::{Value, json};

use crate::args::AuthCommand;
use crate::client::{Client, Context};
use crate::exit::CliError;
use crate::output::{emit, note, text};

/// The client's release.
pub const CLIENT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Runs an `auth` command.
///
/// # Errors
/// The server's refusal or a transport failure, as [`CliError`].
pub async fn run(ctx: &Context, cmd: AuthCommand) -> Result<(), CliError> {
    let client = ctx.client()?;
    let format = ctx.globals.format();
    let me = client.call(Method::GET, "/v1/auth/whoami", None::<&()>).await?;
    match cmd {
        AuthCommand::Whoami => emit(format, &me, || identity(&me).join("\n"), || vec![text(&me, "key_id")]),
        AuthCommand::Status => {
            let server = server_version(&client).await.ok();
            let status = json!({
                "server": client.url(),
                "server_from": client.origin(),
                "server_version": server,
                "client_version": CLIENT_VERSION,
                "key": me,
            });
            emit(
                format,
                &status,
                || {
                    let mut lines = vec![
                        format!("server   {} ({})", client.url(), client.origin()),
                        format!("version  server {}, client {CLIENT_VERSION}", server.as_deref().unwrap_or("unknown")),
                    ];
                    lines.extend(identity(&me));
                    lines.join("\n")
                },
                || vec![text(&me, "key_id")],
            )
        }
    }
}

/// `version`: the client's release, and the server's when it answers.
///
/// # Errors
/// [`CliError::Closed`] or a bad server URL; an unreachable server is a note, not an error.
pub async fn version(ctx: &Context) -> Result<(), CliError> {
    let client = ctx.public_client()?;
    let server = match server_version(&client).await {
        Ok(v) => Some(v),
        Err(e) => {
            note(format!("server: {e}"));
            None
        }
    };
    let value = json!({
        "client": CLIENT_VERSION,
        "server": server.as_ref().map(|v| json!({"url": client.url(), "version": v})),
    });
    emit(
        ctx.globals.format(),
        &value,
        || {
            let mut lines = vec![format!("client  {CLIENT_VERSION}")];
            if let Some(v) = &server {
                lines.push(format!("server  {v} ({})", client.url()));
            }
            lines.join("\n")
        },
        || vec![CLIENT_VERSION.to_owned()],
    )
}

/// The server's release, from its public OpenAPI document's `info.version`.
async fn server_version(client: &Client) -> Result<String, CliError> {
    let doc = client.call(Method::GET, "/openapi.json", None::<&()>).await?;
    doc["info"]["version"].as_str().map(str::to_owned).ok_or_else(|| CliError::Foreign {
        server: client.url().to_owned(),
        origin: client.origin().to_owned(),
        status: 200,
        what: "an OpenAPI document without info.version".into(),
    })
}

fn identity(me: &Value) -> Vec<String> {
    let tenant =
        if me["is_admin"] == Value::Bool(true) { "(all: admin key)".to_owned() } else { text(me, "tenant_id") };
    let mut lines = vec![
        format!("key      {} ({})", text(me, "name"), text(me, "key_id")),
        format!("tenant   {tenant}"),
        format!("role     {}", text(me, "role")),
    ];
    if me.get("expires_at").is_some_and(Value::is_string) {
        lines.push(format!("expires  {}", text(me, "expires_at")));
    }
    lines
}
