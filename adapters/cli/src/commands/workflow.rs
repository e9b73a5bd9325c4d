//! `workflow list`.

use reqwest::Method;
use serde_json::Value;

use crate::args::WorkflowCommand;
use crate::client::Context;
use crate::exit::CliError;
use crate::output::{Table, emit, text};

/// Runs a `workflow` command in the tenant in force (`--tenant`, the profile's, the key's own).
///
/// # Errors
/// The server's refusal or a transport failure, as [`CliError`].
pub async fn run(ctx: &Context, cmd: WorkflowCommand) -> Result<(), CliError> {
    let client = ctx.client()?;
    let format = ctx.globals.format();
    let tenant = ctx.tenant(&client).await?;
    match cmd {
        WorkflowCommand::List => {
            let listed = client.call(Method::GET, &format!("/v1/tenants/{tenant}/workflows"), None::<&()>).await?;
            let workflows = listed.get("workflows").and_then(Value::as_array).cloned().unwrap_or_default();
            emit(
                format,
                &listed,
                || {
                    let mut t = Table::new(&["NAME", "PACKAGE", "VERSION", "TASKS", "PAUSED", "UPDATED"]);
                    for w in &workflows {
                        let tasks = w["tasks"].as_array().map_or(0, Vec::len);
                        t.row(vec![
                            text(w, "name"),
                            text(w, "package_name"),
                            text(w, "version"),
                            tasks.to_string(),
                            text(w, "paused"),
                            text(w, "updated_at"),
                        ]);
                    }
                    t.render()
                },
                || workflows.iter().map(|w| text(w, "name")).collect(),
            )
        }
    }
}
