//! `package.toml`: its fixed shape (docs/packages.md), parsed and checked.
//!
//! One file past the usual size on purpose: the raw shape serde reads and the checks that
//! turn it into a [`Manifest`] mirror each other field by field, and every error names its
//! field's path; names, limits and the DAG live in their own modules.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use super::dag::{DagError, order};
use super::limits::{RawLimits, TaskLimits, check_limits};
use super::names::{NameError, PackageName, TaskId, WorkflowName};

/// The most workflows a package declares, tasks a workflow has, and triggers it carries.
pub const MAX_WORKFLOWS: usize = 100;
pub const MAX_TASKS: usize = 1000;
pub const MAX_TRIGGERS: usize = 100;
/// The longest a task may run, and the longest delay before a retry.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);
/// The most further attempts a task may have.
pub const MAX_RETRIES: u32 = 100;
/// Defaults of a task.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);
pub const DEFAULT_RETRY_DELAY: Duration = Duration::from_secs(1);
pub const DEFAULT_RETRY_MAX_DELAY: Duration = Duration::from_secs(60);
/// Environment variable names tasks may not set: the runner's own.
pub const RESERVED_ENV_PREFIX: &str = "CLOACINA_";

/// A manifest problem: the field at fault, as a path (`workflow[0].task[2].depends_on[0]`),
/// and what is wrong with it. `others` holds the problems found after it, so that one run of
/// `package validate` reports them all; an answer of the API names the first.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ManifestError {
    pub field: String,
    pub message: String,
    pub others: Vec<ManifestError>,
}

impl ManifestError {
    /// A problem of `field`.
    pub fn new(field: impl Into<String>, message: impl fmt::Display) -> Self {
        Self { field: field.into(), message: message.to_string(), others: Vec::new() }
    }

    /// This problem and the ones found after it, in the order found.
    pub fn all(&self) -> Vec<&ManifestError> {
        std::iter::once(self).chain(&self.others).collect()
    }
}

/// The problems found so far. Checking goes on past each one.
#[derive(Default)]
struct Problems(Vec<ManifestError>);

impl Problems {
    /// `r`'s value, or `None` with its error kept.
    fn take<T>(&mut self, r: Result<T, ManifestError>) -> Option<T> {
        r.map_err(|e| self.0.push(e)).ok()
    }

    fn push(&mut self, field: impl Into<String>, message: impl fmt::Display) {
        self.0.push(ManifestError::new(field, message));
    }

    fn count(&self) -> usize {
        self.0.len()
    }

    /// The first problem with the others attached, if there was one.
    fn into_error(self) -> Option<ManifestError> {
        let mut all = self.0.into_iter();
        let mut first = all.next()?;
        first.others = all.collect();
        Some(first)
    }
}

/// A checked manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    pub package: PackageInfo,
    pub workflows: Vec<WorkflowDef>,
}

/// `[package]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageInfo {
    pub name: PackageName,
    pub version: semver::Version,
    pub description: Option<String>,
}

/// One `[[workflow]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowDef {
    pub name: WorkflowName,
    pub description: Option<String>,
    /// The tasks in an order where each comes after its dependencies.
    pub tasks: Vec<TaskDef>,
    pub triggers: Vec<TriggerDef>,
}

impl WorkflowDef {
    /// The task graph: each task with the tasks it depends on, in dependency order.
    pub fn graph(&self) -> Vec<TaskNode> {
        self.tasks
            .iter()
            .map(|t| TaskNode {
                id: t.id.to_string(),
                dependencies: t.depends_on.iter().map(ToString::to_string).collect(),
                command: t.command.clone(),
                timeout: t.timeout,
                max_attempts: t.retry.max_attempts(),
                env: t.env.keys().cloned().collect(),
            })
            .collect()
    }
}

/// One node of a workflow's task graph, with what a reader of the graph needs to know of the
/// task: its command, timeout, attempts and the names (never the values) of its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskNode {
    pub id: String,
    /// The ids of the tasks it depends on (its incoming edges).
    pub dependencies: Vec<String>,
    pub command: Vec<String>,
    pub timeout: Duration,
    /// The first attempt and its retries.
    pub max_attempts: u32,
    /// The names of the variables the task's `env` sets.
    pub env: Vec<String>,
}

/// One `[[workflow.task]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskDef {
    pub id: TaskId,
    /// The argv, run in the package folder.
    pub command: Vec<String>,
    pub depends_on: Vec<TaskId>,
    pub timeout: Duration,
    pub retry: RetryPolicy,
    pub env: BTreeMap<String, String>,
    /// Environment variables set from the tenant's secrets: name → `secret.field`
    /// (docs/secrets.md). The values reach the task's process and nothing else.
    pub secrets: BTreeMap<String, crate::secrets::SecretRef>,
    /// What an attempt may use, beyond the defaults.
    pub limits: TaskLimits,
}

/// How a failed task is tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Further attempts after the first.
    pub retries: u32,
    pub backoff: Backoff,
    pub delay: Duration,
    pub max_delay: Duration,
}

impl RetryPolicy {
    /// The most attempts a task gets: the first and its retries.
    pub fn max_attempts(&self) -> u32 {
        self.retries.saturating_add(1)
    }
}

/// How the delay grows between attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backoff {
    /// The same delay every time.
    Fixed,
    /// Doubling from the first delay, capped at the maximum.
    Exponential,
}

impl RetryPolicy {
    /// The wait before retry number `n` (1 for the first retry).
    pub fn delay_before(&self, n: u32) -> Duration {
        match self.backoff {
            Backoff::Fixed => self.delay,
            Backoff::Exponential => {
                let factor = 2u32.saturating_pow(n.saturating_sub(1).min(31));
                self.delay.saturating_mul(factor).min(self.max_delay)
            }
        }
    }
}

pub use crate::trigger::{CronExpr, TriggerDef};

// The shape on disk. Unknown fields are errors, so a typo never passes silently.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    package: RawPackage,
    #[serde(default)]
    workflow: Vec<RawWorkflow>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPackage {
    name: String,
    version: String,
    #[serde(default)]
    description: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWorkflow {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    task: Vec<RawTask>,
    #[serde(default)]
    trigger: Vec<crate::trigger::def::RawTrigger>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTask {
    id: String,
    command: Vec<String>,
    #[serde(default)]
    depends_on: Vec<String>,
    #[serde(default)]
    timeout: Option<String>,
    #[serde(default)]
    retries: Option<u32>,
    #[serde(default)]
    backoff: Option<String>,
    #[serde(default)]
    retry_delay: Option<String>,
    #[serde(default)]
    retry_max_delay: Option<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    secrets: BTreeMap<String, String>,
    #[serde(default)]
    limits: Option<RawLimits>,
}

impl Manifest {
    /// Parses and checks `package.toml` text.
    ///
    /// # Errors
    /// The first [`ManifestError`], naming the field at fault.
    pub fn parse(text: &str) -> Result<Self, ManifestError> {
        let de =
            toml_edit::de::Deserializer::parse(text).map_err(|e| ManifestError::new("package.toml", e.message()))?;
        let raw: RawManifest = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let field = if path == "." { "package.toml".to_owned() } else { path };
            ManifestError::new(field, e.inner().message())
        })?;
        check(raw)
    }
}

fn text(field: &str, value: Option<String>, max: usize) -> Result<Option<String>, ManifestError> {
    match value {
        Some(v) if v.chars().count() > max => {
            Err(ManifestError::new(field, format!("must be at most {max} characters")))
        }
        Some(v) if v.chars().any(|c| c.is_control() && c != '\n') => {
            Err(ManifestError::new(field, "must not contain control characters"))
        }
        other => Ok(other),
    }
}

fn name<T>(field: &str, parse: impl Fn(&str) -> Result<T, NameError>, value: &str) -> Result<T, ManifestError> {
    parse(value).map_err(|e| ManifestError::new(field, format!("'{value}' {e}")))
}

fn duration(field: &str, value: Option<&str>, default: Duration) -> Result<Duration, ManifestError> {
    let Some(v) = value else { return Ok(default) };
    let d = humantime::parse_duration(v).map_err(|e| {
        ManifestError::new(field, format!("'{v}' is not a duration like \"30s\", \"5m\" or \"1h\": {e}"))
    })?;
    if d.is_zero() {
        return Err(ManifestError::new(field, "must be longer than zero"));
    }
    if d > MAX_DURATION {
        return Err(ManifestError::new(field, "must be at most 24h"));
    }
    Ok(d)
}

fn check(raw: RawManifest) -> Result<Manifest, ManifestError> {
    let mut p = Problems::default();
    let package_name = p.take(name("package.name", PackageName::parse, &raw.package.name));
    let version = p.take(semver::Version::parse(&raw.package.version).map_err(|e| {
        ManifestError::new("package.version", format!("'{}' is not a semantic version: {e}", raw.package.version))
    }));
    let description = p.take(text("package.description", raw.package.description, 1024));
    if raw.workflow.is_empty() {
        p.push("workflow", "a package declares at least one [[workflow]]");
    }
    if raw.workflow.len() > MAX_WORKFLOWS {
        p.push("workflow", format!("at most {MAX_WORKFLOWS} workflows"));
    }
    let mut seen = HashSet::new();
    // Trigger names are unique in the package (the API names a trigger without its workflow).
    let mut trigger_names = HashSet::new();
    let mut workflows = Vec::with_capacity(raw.workflow.len());
    for (w, raw_w) in raw.workflow.into_iter().enumerate() {
        let Some(wf) = check_workflow(&format!("workflow[{w}]"), raw_w, &mut p) else { continue };
        if !seen.insert(wf.name.clone()) {
            p.push(format!("workflow[{w}].name"), format!("'{}' is declared twice", wf.name));
        }
        for (g, t) in wf.triggers.iter().enumerate() {
            if !trigger_names.insert(t.name.clone()) {
                p.push(
                    format!("workflow[{w}].trigger[{g}].name"),
                    format!("'{}' is declared twice in this package", t.name),
                );
            }
        }
        workflows.push(wf);
    }
    match (p.into_error(), package_name, version, description) {
        (None, Some(name), Some(version), Some(description)) => {
            Ok(Manifest { package: PackageInfo { name, version, description }, workflows })
        }
        (Some(e), ..) => Err(e),
        (None, ..) => Err(ManifestError::new("package", "could not be checked")),
    }
}

/// The workflow, or `None` when `p` got a problem of it.
fn check_workflow(at: &str, raw: RawWorkflow, p: &mut Problems) -> Option<WorkflowDef> {
    let before = p.count();
    let wf_name = p.take(name(&format!("{at}.name"), WorkflowName::parse, &raw.name));
    let description = p.take(text(&format!("{at}.description"), raw.description, 1024));
    if raw.task.is_empty() {
        p.push(format!("{at}.task"), "a workflow has at least one [[workflow.task]]");
    }
    if raw.task.len() > MAX_TASKS {
        p.push(format!("{at}.task"), format!("at most {MAX_TASKS} tasks"));
    }
    let mut ids = HashSet::new();
    let mut tasks = Vec::with_capacity(raw.task.len());
    let declared = raw.task.len();
    for (t, raw_t) in raw.task.into_iter().enumerate() {
        let Some(task) = check_task(&format!("{at}.task[{t}]"), raw_t, p) else { continue };
        if !ids.insert(task.id.clone()) {
            p.push(format!("{at}.task[{t}].id"), format!("'{}' is declared twice", task.id));
        }
        tasks.push(task);
    }
    // The graph is checked when every task could be read: a task missing from it would make
    // its dependents' edges look wrong.
    let mut ordered = None;
    if tasks.len() == declared {
        let graph: Vec<(TaskId, Vec<TaskId>)> = tasks.iter().map(|t| (t.id.clone(), t.depends_on.clone())).collect();
        match order(&graph) {
            Ok(run_order) => {
                let mut slots: Vec<Option<TaskDef>> = tasks.into_iter().map(Some).collect();
                ordered = Some(run_order.into_iter().filter_map(|i| slots[i].take()).collect::<Vec<_>>());
            }
            Err(e) => match &e {
                DagError::Unknown { task, dep, .. }
                | DagError::OnItself { task, dep }
                | DagError::Repeated { task, dep, .. } => p.push(format!("{at}.task[{task}].depends_on[{dep}]"), &e),
                DagError::Cycle { task, .. } => p.push(format!("{at}.task[{task}].depends_on"), &e),
            },
        }
    }
    if raw.trigger.len() > MAX_TRIGGERS {
        p.push(format!("{at}.trigger"), format!("at most {MAX_TRIGGERS} triggers"));
    }
    let mut triggers = Vec::with_capacity(raw.trigger.len());
    for (g, raw_g) in raw.trigger.into_iter().enumerate() {
        triggers.extend(p.take(raw_g.check(&format!("{at}.trigger[{g}]"))));
    }
    if p.count() > before {
        return None;
    }
    Some(WorkflowDef { name: wf_name?, description: description?, tasks: ordered?, triggers })
}

/// The task, or `None` when `p` got a problem of it.
fn check_task(at: &str, raw: RawTask, p: &mut Problems) -> Option<TaskDef> {
    let before = p.count();
    let id = p.take(name(&format!("{at}.id"), TaskId::parse, &raw.id));
    if raw.command.is_empty() || raw.command[0].trim().is_empty() {
        p.push(format!("{at}.command"), "needs a program: an argv list like [\"sh\", \"run.sh\"]");
    }
    if let Some(i) = raw.command.iter().position(|a| a.contains('\0')) {
        p.push(format!("{at}.command[{i}]"), "must not contain a NUL character");
    }
    let depends_on: Vec<TaskId> = raw
        .depends_on
        .iter()
        .enumerate()
        .filter_map(|(d, dep)| p.take(name(&format!("{at}.depends_on[{d}]"), TaskId::parse, dep)))
        .collect();
    let retries = raw.retries.unwrap_or(0);
    if retries > MAX_RETRIES {
        p.push(format!("{at}.retries"), format!("must be at most {MAX_RETRIES}"));
    }
    let backoff = match raw.backoff.as_deref() {
        None | Some("exponential") => Backoff::Exponential,
        Some("fixed") => Backoff::Fixed,
        Some(other) => {
            p.push(format!("{at}.backoff"), format!("'{other}' is neither \"exponential\" nor \"fixed\""));
            Backoff::Exponential
        }
    };
    let delay = p.take(duration(&format!("{at}.retry_delay"), raw.retry_delay.as_deref(), DEFAULT_RETRY_DELAY));
    let max_delay =
        p.take(duration(&format!("{at}.retry_max_delay"), raw.retry_max_delay.as_deref(), DEFAULT_RETRY_MAX_DELAY));
    if let (Some(delay), Some(max_delay)) = (delay, max_delay)
        && max_delay < delay
    {
        p.push(format!("{at}.retry_max_delay"), "must not be shorter than retry_delay");
    }
    for (k, v) in &raw.env {
        let field = format!("{at}.env.{k}");
        if !env_name(k) {
            p.push(field, "is not an environment variable name ([A-Za-z_][A-Za-z0-9_]*)");
        } else if k.starts_with(RESERVED_ENV_PREFIX) {
            p.push(field, format!("names starting with {RESERVED_ENV_PREFIX} are the runner's own"));
        } else if v.contains('\0') {
            p.push(field, "must not contain a NUL character");
        }
    }
    let mut secrets = BTreeMap::new();
    for (k, v) in &raw.secrets {
        let field = format!("{at}.secrets.{k}");
        if !env_name(k) {
            p.push(field, "is not an environment variable name ([A-Za-z_][A-Za-z0-9_]*)");
        } else if k.starts_with(RESERVED_ENV_PREFIX) {
            p.push(field, format!("names starting with {RESERVED_ENV_PREFIX} are the runner's own"));
        } else if raw.env.contains_key(k) {
            p.push(field, "is set by env too: a variable comes from one place");
        } else {
            match crate::secrets::SecretRef::parse(v) {
                Ok(r) => {
                    secrets.insert(k.clone(), r);
                }
                Err(e) => p.push(field, e),
            }
        }
    }
    let timeout = p.take(duration(&format!("{at}.timeout"), raw.timeout.as_deref(), DEFAULT_TIMEOUT));
    let limits = p.take(check_limits(at, raw.limits));
    if p.count() > before {
        return None;
    }
    Some(TaskDef {
        id: id?,
        command: raw.command,
        depends_on,
        timeout: timeout?,
        retry: RetryPolicy { retries, backoff, delay: delay?, max_delay: max_delay? },
        env: raw.env,
        secrets,
        limits: limits?,
    })
}

/// Whether `k` may name an environment variable: `[A-Za-z_][A-Za-z0-9_]*`.
fn env_name(k: &str) -> bool {
    k.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests;
