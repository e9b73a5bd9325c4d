//! `key create|list|revoke`.

use reqwest::Method;
use serde_json::{Value, json};

use crate::args::{KeyCommand, OutputFormat};
use crate::client::{Client, Context};
use crate::exit::CliError;
use crate::output::{Table, age, emit, items, text};

/// Runs a `key` command.
///
/// # Errors
/// The server's refusal or a transport failure, as [`CliError`].
pub async fn run(ctx: &Context, cmd: KeyCommand) -> Result<(), CliError> {
    let client = ctx.client()?;
    let format = ctx.globals.format();
    match cmd {
        KeyCommand::Create { name, admin, role, expires_at } => {
            let mut body = json!({ "name": name });
            if let Some(e) = expires_at {
                body["expires_at"] = json!(e);
            }
            let created = if admin {
                if ctx.globals.tenant.is_some() {
                    return Err(CliError::Usage("--admin makes a key of no tenant: drop --tenant".into()));
                }
                client.call(Method::POST, "/v1/auth/keys", Some(&body)).await?
            } else {
                let tenant = ctx.tenant(&client).await?;
                if let Some(r) = role {
                    body["role"] = json!(r);
                }
                client.call(Method::POST, &format!("/v1/tenants/{tenant}/keys"), Some(&body)).await?
            };
            print_created(format, &created)
        }
        KeyCommand::List => {
            let path = scope_path(ctx, &client).await?;
            let listed = client.call(Method::GET, &path, None::<&()>).await?;
            let keys = items(&listed);
            emit(
                format,
                &listed,
                || {
                    let mut t =
                        Table::new(&["ID", "NAME", "PERMISSIONS", "TENANT", "AGE", "STATUS"]).states_in("STATUS");
                    for k in &keys {
                        let status = if k["revoked"].as_bool() == Some(true) { "revoked" } else { "active" };
                        let tenant =
                            if k["is_admin"].as_bool() == Some(true) { "(all)".into() } else { text(k, "tenant_id") };
                        t.row(vec![
                            text(k, "id"),
                            text(k, "name"),
                            text(k, "permissions"),
                            tenant,
                            age(k, "created_at"),
                            status.into(),
                        ]);
                    }
                    t.render_or("no keys")
                },
                || keys.iter().map(|k| text(k, "id")).collect(),
            )
        }
        KeyCommand::Revoke { key } => {
            let scope = scope_path(ctx, &client).await?;
            let id = if uuid::Uuid::try_parse(&key).is_ok() {
                key
            } else {
                let listed = client.call(Method::GET, &scope, None::<&()>).await?;
                let active: Vec<Value> =
                    items(&listed).into_iter().filter(|k| k["revoked"].as_bool() != Some(true)).collect();
                super::ids::by_id_or_name(&active, &key, "key")?
            };
            let path = format!("{scope}/{}", crate::client::segment(&id)?);
            let revoked = client.call(Method::DELETE, &path, None::<&()>).await?;
            emit(format, &revoked, || format!("revoked key {id}"), || vec![id.clone()])
        }
    }
}

/// Where `list` and `revoke` act: one tenant's keys when a tenant is given or the key is a
/// tenant key, else (an admin key) every key.
async fn scope_path(ctx: &Context, client: &Client) -> Result<String, CliError> {
    if let Some(t) = ctx.explicit_tenant()? {
        return Ok(format!("/v1/tenants/{t}/keys"));
    }
    let me = client.whoami().await?;
    Ok(match (me.is_admin, me.tenant) {
        (false, Some(t)) => format!("/v1/tenants/{t}/keys"),
        _ => "/v1/auth/keys".to_owned(),
    })
}

fn print_created(format: OutputFormat, created: &Value) -> Result<(), CliError> {
    if format == OutputFormat::Table {
        // The key alone on stdout, so `KEY=$(cloacinactl key create …)` captures it.
        crate::output::line(text(created, "key"))?;
        crate::output::note(format!(
            "created key '{}' (id {}, permissions {}): shown exactly once, store it now",
            text(created, "name"),
            text(created, "id"),
            text(created, "permissions")
        ));
        return Ok(());
    }
    // `-o id` prints the key itself: the one thing of a new key worth capturing, and its only
    // copy (the id is in `key list`).
    emit(format, created, String::new, || vec![text(created, "key")])
}
