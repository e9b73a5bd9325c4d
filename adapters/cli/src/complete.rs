//! Completions that ask the server: workflow, trigger and execution names, and the fixed
//! values of string flags. They are read with the profile and the environment in force (the
//! shell completes before any flag on the line is parsed), within two seconds; when the
//! server cannot say, nothing is offered.
//!
//! A shell registers them with `source <(COMPLETE=bash cloacinactl)` (zsh, fish, elvish and
//! powershell likewise); `cloacinactl completions SHELL` still prints the static script.

use std::ffi::OsStr;
use std::time::Duration;

use clap::CommandFactory;
use clap_complete::engine::{ArgValueCandidates, ArgValueCompleter, CompletionCandidate};
use reqwest::Method;

use crate::args::Globals;
use crate::client::Context;
use crate::output::{items, text};

/// How long a completion waits for the server.
const PATIENCE: Duration = Duration::from_secs(2);

/// Answers the shell and exits when it is asking (`COMPLETE` set); otherwise returns.
pub fn answer_the_shell_if_asked() {
    clap_complete::CompleteEnv::with_factory(|| crate::args::help::with_globals_shown(crate::Cli::command()))
        .complete();
}

/// The tenant's workflow names.
pub fn workflows() -> ArgValueCompleter {
    ArgValueCompleter::new(|current: &OsStr| listed("workflows", "name", "description", current))
}

/// The tenant's trigger names.
pub fn triggers() -> ArgValueCompleter {
    ArgValueCompleter::new(|current: &OsStr| listed("triggers", "name", "workflow_name", current))
}

/// The tenant's 50 newest executions' ids, each with its workflow and status.
pub fn executions() -> ArgValueCompleter {
    ArgValueCompleter::new(|current: &OsStr| listed("executions?limit=50", "execution_id", "status", current))
}

/// The execution statuses `execution list --status` takes.
pub fn statuses() -> ArgValueCandidates {
    ArgValueCandidates::new(|| {
        ["Pending", "Running", "Completed", "Failed", "Cancelled"].into_iter().map(CompletionCandidate::new).collect()
    })
}

/// The `field` of each row of the tenant's `list` that starts with `current`, described by
/// its `about` field.
fn listed(list: &str, field: &str, about: &str, current: &OsStr) -> Vec<CompletionCandidate> {
    let Some(current) = current.to_str() else { return Vec::new() };
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return Vec::new() };
    runtime
        .block_on(async {
            let ctx = Context::load(from_environment()).ok()?;
            let client = ctx.client().ok()?;
            let tenant = tokio::time::timeout(PATIENCE, ctx.tenant(&client)).await.ok()?.ok()?;
            let path = format!("/v1/tenants/{tenant}/{list}");
            let rows = tokio::time::timeout(PATIENCE, client.call(Method::GET, &path, None::<&()>)).await.ok()?.ok()?;
            Some(
                items(&rows)
                    .iter()
                    .filter(|r| text(r, field).starts_with(current))
                    .map(|r| CompletionCandidate::new(text(r, field)).help(Some(text(r, about).into())))
                    .collect(),
            )
        })
        .unwrap_or_default()
}

/// The globals as the environment gives them (an empty variable counts as unset).
fn from_environment() -> Globals {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    Globals {
        server: var("CLOACINA_SERVER"),
        api_key: var("CLOACINA_API_KEY"),
        tenant: var("CLOACINA_TENANT"),
        profile: var("CLOACINA_PROFILE"),
        home: var("CLOACINA_HOME").map(Into::into),
        request_timeout: Some(PATIENCE),
        ..Globals::default()
    }
}
