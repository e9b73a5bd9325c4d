//! `execution list|status|tasks|events|watch|cancel|retry`, and the waiting that
//! `workflow run --wait` shares with `watch` (`logs` in [`super::logs`]).

use reqwest::Method;
use serde_json::Value;

use super::follow::{Follow, follow};
use super::ids;
use crate::args::{ExecutionCommand, OutputFormat};
use crate::client::{Client, Context, segment};
use crate::exit::CliError;
use crate::output::{Table, age, emit, items, text};

/// Runs an `execution` command in the tenant in force.
///
/// # Errors
/// The server's refusal or a transport failure, as [`CliError`].
pub async fn run(ctx: &Context, cmd: ExecutionCommand) -> Result<(), CliError> {
    let client = ctx.client()?;
    let format = ctx.globals.format();
    let tenant = ctx.tenant(&client).await?;
    let base = format!("/v1/tenants/{tenant}/executions");
    match cmd {
        ExecutionCommand::List { status, workflow, trigger, limit, offset, all } => {
            let mut query = String::new();
            if let Some(s) = status {
                query.push_str(&format!("&status={}", segment(&s)?));
            }
            if let Some(w) = workflow {
                query.push_str(&format!("&workflow={}", segment(&w)?));
            }
            if let Some(t) = trigger {
                query.push_str(&format!("&trigger={}", segment(&t)?));
            }
            let page = if all {
                every_page(&client, &base, &query).await?
            } else {
                client.call(Method::GET, &format!("{base}?limit={limit}&offset={offset}{query}"), None::<&()>).await?
            };
            let rows = items(&page);
            emit(
                format,
                &page,
                || {
                    let mut t =
                        Table::new(&["ID", "WORKFLOW", "VERSION", "STATUS", "AGE", "DURATION"]).states_in("STATUS");
                    for e in &rows {
                        t.row(vec![
                            text(e, "execution_id"),
                            text(e, "workflow_name"),
                            text(e, "package_version"),
                            text(e, "status"),
                            age(e, "created_at"),
                            duration(e),
                        ]);
                    }
                    if rows.is_empty() {
                        return if query.is_empty() { "no executions".into() } else { "no executions match".into() };
                    }
                    format!("{}\n{} of {} shown", t.render(), rows.len(), text(&page, "total"))
                },
                || rows.iter().map(|e| text(e, "execution_id")).collect(),
            )
        }
        ExecutionCommand::Status { id, latest, workflow } => {
            let id = match id {
                Some(id) if !latest => ids::execution(&client, &base, &id).await?,
                _ => {
                    let only = workflow.as_deref().map(segment).transpose()?;
                    let query = only.map(|w| format!("&workflow={w}")).unwrap_or_default();
                    let newest = client.call(Method::GET, &format!("{base}?limit=1{query}"), None::<&()>).await?;
                    ids::latest(&newest, only)?
                }
            };
            let e = client.call(Method::GET, &format!("{base}/{id}"), None::<&()>).await?;
            emit(format, &e, || detail(&e), || vec![text(&e, "execution_id")])
        }
        ExecutionCommand::Tasks { id } => {
            let id = ids::execution(&client, &base, &id).await?;
            let listed = client.call(Method::GET, &format!("{base}/{id}/tasks"), None::<&()>).await?;
            let tasks = listed["tasks"].as_array().cloned().unwrap_or_default();
            emit(
                format,
                &listed,
                || {
                    let mut t =
                        Table::new(&["TASK", "STATUS", "ATTEMPTS", "STARTED", "FINISHED", "ERROR"]).states_in("STATUS");
                    for task in &tasks {
                        t.row(vec![
                            text(task, "task_name"),
                            text(task, "status"),
                            format!("{}/{}", text(task, "attempt"), text(task, "max_attempts")),
                            text(task, "started_at"),
                            text(task, "completed_at"),
                            text(task, "last_error"),
                        ]);
                    }
                    t.render()
                },
                || tasks.iter().map(|t| text(t, "task_name")).collect(),
            )
        }
        ExecutionCommand::Events { id, since } => {
            let id = ids::execution(&client, &base, &id).await?;
            let path = format!("{base}/{id}/events?since={since}&limit=1000");
            let listed = client.call(Method::GET, &path, None::<&()>).await?;
            let events = listed["events"].as_array().cloned().unwrap_or_default();
            emit(
                format,
                &listed,
                || events.iter().map(event_line).collect::<Vec<_>>().join("\n"),
                || events.iter().map(|e| text(e, "id")).collect(),
            )
        }
        ExecutionCommand::Logs { id, task, follow, failed } => {
            let id = ids::execution(&client, &base, &id).await?;
            super::logs::run(&client, &base, &id, task, follow, failed, format).await
        }
        ExecutionCommand::Watch { id } => {
            let id = ids::execution(&client, &base, &id).await?;
            let how = if matches!(format, OutputFormat::Json) { Follow::Json } else { Follow::for_people() };
            let e = follow(&client, &base, &id, None, how).await?;
            finished(&e)
        }
        ExecutionCommand::Cancel { id } => {
            let id = ids::execution(&client, &base, &id).await?;
            let e = client.call(Method::POST, &format!("{base}/{id}/cancel"), None::<&()>).await?;
            emit(
                format,
                &e,
                || format!("execution {} is {}", text(&e, "execution_id"), text(&e, "status")),
                || vec![text(&e, "execution_id")],
            )
        }
        ExecutionCommand::Retry { id } => {
            let id = ids::execution(&client, &base, &id).await?;
            let e = client.call(Method::POST, &format!("{base}/{id}/retry"), None::<&()>).await?;
            emit(
                format,
                &e,
                || format!("execution {} is {} again", text(&e, "execution_id"), text(&e, "status")),
                || vec![text(&e, "execution_id")],
            )
        }
    }
}

/// Every execution the `query` (`&status=…`) matches, as one list answer.
async fn every_page(client: &Client, base: &str, query: &str) -> Result<Value, CliError> {
    let mut all = Vec::new();
    client
        .pages(base, query, |rows| {
            all.extend(rows);
            true
        })
        .await?;
    Ok(serde_json::json!({ "total": all.len(), "items": all }))
}

fn duration(e: &Value) -> String {
    match e["duration_ms"].as_i64() {
        Some(ms) if ms >= 1000 => format!("{:.1}s", ms as f64 / 1000.0),
        Some(ms) => format!("{ms}ms"),
        None => "-".into(),
    }
}

pub(super) fn event_line(e: &Value) -> String {
    let task = e["task_name"].as_str().map(|t| format!(" {t}")).unwrap_or_default();
    let detail = match &e["detail"] {
        Value::Object(m) if !m.is_empty() => format!(" {}", Value::Object(m.clone())),
        _ => String::new(),
    };
    format!("{:>6}  {}  {}{task}{detail}", text(e, "id"), text(e, "created_at"), text(e, "event_type"))
}

fn detail(e: &Value) -> String {
    [
        format!("execution  {}", text(e, "execution_id")),
        format!("tenant     {}", text(e, "tenant_id")),
        format!("workflow   {} ({})", text(e, "workflow_name"), text(e, "package_version")),
        format!("status     {}", text(e, "status")),
        format!("origin     {}", text(e, "origin")),
        format!("created    {}", text(e, "created_at")),
        format!("started    {}", text(e, "started_at")),
        format!("finished   {}", text(e, "completed_at")),
        format!("duration   {}", duration(e)),
        format!("context    {}", e["context"]),
        format!("error      {}", text(e, "error")),
    ]
    .join("\n")
}

pub(super) fn is_terminal(status: &str) -> bool {
    matches!(status, "Completed" | "Failed" | "Cancelled")
}

/// Exit 0 if the execution succeeded; otherwise say how it ended and exit 6.
///
/// # Errors
/// [`CliError::ExecutionFailed`] unless it succeeded.
pub fn finished(e: &Value) -> Result<(), CliError> {
    match e["status"].as_str() {
        Some("Completed") => Ok(()),
        _ => Err(CliError::ExecutionFailed(format!(
            "execution {} {}{}",
            text(e, "execution_id"),
            text(e, "status"),
            e["error"].as_str().map(|m| format!(": {m}")).unwrap_or_default()
        ))),
    }
}
