//! `secret create|rotate|list|get|delete`: a tenant's secrets. Values come from a file, from
//! stdin, or from a prompt that does not echo, never from the command line (where `ps` would
//! show them); nothing this command prints holds one.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Read};
use std::path::Path;

use reqwest::Method;
use serde_json::{Value, json};

use crate::args::SecretCommand;
use crate::client::{Context, segment};
use crate::exit::CliError;
use crate::output::{Table, emit, items, text};

/// Runs a `secret` command in the tenant in force.
///
/// # Errors
/// Unreadable values, the server's refusal or a transport failure, as [`CliError`].
pub async fn run(ctx: &Context, cmd: SecretCommand) -> Result<(), CliError> {
    let client = ctx.client()?;
    let format = ctx.globals.format();
    let tenant = ctx.tenant(&client).await?;
    let base = format!("/v1/tenants/{tenant}/secrets");
    let shown = |v: &Value| {
        let fields: Vec<&str> = v["field_names"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        format!("secret '{}' of tenant {tenant}: fields {}", text(v, "name"), fields.join(", "))
    };
    match cmd {
        SecretCommand::Create { name, from_file, field } => {
            let fields = read_fields(from_file.as_deref(), &field)?;
            let body = json!({"name": name, "fields": fields});
            let made = client.call(Method::POST, &base, Some(&body)).await?;
            emit(format, &made, || format!("stored {}", shown(&made)), || vec![text(&made, "name")])
        }
        SecretCommand::Rotate { name, from_file, field } => {
            let fields = read_fields(from_file.as_deref(), &field)?;
            let body = json!({"fields": fields});
            let set = client.call(Method::PUT, &format!("{base}/{}", segment(&name)?), Some(&body)).await?;
            emit(format, &set, || format!("rotated {}", shown(&set)), || vec![text(&set, "name")])
        }
        SecretCommand::List => {
            let listed = client.call(Method::GET, &base, None::<&()>).await?;
            let rows = items(&listed);
            emit(
                format,
                &listed,
                || {
                    if rows.is_empty() {
                        return format!("no secrets in tenant {tenant}");
                    }
                    let mut t = Table::new(&["NAME", "FIELDS", "UPDATED"]);
                    for r in &rows {
                        let fields: Vec<&str> =
                            r["field_names"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
                        t.row(vec![text(r, "name"), fields.join(", "), text(r, "updated_at")]);
                    }
                    t.render()
                },
                || rows.iter().map(|r| text(r, "name")).collect(),
            )
        }
        SecretCommand::Get { name } => {
            let got = client.call(Method::GET, &format!("{base}/{}", segment(&name)?), None::<&()>).await?;
            emit(format, &got, || shown(&got), || vec![text(&got, "name")])
        }
        SecretCommand::Delete { name } => {
            let gone = client.call(Method::DELETE, &format!("{base}/{}", segment(&name)?), None::<&()>).await?;
            emit(format, &gone, || format!("deleted secret '{name}' of tenant {tenant}"), || vec![name.clone()])
        }
    }
}

/// The fields: a JSON object from a file or stdin, or each `--field` asked for.
fn read_fields(from: Option<&Path>, asked: &[String]) -> Result<BTreeMap<String, String>, CliError> {
    if let Some(path) = from {
        let text = if path == Path::new("-") {
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s).map_err(|e| CliError::Local(format!("cannot read stdin: {e}")))?;
            s
        } else {
            std::fs::read_to_string(path)
                .map_err(|e| CliError::Local(format!("cannot read {}: {e}", path.display())))?
        };
        // The error never quotes the text: it holds the values.
        return serde_json::from_str::<BTreeMap<String, String>>(&text).map_err(|e| {
            CliError::Usage(format!(
                "--from-file: a JSON object of field name → string value is expected (line {}, column {})",
                e.line(),
                e.column()
            ))
        });
    }
    if asked.is_empty() {
        return Err(CliError::Usage(
            "give the values with --from-file FILE (a JSON object), --from-file - (stdin), or --field NAME to be asked"
                .into(),
        ));
    }
    let mut fields = BTreeMap::new();
    let stdin = std::io::stdin();
    let on_terminal = stdin.is_terminal();
    let mut lines = stdin.lock().lines();
    for name in asked {
        let value = if on_terminal {
            rpassword::prompt_password(format!("{name}: "))
                .map_err(|e| CliError::Local(format!("cannot read {name}: {e}")))?
        } else {
            // Not a terminal: one value a line, in the order of --field.
            lines
                .next()
                .transpose()
                .map_err(|e| CliError::Local(format!("cannot read stdin: {e}")))?
                .ok_or_else(|| CliError::Usage(format!("stdin ended before the value of {name}")))?
        };
        fields.insert(name.clone(), value);
    }
    Ok(fields)
}
