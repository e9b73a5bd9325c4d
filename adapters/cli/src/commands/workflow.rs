//! `workflow list|inspect|pause|resume|run`; `inspect` lists the workflow's triggers too.

use reqwest::Method;
use serde_json::{Map, Value, json};

use super::execution::finished;
use super::follow::{Follow, follow};
use crate::args::{OutputFormat, WorkflowCommand};
use crate::client::{Context, segment};
use crate::exit::CliError;
use crate::output::{Table, emit, items, text};

/// Runs a `workflow` command in the tenant in force (`--tenant`, the profile's, the key's own).
///
/// # Errors
/// The server's refusal or a transport failure, as [`CliError`].
pub async fn run(ctx: &Context, cmd: WorkflowCommand) -> Result<(), CliError> {
    let client = ctx.client()?;
    let format = ctx.globals.format();
    let tenant = ctx.tenant(&client).await?;
    let base = format!("/v1/tenants/{tenant}/workflows");
    match cmd {
        WorkflowCommand::List => {
            let listed = client.call(Method::GET, &base, None::<&()>).await?;
            let workflows = items(&listed);
            emit(
                format,
                &listed,
                || {
                    let mut t = Table::new(&["NAME", "PACKAGE", "VERSION", "TASKS", "PAUSED", "AGE"]);
                    for w in &workflows {
                        let tasks = w["tasks"].as_array().map_or(0, Vec::len);
                        t.row(vec![
                            text(w, "name"),
                            text(w, "package_name"),
                            text(w, "version"),
                            tasks.to_string(),
                            text(w, "paused"),
                            crate::output::age(w, "updated_at"),
                        ]);
                    }
                    t.render_or("no workflows: `cloacinactl package upload FILE` adds some")
                },
                || workflows.iter().map(|w| text(w, "name")).collect(),
            )
        }
        WorkflowCommand::Inspect { name } => {
            let mut w = client.call(Method::GET, &format!("{base}/{}", segment(&name)?), None::<&()>).await?;
            let triggers = super::trigger::of_workflow(&client, tenant.as_str(), &name).await?;
            if let Value::Object(m) = &mut w {
                m.insert("triggers".into(), Value::Array(triggers));
            }
            emit(format, &w, || detail(&w), || vec![text(&w, "name")])
        }
        WorkflowCommand::Pause { name } => set_paused(ctx, &client, &base, &name, "pause").await,
        WorkflowCommand::Resume { name } => set_paused(ctx, &client, &base, &name, "resume").await,
        WorkflowCommand::Run { name, context, wait, watch, wait_timeout, idempotency_key } => {
            let context = match context {
                Some(c) => read_json_object("--context", &c)?,
                None => Value::Object(Map::new()),
            };
            let headers: Vec<(&str, &str)> =
                idempotency_key.as_deref().map(|k| ("Idempotency-Key", k)).into_iter().collect();
            let path = format!("{base}/{}/execute", segment(&name)?);
            let (accepted, replayed) =
                client.call_with_headers(Method::POST, &path, Some(&json!({ "context": context })), &headers).await?;
            let id = text(&accepted, "execution_id");
            // A replay started nothing: it is the execution the same key started before.
            let accepted_as = if replayed {
                format!("execution {id} of workflow '{name}' was already started with this idempotency key: replayed")
            } else {
                format!("execution {id} of workflow '{name}' accepted")
            };
            if wait_timeout > 0 && !(wait || watch) {
                return Err(CliError::Usage("--wait-timeout needs --wait or --watch".into()));
            }
            if !(wait || watch) {
                return emit(
                    format,
                    &accepted,
                    || format!("{accepted_as} ({})", text(&accepted, "status")),
                    || vec![id.clone()],
                );
            }
            let executions = format!("/v1/tenants/{tenant}/executions");
            let timeout = (wait_timeout > 0).then(|| std::time::Duration::from_secs(wait_timeout));
            let how = match format {
                OutputFormat::Table => Follow::for_people(),
                OutputFormat::Json if watch => Follow::Json,
                _ => Follow::Quiet,
            };
            if matches!(how, Follow::Lines | Follow::Board) {
                crate::output::line(&accepted_as)?;
            }
            let done = follow(&client, &executions, &id, timeout, how).await?;
            // The board and NDJSON have said how it ended.
            if matches!(how, Follow::Lines | Follow::Quiet) {
                emit(format, &done, || format!("execution {id} {}", text(&done, "status")), || vec![id.clone()])?;
            }
            finished(&done)
        }
    }
}

/// A JSON-object flag (`--context`, `--event`): the object itself, `@FILE` holding one, or
/// `@-` to read it from stdin.
///
/// # Errors
/// [`CliError::Usage`] naming the flag when the file cannot be read or holds no object.
pub fn read_json_object(flag: &str, arg: &str) -> Result<Value, CliError> {
    let (text, from) = match arg.strip_prefix('@') {
        Some("-") => {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                .map_err(|e| CliError::Local(format!("{flag}: cannot read stdin: {e}")))?;
            (text, "stdin: ".to_owned())
        }
        Some(path) => (
            std::fs::read_to_string(path).map_err(|e| CliError::Local(format!("{flag}: cannot read {path}: {e}")))?,
            format!("{path}: "),
        ),
        None => (arg.to_owned(), String::new()),
    };
    match serde_json::from_str::<Value>(&text) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(CliError::Usage(format!("{flag}: {from}must be a JSON object"))),
        Err(e) => Err(CliError::Usage(format!("{flag}: {from}not JSON: {e}"))),
    }
}

async fn set_paused(
    ctx: &Context,
    client: &crate::client::Client,
    base: &str,
    name: &str,
    verb: &str,
) -> Result<(), CliError> {
    let w = client.call(Method::POST, &format!("{base}/{}/{verb}", segment(name)?), None::<&()>).await?;
    let state = if w["paused"] == Value::Bool(true) { "paused" } else { "running" };
    emit(ctx.globals.format(), &w, || format!("workflow '{name}' is {state}"), || vec![text(&w, "name")])
}

fn detail(w: &Value) -> String {
    let triggers: Vec<String> = w["triggers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            let when = if t["paused"] == Value::Bool(true) {
                "paused".to_owned()
            } else {
                format!("next {}", text(t, "next_run_at"))
            };
            format!("{} ({}, {}): {when}", text(t, "name"), text(t, "cron_expression"), text(t, "timezone"))
        })
        .collect();
    [
        format!("workflow     {}", text(w, "name")),
        format!("tenant       {}", text(w, "tenant_id")),
        format!("package      {} {}", text(w, "package_name"), text(w, "version")),
        format!("description  {}", text(w, "description")),
        format!("paused       {}", text(w, "paused")),
        format!(
            "triggers     {}",
            if triggers.is_empty() { "none".to_owned() } else { triggers.join("\n             ") }
        ),
        format!("updated      {}", text(w, "updated_at")),
        format!("tasks\n{}", crate::dag::draw_json(&w["task_graph"], "  ")),
    ]
    .join("\n")
}
