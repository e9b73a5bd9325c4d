//! `tenant create|list|get|update|delete`.

use std::io::IsTerminal;

use reqwest::Method;
use serde_json::{Value, json};

use crate::args::TenantCommand;
use crate::client::{Context, segment};
use crate::exit::CliError;
use crate::output::{Table, emit, items, text};

/// Runs a `tenant` command.
///
/// # Errors
/// The server's refusal, a transport failure, or a declined confirmation, as [`CliError`].
pub async fn run(ctx: &Context, cmd: TenantCommand) -> Result<(), CliError> {
    let client = ctx.client()?;
    let format = ctx.globals.format();
    match cmd {
        TenantCommand::Create { name, description } => {
            let mut body = json!({ "name": name });
            if let Some(d) = description {
                body["description"] = json!(d);
            }
            let created = client.call(Method::POST, "/v1/tenants", Some(&body)).await?;
            emit(
                format,
                &created,
                || {
                    format!(
                        "created tenant '{}' (schema {}, database role {})",
                        text(&created, "name"),
                        text(&created, "schema_name"),
                        text(&created, "username")
                    )
                },
                || vec![text(&created, "name")],
            )
        }
        TenantCommand::List => {
            let listed = client.call(Method::GET, "/v1/tenants", None::<&()>).await?;
            let tenants = items(&listed);
            emit(format, &listed, || table(&tenants), || tenants.iter().map(|t| text(t, "name")).collect())
        }
        TenantCommand::Get { name } => {
            let tenant = client.call(Method::GET, &format!("/v1/tenants/{}", segment(&name)?), None::<&()>).await?;
            emit(format, &tenant, || table(std::slice::from_ref(&tenant)), || vec![text(&tenant, "name")])
        }
        TenantCommand::Update { name, task_network } => {
            let Some(network) = task_network else {
                return Err(CliError::Usage("nothing to change: give --task-network host|none|default".into()));
            };
            let body = json!({ "task_network": if network == "default" { Value::Null } else { json!(network) } });
            let path = format!("/v1/tenants/{}", segment(&name)?);
            let tenant = client.call(Method::PATCH, &path, Some(&body)).await?;
            emit(
                format,
                &tenant,
                || format!("tenant '{name}': tasks get the {} network", network_of(&tenant)),
                || vec![text(&tenant, "name")],
            )
        }
        TenantCommand::Export { name, file } => {
            let bytes = client.download(&format!("/v1/tenants/{}/export", segment(&name)?), &file).await?;
            crate::output::line(format!("exported tenant '{name}' to {} ({bytes} bytes)", file.display()))
        }
        TenantCommand::Import { file, name } => {
            let name = match name {
                Some(n) => n,
                None => exported_name(&file)?,
            };
            let path = format!("/v1/tenants/import?name={}", segment(&name)?);
            let made = client.post_file(&path, &file, "application/x-ndjson").await?;
            emit(
                format,
                &made,
                || {
                    format!(
                        "imported tenant '{name}': {} rows; {} keys were not imported (mint new ones)",
                        text(&made, "rows"),
                        text(&made, "keys_not_imported")
                    )
                },
                || vec![text(&made, "name")],
            )
        }
        TenantCommand::Delete { name, yes } => {
            let path = format!("/v1/tenants/{}", segment(&name)?);
            if !yes {
                confirm(&name)?;
            }
            let removed = client.call(Method::DELETE, &path, None::<&()>).await?;
            emit(
                format,
                &removed,
                || format!("deleted tenant '{name}' ({} active keys revoked)", text(&removed, "revoked_keys")),
                || vec![name.clone()],
            )
        }
    }
}

/// The tenant named in an export's header line.
fn exported_name(file: &std::path::Path) -> Result<String, CliError> {
    use std::io::BufRead as _;
    let f = std::fs::File::open(file).map_err(|e| CliError::Local(format!("cannot read {}: {e}", file.display())))?;
    let mut first = String::new();
    std::io::BufReader::new(f)
        .read_line(&mut first)
        .map_err(|e| CliError::Local(format!("cannot read {}: {e}", file.display())))?;
    let header: Value = serde_json::from_str(&first)
        .map_err(|_| CliError::Usage(format!("{} is not a tenant export", file.display())))?;
    header["tenant"]["name"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| CliError::Usage(format!("{} names no tenant: give --name", file.display())))
}

/// The tenant's task network as a listing shows it: its own, or the servers' default.
fn network_of(tenant: &Value) -> String {
    tenant.get("task_network").and_then(Value::as_str).map_or_else(|| "servers' default".to_owned(), str::to_owned)
}

fn table(tenants: &[Value]) -> String {
    let mut t = Table::new(&["NAME", "SCHEMA", "DB ROLE", "TASK NETWORK", "AGE", "DESCRIPTION"]);
    for tenant in tenants {
        t.row(vec![
            text(tenant, "name"),
            text(tenant, "schema_name"),
            text(tenant, "username"),
            tenant.get("task_network").and_then(Value::as_str).unwrap_or("default").to_owned(),
            crate::output::age(tenant, "created_at"),
            text(tenant, "description"),
        ]);
    }
    t.render_or("no tenants")
}

/// Asks the person at the terminal to type the name; without a terminal, `--yes` is needed.
fn confirm(name: &str) -> Result<(), CliError> {
    if !std::io::stdin().is_terminal() {
        return Err(CliError::Usage(format!(
            "deleting tenant '{name}' drops all its data and revokes its keys: pass --yes to confirm"
        )));
    }
    let answer = crate::output::ask(&format!(
        "Deleting tenant '{name}' drops all its data and revokes its keys. Type its name to confirm: "
    ))
    .unwrap_or_default();
    if answer.trim() == name { Ok(()) } else { Err(CliError::Usage("not confirmed: nothing was deleted".into())) }
}
