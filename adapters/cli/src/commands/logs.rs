//! `execution logs ID [TASK] [-f] [--failed]`: a task's captured output, or every task's, every
//! attempt; `-f` follows it as the server stores it (about every second) until the execution
//! has finished and every attempt's end is in.

use std::collections::HashMap;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use super::execution::is_terminal;
use crate::args::OutputFormat;
use crate::client::{Client, segment};
use crate::exit::CliError;
use crate::output::{emit, text};
use crate::socket::Received;

/// How often `-f` asks.
const FOLLOW_EVERY: Duration = Duration::from_millis(500);

/// Runs `execution logs`.
///
/// # Errors
/// The server's refusal or a transport failure, as [`CliError`].
pub async fn run(
    client: &Client,
    base: &str,
    id: &str,
    task: Option<String>,
    follow: bool,
    failed: bool,
    format: OutputFormat,
) -> Result<(), CliError> {
    if follow {
        return follow_logs(client, base, id, task).await;
    }
    let Some(task) = task else {
        let names = task_names(client, base, id, failed).await?;
        let mut all = Vec::with_capacity(names.len());
        for name in &names {
            all.push(logs_of(client, base, id, name).await?);
        }
        let body = json!({ "execution_id": id, "tasks": all });
        return emit(
            format,
            &body,
            || {
                if all.is_empty() {
                    return if failed { "no task failed".to_owned() } else { "the execution has no tasks".to_owned() };
                }
                all.iter().map(render).collect::<Vec<_>>().join("\n")
            },
            || all.iter().map(|l| text(l, "task_id")).collect(),
        );
    };
    let logs = logs_of(client, base, id, &task).await?;
    emit(
        format,
        &logs,
        || render(&logs),
        || logs["attempts"].as_array().into_iter().flatten().map(|a| text(a, "attempt")).collect(),
    )
}

/// One task's logs as the route answers them.
async fn logs_of(client: &Client, base: &str, id: &str, task: &str) -> Result<Value, CliError> {
    client.call(Method::GET, &format!("{base}/{id}/tasks/{}/logs", segment(task)?), None::<&()>).await
}

/// The execution's tasks in plan order, only the failed ones if `failed`.
async fn task_names(client: &Client, base: &str, id: &str, failed: bool) -> Result<Vec<String>, CliError> {
    let listed = client.call(Method::GET, &format!("{base}/{id}/tasks"), None::<&()>).await?;
    Ok(listed["tasks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| !failed || t["status"] == "Failed")
        .map(|t| text(t, "task_name"))
        .collect())
}

/// One task's attempts, as text.
fn render(logs: &Value) -> String {
    let task = text(logs, "task_id");
    let attempts = logs["attempts"].as_array().cloned().unwrap_or_default();
    if attempts.is_empty() {
        return format!("task '{task}' has not run yet");
    }
    attempts
        .iter()
        .map(|a| {
            let cut = if a["truncated"] == Value::Bool(true) { " (truncated)" } else { "" };
            // An older server says nothing of an attempt's end: it kept ended ones only.
            let so_far = if a["ended"] == Value::Bool(false) { ", so far" } else { "" };
            format!(
                "== {task}, attempt {} ({}{so_far}){cut}\n-- stdout\n{}-- stderr\n{}",
                text(a, "attempt"),
                text(a, "at"),
                with_newline(a["stdout"].as_str().unwrap_or("")),
                with_newline(a["stderr"].as_str().unwrap_or("")),
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
        .trim_end()
        .to_owned()
}

fn with_newline(s: &str) -> String {
    if s.is_empty() || s.ends_with('\n') { s.to_owned() } else { format!("{s}\n") }
}

/// What `-f` has printed of one attempt: bytes of stdout and of stderr, and (with several
/// tasks, whose lines are prefixed) a line begun and not yet ended on each.
#[derive(Default)]
struct Printed {
    out: usize,
    err: usize,
    out_line: String,
    err_line: String,
}

/// Prints each attempt's new output as it comes: stdout to stdout, stderr to stderr; with
/// every task followed, each line starts with its task's id. Ends once the execution has
/// finished and each attempt's end is in. The output comes over the execution's live socket;
/// where none can be had, or it is lost, the logs route is polled from what was printed.
async fn follow_logs(client: &Client, base: &str, id: &str, task: Option<String>) -> Result<(), CliError> {
    let mut printed: HashMap<(String, u64), Printed> = HashMap::new();
    if over_socket(client, base, id, task.as_deref(), &mut printed).await? {
        return Ok(());
    }
    poll_logs(client, base, id, task, printed).await
}

/// Prints a piece of one attempt's output, `out` and `err` being what is new.
fn print_piece(
    printed: &mut HashMap<(String, u64), Printed>,
    prefixed: bool,
    (name, attempt): (&str, u64),
    (out, err): (&str, &str),
    ended: bool,
) -> Result<(), CliError> {
    let seen = printed.entry((name.to_owned(), attempt)).or_default();
    seen.out += out.len();
    seen.err += err.len();
    if prefixed {
        lines(name, out, &mut seen.out_line, ended, false)?;
        lines(name, err, &mut seen.err_line, ended, true)
    } else {
        crate::output::write(out.as_bytes())?;
        if !err.is_empty() {
            crate::output::note(err.trim_end_matches('\n'));
        }
        Ok(())
    }
}

/// Follows over `/v1/ws/tenants/{t}/executions/{id}?output_since=0`; whether it saw the
/// execution to its end (else polling goes on from what was printed).
async fn over_socket(
    client: &Client,
    base: &str,
    id: &str,
    task: Option<&str>,
    printed: &mut HashMap<(String, u64), Printed>,
) -> Result<bool, CliError> {
    let Some(tenant_path) = base.strip_prefix("/v1") else { return Ok(false) };
    let Ok(mut socket) = client.socket(&format!("/v1/ws{tenant_path}/{id}?output_since=0")).await else {
        return Ok(false);
    };
    loop {
        match socket.next().await {
            Received::Output(piece) => {
                let name = piece["task_name"].as_str().unwrap_or_default();
                if task.is_some_and(|t| t != name) {
                    continue;
                }
                let attempt = piece["attempt"].as_u64().unwrap_or(0);
                let (out, err) = (piece["stdout"].as_str().unwrap_or(""), piece["stderr"].as_str().unwrap_or(""));
                print_piece(printed, task.is_none(), (name, attempt), (out, err), piece["ended"] == true)?;
            }
            Received::Event(_) => {}
            // The final event: every attempt's end was kept with it or before it.
            Received::Closed(1000) => return Ok(true),
            Received::Closed(_) | Received::Lost => return Ok(false),
        }
    }
}

/// Polls the logs route, printing what is past `printed`, until the execution has finished
/// and each attempt's end is in.
async fn poll_logs(
    client: &Client,
    base: &str,
    id: &str,
    task: Option<String>,
    mut printed: HashMap<(String, u64), Printed>,
) -> Result<(), CliError> {
    let prefixed = task.is_none();
    loop {
        let execution = client.call(Method::GET, &format!("{base}/{id}"), None::<&()>).await?;
        let done = is_terminal(execution["status"].as_str().unwrap_or(""));
        let names = match &task {
            Some(t) => vec![t.clone()],
            None => task_names(client, base, id, false).await?,
        };
        let mut all_ended = true;
        for name in &names {
            let logs = logs_of(client, base, id, name).await?;
            for a in logs["attempts"].as_array().into_iter().flatten() {
                let ended = a["ended"] != Value::Bool(false);
                all_ended &= ended;
                let attempt = a["attempt"].as_u64().unwrap_or(0);
                let seen = printed.entry((name.clone(), attempt)).or_default();
                let (out, err) = (a["stdout"].as_str().unwrap_or(""), a["stderr"].as_str().unwrap_or(""));
                let new_out = out.get(seen.out..).unwrap_or("");
                let new_err = err.get(seen.err..).unwrap_or("");
                print_piece(&mut printed, prefixed, (name, attempt), (new_out, new_err), ended)?;
            }
        }
        if done && all_ended {
            return Ok(());
        }
        tokio::time::sleep(FOLLOW_EVERY).await;
    }
}

/// Prints `new` a whole line at a time, each prefixed with `task`, keeping a begun line in
/// `begun` until it ends (or the attempt has).
fn lines(task: &str, new: &str, begun: &mut String, ended: bool, to_stderr: bool) -> Result<(), CliError> {
    begun.push_str(new);
    let mut rest = begun.as_str();
    let mut out = String::new();
    while let Some((line, after)) = rest.split_once('\n') {
        out.push_str(&format!("{task} | {line}\n"));
        rest = after;
    }
    if ended && !rest.is_empty() {
        out.push_str(&format!("{task} | {rest}\n"));
        rest = "";
    }
    *begun = rest.to_owned();
    if out.is_empty() {
        return Ok(());
    }
    if to_stderr {
        crate::output::note(out.trim_end_matches('\n'));
        Ok(())
    } else {
        crate::output::write(out.as_bytes())
    }
}
