//! `execution list|status|tasks|events|watch|cancel|retry`, and the waiting that
//! `workflow run --wait` shares with `watch` (`logs` in [`super::logs`]).

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::Value;

use super::ids;
use crate::args::{ExecutionCommand, OutputFormat};
use crate::client::{Client, Context, segment};
use crate::exit::CliError;
use crate::output::{Table, age, emit, items, text};

/// How often `watch` and `--wait` ask.
const POLL: Duration = Duration::from_millis(300);

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
            let how = if matches!(format, OutputFormat::Json) { Follow::Json } else { Follow::Lines };
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

fn event_line(e: &Value) -> String {
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

/// How long `follow` keeps trying through a server it cannot reach (a restart, a rolling
/// deploy), unless its own timeout comes first.
const OUTAGE: Duration = Duration::from_secs(300);

/// How `follow` prints the events it sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Follow {
    /// Prints nothing; returns the finished execution.
    Quiet,
    /// One line per event.
    Lines,
    /// One JSON object per event, then the finished execution: NDJSON.
    Json,
}

/// Follows an execution until it finishes, printing its events as `how` says; returns the
/// finished execution. Through a server that cannot be reached or answers 429, 502, 503 or 504
/// (a restart, a rolling deploy) it keeps trying, for up to five minutes, and goes on from the
/// last event it printed.
///
/// # Errors
/// [`CliError::WaitTimedOut`] once `timeout` has passed; the error of a request that fails
/// otherwise, or that still fails after the outage allowance.
pub async fn follow(
    client: &Client,
    base: &str,
    id: &str,
    timeout: Option<Duration>,
    how: Follow,
) -> Result<Value, CliError> {
    let started = Instant::now();
    let mut since = 0i64;
    let mut outage: Option<Instant> = None;
    let mut backoff = POLL;
    loop {
        let step = follow_step(client, base, id, &mut since, how).await;
        match step {
            Ok(Some(e)) => return Ok(e),
            Ok(None) => {
                if outage.take().is_some() {
                    crate::output::note("the server answers again; following on");
                }
                backoff = POLL;
            }
            Err(e) if transient(&e) && outage.is_none_or(|at| at.elapsed() < OUTAGE) => {
                if outage.is_none() {
                    crate::output::note(format!("{e}; trying again"));
                    outage = Some(Instant::now());
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
            Err(e) => return Err(e),
        }
        if let Some(t) = timeout.filter(|t| started.elapsed() >= *t) {
            return Err(CliError::WaitTimedOut(format!(
                "execution {id} has not finished after {}s (--wait-timeout {})",
                started.elapsed().as_secs(),
                t.as_secs()
            )));
        }
        tokio::time::sleep(backoff).await;
    }
}

/// Whether a failed request is worth trying again through an outage.
fn transient(e: &CliError) -> bool {
    match e {
        CliError::Unreachable { .. } => true,
        CliError::Api { status, .. } => matches!(status, 429 | 502 | 503 | 504),
        _ => false,
    }
}

/// One look: prints the events after `since` (moving it on), then reads the execution;
/// returns it once it has finished, with the events written with its final status.
async fn follow_step(
    client: &Client,
    base: &str,
    id: &str,
    since: &mut i64,
    how: Follow,
) -> Result<Option<Value>, CliError> {
    print_events(client, base, id, since, how).await?;
    let e = client.call(Method::GET, &format!("{base}/{id}"), None::<&()>).await?;
    if !is_terminal(e["status"].as_str().unwrap_or("")) {
        return Ok(None);
    }
    print_events(client, base, id, since, how).await?;
    if how == Follow::Json {
        crate::output::line(&e)?;
    }
    Ok(Some(e))
}

async fn print_events(client: &Client, base: &str, id: &str, since: &mut i64, how: Follow) -> Result<(), CliError> {
    if how == Follow::Quiet {
        return Ok(());
    }
    loop {
        let page =
            client.call(Method::GET, &format!("{base}/{id}/events?since={since}&limit=1000"), None::<&()>).await?;
        let events = page["events"].as_array().cloned().unwrap_or_default();
        for e in &events {
            match how {
                Follow::Json => crate::output::line(e)?,
                _ => crate::output::line(event_line(e))?,
            }
        }
        *since = page["next"].as_i64().unwrap_or(*since);
        if events.len() < 1000 {
            return Ok(());
        }
    }
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
