//! `trigger list|inspect|pause|resume|fire`, and the trigger lines of `workflow inspect`.

use reqwest::Method;
use serde_json::{Map, Value, json};

use super::workflow::read_json_object;
use crate::args::TriggerCommand;
use crate::client::{Client, Context, segment};
use crate::exit::CliError;
use crate::output::{Table, emit, items, text};

/// The most triggers one list call asks for.
const PAGE: u32 = 1000;

/// Runs a `trigger` command in the tenant in force.
///
/// # Errors
/// The server's refusal or a transport failure, as [`CliError`].
pub async fn run(ctx: &Context, cmd: TriggerCommand) -> Result<(), CliError> {
    let client = ctx.client()?;
    let format = ctx.globals.format();
    let tenant = ctx.tenant(&client).await?;
    let base = format!("/v1/tenants/{tenant}/triggers");
    match cmd {
        TriggerCommand::List { limit, offset } => {
            let page = client.call(Method::GET, &format!("{base}?limit={limit}&offset={offset}"), None::<&()>).await?;
            let rows = items(&page);
            emit(
                format,
                &page,
                || {
                    let mut t = Table::new(&["NAME", "WORKFLOW", "CRON", "TIMEZONE", "PAUSED", "NEXT", "LAST"]);
                    for r in &rows {
                        t.row(vec![
                            text(r, "name"),
                            text(r, "workflow_name"),
                            text(r, "cron_expression"),
                            text(r, "timezone"),
                            text(r, "paused"),
                            text(r, "next_run_at"),
                            text(r, "last_run_at"),
                        ]);
                    }
                    if rows.is_empty() {
                        return "no triggers".into();
                    }
                    format!("{}\n{} of {} shown", t.render(), rows.len(), text(&page, "total"))
                },
                || rows.iter().map(|r| text(r, "name")).collect(),
            )
        }
        TriggerCommand::Inspect { name } => {
            let d = client.call(Method::GET, &format!("{base}/{}", segment(&name)?), None::<&()>).await?;
            emit(format, &d, || detail(&d), || vec![text(&d["schedule"], "name")])
        }
        TriggerCommand::Pause { name } => set_paused(ctx, &client, &base, &name, "pause").await,
        TriggerCommand::Resume { name } => set_paused(ctx, &client, &base, &name, "resume").await,
        TriggerCommand::Fire { name, event } => {
            let body = match event {
                Some(e) => json!({ "event": read_json_object("--event", &e)? }),
                None => Value::Object(Map::new()),
            };
            let path = format!("{base}/{}/fire", segment(&name)?);
            let fired = client.call(Method::POST, &path, Some(&body)).await?;
            let ids: Vec<String> =
                fired["executions"].as_array().into_iter().flatten().map(|e| text(e, "execution_id")).collect();
            emit(format, &fired, || format!("trigger '{name}' fired: execution {}", ids.join(", ")), || ids.clone())
        }
    }
}

async fn set_paused(ctx: &Context, client: &Client, base: &str, name: &str, verb: &str) -> Result<(), CliError> {
    let t = client.call(Method::POST, &format!("{base}/{}/{verb}", segment(name)?), None::<&()>).await?;
    emit(
        ctx.globals.format(),
        &t,
        || match t["next_run_at"].as_str() {
            Some(next) => format!("trigger '{name}' is {}; next fire {next}", text(&t, "status")),
            None => format!("trigger '{name}' is {}", text(&t, "status")),
        },
        || vec![text(&t, "name")],
    )
}

fn detail(d: &Value) -> String {
    let s = &d["schedule"];
    let c = &s["counts"];
    let counts = ["fired", "caught_up", "skipped_overlap", "skipped_paused", "skipped_catchup", "missed"]
        .iter()
        .map(|k| format!("{k} {}", text(c, k)))
        .collect::<Vec<_>>()
        .join(", ");
    let next: Vec<&str> = d["next_fire_times"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    let mut lines = vec![
        format!("trigger    {}", text(s, "name")),
        format!("workflow   {} ({})", text(s, "workflow_name"), text(s, "package_name")),
        format!("cron       {} ({})", text(s, "cron_expression"), text(s, "timezone")),
        format!(
            "policies   catchup {} (window {}s), overlap {}",
            text(s, "catchup"),
            text(s, "catchup_window_seconds"),
            text(s, "overlap")
        ),
        format!("context    {}", s["context"]),
        format!("paused     {}", text(s, "paused")),
        format!("last fire  {}", text(s, "last_run_at")),
        format!("counts     {counts}"),
        format!("next       {}", if next.is_empty() { "-".to_owned() } else { next.join(", ") }),
    ];
    let recent = d["recent_executions"].as_array().cloned().unwrap_or_default();
    if recent.is_empty() {
        lines.push("recent     none".into());
    } else {
        let mut t = Table::new(&["EXECUTION", "SCHEDULED", "STATUS", "STARTED", "FINISHED"]).states_in("STATUS");
        for e in &recent {
            t.row(vec![
                text(e, "execution_id"),
                text(e, "scheduled_time"),
                text(e, "status"),
                text(e, "started_at"),
                text(e, "completed_at"),
            ]);
        }
        lines.push(format!("recent\n{}", t.render()));
    }
    lines.join("\n")
}

/// The tenant's triggers of one workflow (name, schedule, paused, next fire), for
/// `workflow inspect`.
///
/// # Errors
/// The server's refusal or a transport failure.
pub async fn of_workflow(client: &Client, tenant: &str, workflow: &str) -> Result<Vec<Value>, CliError> {
    let mut found = Vec::new();
    let mut offset = 0u64;
    loop {
        let path = format!("/v1/tenants/{tenant}/triggers?limit={PAGE}&offset={offset}");
        let page = client.call(Method::GET, &path, None::<&()>).await?;
        let rows = items(&page);
        let n = rows.len() as u64;
        found.extend(rows.into_iter().filter(|t| t["workflow_name"].as_str() == Some(workflow)).map(|t| {
            json!({
                "name": t["name"],
                "cron_expression": t["cron_expression"],
                "timezone": t["timezone"],
                "paused": t["paused"],
                "next_run_at": t["next_run_at"],
            })
        }));
        offset += n;
        if n < u64::from(PAGE) || offset >= page["total"].as_u64().unwrap_or(0) {
            return Ok(found);
        }
    }
}
