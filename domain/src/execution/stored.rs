//! Executions as storage keeps them: ids, rows, events, logs, claims, and the plan frozen
//! into each execution when it is accepted (so a later upload never changes a running one).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::{ExecutionStatus, Plan, PlannedTask, TaskStatus};
use crate::key::ApiKeyId;
use crate::package::{Backoff, RetryPolicy, TaskId, TaskLimits};

/// An execution's id: a UUID.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExecutionId(Uuid);

/// The text is not an execution id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("execution id must be a UUID")]
pub struct ExecutionIdError;

impl ExecutionId {
    pub fn from_uuid(id: Uuid) -> Self {
        Self(id)
    }

    pub fn as_uuid(self) -> Uuid {
        self.0
    }
}

impl FromStr for ExecutionId {
    type Err = ExecutionIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self).map_err(|_| ExecutionIdError)
    }
}

impl fmt::Display for ExecutionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl fmt::Debug for ExecutionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ExecutionId({})", self.0)
    }
}

/// The most characters of an `Idempotency-Key`.
pub const MAX_IDEMPOTENCY_KEY: usize = 255;

/// What accepting an execution stores.
#[derive(Debug, Clone, PartialEq)]
pub struct NewExecution {
    pub id: ExecutionId,
    pub workflow: String,
    /// The package version in force when it was accepted.
    pub package_id: Uuid,
    pub package_version: String,
    pub plan: Plan,
    /// The context it starts with.
    pub context: Map<String, Value>,
    /// `api`, `trigger:<name>` (on schedule) or `trigger:<name>:manual` (fired by hand).
    pub origin: String,
    pub idempotency_key: Option<String>,
    pub created_at: DateTime<Utc>,
    pub created_by: Option<ApiKeyId>,
    /// The trigger that started it, if one did.
    pub fired: Option<Fired>,
}

/// Which trigger started an execution, for which scheduled time (the time it was fired, for
/// a fire by hand).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fired {
    pub trigger: String,
    pub scheduled_at: DateTime<Utc>,
}

/// One execution as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutionRecord {
    pub id: ExecutionId,
    pub workflow: String,
    pub package_id: Uuid,
    pub package_version: String,
    pub status: ExecutionStatus,
    pub context: Map<String, Value>,
    /// Why it failed: the first task that ran out of attempts, and how.
    pub error: Option<String>,
    pub origin: String,
    pub idempotency_key: Option<String>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub created_by: Option<ApiKeyId>,
    pub fired: Option<Fired>,
}

/// What storing a new execution did.
#[derive(Debug, Clone, PartialEq)]
pub enum ExecutionCreated {
    Created(ExecutionRecord),
    /// The idempotency key was used before: the first execution, unchanged.
    Existing(ExecutionRecord),
    /// The workflow is paused: nothing stored.
    Paused,
    /// The workflow or its package version is gone (deleted meanwhile): nothing stored.
    Gone,
}

/// One task of an execution as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskRecord {
    pub position: usize,
    pub task_id: String,
    pub status: TaskStatus,
    /// Attempts started.
    pub attempts: u32,
    /// The most it gets ([`crate::package::RetryPolicy::max_attempts`] of its plan step).
    pub max_attempts: u32,
    /// When it may next be claimed (ready tasks).
    pub ready_at: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub output: Option<Map<String, Value>>,
    pub error: Option<String>,
}

/// One stored event of an execution. Ids grow with time within a tenant.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRecord {
    pub id: i64,
    pub execution_id: ExecutionId,
    pub at: DateTime<Utc>,
    pub kind: super::EventKind,
    pub task: Option<String>,
    pub detail: Value,
}

/// The captured output of one attempt, or (as stored) one piece of it: a running attempt's
/// output is kept a piece at a time as it comes, and its last piece comes with its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskLog {
    pub task_id: String,
    pub attempt: u32,
    pub stdout: String,
    pub stderr: String,
    /// Whether either stream was cut at the cap.
    pub truncated: bool,
    /// When the (last) piece was kept.
    pub at: DateTime<Utc>,
    /// Whether the attempt's end was kept: `false` while it runs, and for good if its server
    /// died under it (its output up to then is all there is).
    pub ended: bool,
}

impl TaskLog {
    /// Stored pieces, in the order they were kept, as one log per attempt, attempts in the
    /// order they first appear.
    pub fn merge(pieces: Vec<TaskLog>) -> Vec<TaskLog> {
        let mut logs: Vec<TaskLog> = Vec::new();
        for piece in pieces {
            match logs.iter_mut().find(|l| l.attempt == piece.attempt && l.task_id == piece.task_id) {
                Some(log) => {
                    log.stdout.push_str(&piece.stdout);
                    log.stderr.push_str(&piece.stderr);
                    log.truncated |= piece.truncated;
                    log.ended |= piece.ended;
                    log.at = log.at.max(piece.at);
                }
                None => logs.push(piece),
            }
        }
        logs
    }
}

/// One kept piece of a task's output as the live feed reads it: with its id (one sequence per
/// tenant, apart from the events') and whose it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputRecord {
    pub id: i64,
    pub execution_id: ExecutionId,
    pub task_id: String,
    pub attempt: u32,
    pub stdout: String,
    pub stderr: String,
    pub truncated: bool,
    /// Whether this piece ends its attempt.
    pub ended: bool,
    pub at: DateTime<Utc>,
}

/// A piece of a running attempt's output, for the store to keep as it comes; `ended` on the
/// last one of an attempt that stopped without an outcome (cancelled, its lease lost, given
/// back).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputPiece {
    pub key: TaskKey,
    pub task_id: String,
    pub attempt: u32,
    pub stdout: String,
    pub stderr: String,
    pub truncated: bool,
    pub ended: bool,
}

/// Which executions a listing wants.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExecutionQuery {
    pub status: Option<ExecutionStatus>,
    pub workflow: Option<String>,
    /// Only the executions this trigger started.
    pub trigger: Option<String>,
    pub limit: u32,
    pub offset: u64,
}

/// A page of executions, newest first, with how many match in all.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutionPage {
    pub executions: Vec<ExecutionRecord>,
    pub total: u64,
}

/// One task of one execution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskKey {
    pub execution_id: ExecutionId,
    pub position: usize,
}

/// A task attempt a worker has claimed: everything needed to run it.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedTask {
    pub key: TaskKey,
    /// This attempt's number, from 1.
    pub attempt: u32,
    pub task_id: String,
    pub package_id: Uuid,
    pub command: Vec<String>,
    pub env: BTreeMap<String, String>,
    /// Variables to set from the tenant's secrets: name → `secret.field`.
    pub secrets: BTreeMap<String, String>,
    pub timeout: Duration,
    pub limits: TaskLimits,
    /// The context the task receives.
    pub context: Map<String, Value>,
    /// The tenant's own task network as the claim found it (`None`: the deployment's).
    pub network: Option<crate::TaskNetwork>,
}

/// How an attempt ended, as a worker reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptReport {
    pub key: TaskKey,
    pub attempt: u32,
    pub outcome: super::settle::Attempt,
    /// A successful attempt's output object.
    pub output: Option<Map<String, Value>>,
    /// Its output not yet kept (what came since the last piece), kept with the outcome.
    pub stdout: String,
    pub stderr: String,
    pub truncated: bool,
}

/// What recording an attempt did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// Recorded; `readied` says whether other tasks became ready.
    Done { readied: bool },
    /// The attempt is no longer this worker's (its lease expired, or the execution was
    /// cancelled): nothing changed.
    Stale,
}

/// What a cancel or retry did.
#[derive(Debug, Clone, PartialEq)]
pub enum Transition {
    /// The execution as it now is.
    Done(ExecutionRecord),
    /// Not possible from its status (cancel of a finished one, retry of one still running).
    Refused(ExecutionRecord),
    NotFound,
}

/// A stored plan that no longer decodes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stored plan is invalid: {0}")]
pub struct PlanDecodeError(String);

#[derive(Serialize, Deserialize)]
struct StepWire {
    id: String,
    command: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    env: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    secrets: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    deps: Vec<usize>,
    retries: u32,
    backoff: String,
    retry_delay_ms: u64,
    retry_max_delay_ms: u64,
    timeout_ms: u64,
    #[serde(default, skip_serializing_if = "LimitsWire::is_empty")]
    limits: LimitsWire,
}

/// A task's asked-for limits as stored: absent fields take the runner's defaults, so plans
/// written before limits existed read back unchanged.
#[derive(Serialize, Deserialize, Default)]
struct LimitsWire {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    memory: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    processes: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    open_files: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cpu_time_ms: Option<u64>,
}

impl LimitsWire {
    fn is_empty(&self) -> bool {
        self.memory.is_none() && self.processes.is_none() && self.open_files.is_none() && self.cpu_time_ms.is_none()
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Plan {
    /// The plan as stored with an execution.
    pub fn to_json(&self) -> Value {
        let steps: Vec<StepWire> = self
            .tasks
            .iter()
            .map(|t| StepWire {
                id: t.id.to_string(),
                command: t.command.clone(),
                env: t.env.clone(),
                secrets: t.secrets.clone(),
                deps: t.deps.clone(),
                retries: t.retry.retries,
                backoff: match t.retry.backoff {
                    Backoff::Fixed => "fixed".into(),
                    Backoff::Exponential => "exponential".into(),
                },
                retry_delay_ms: millis(t.retry.delay),
                retry_max_delay_ms: millis(t.retry.max_delay),
                timeout_ms: millis(t.timeout),
                limits: LimitsWire {
                    memory: t.limits.memory,
                    processes: t.limits.processes,
                    open_files: t.limits.open_files,
                    cpu_time_ms: t.limits.cpu_time.map(millis),
                },
            })
            .collect();
        serde_json::to_value(steps).unwrap_or(Value::Null)
    }

    /// A plan read back from storage.
    ///
    /// # Errors
    /// [`PlanDecodeError`] if it is not a plan this binary wrote: unknown shape, a bad task
    /// id, or a dependency that is not an earlier task.
    pub fn from_json(value: &Value) -> Result<Self, PlanDecodeError> {
        let steps: Vec<StepWire> = serde_json::from_value(value.clone()).map_err(|e| PlanDecodeError(e.to_string()))?;
        let mut tasks = Vec::with_capacity(steps.len());
        for (i, s) in steps.into_iter().enumerate() {
            if s.deps.iter().any(|&d| d >= i) {
                return Err(PlanDecodeError(format!("task {i} depends on a later task")));
            }
            let backoff = match s.backoff.as_str() {
                "fixed" => Backoff::Fixed,
                "exponential" => Backoff::Exponential,
                other => return Err(PlanDecodeError(format!("unknown backoff '{other}'"))),
            };
            tasks.push(PlannedTask {
                id: TaskId::parse(&s.id).map_err(|e| PlanDecodeError(e.to_string()))?,
                command: s.command,
                env: s.env,
                secrets: s.secrets,
                deps: s.deps,
                retry: RetryPolicy {
                    retries: s.retries,
                    backoff,
                    delay: Duration::from_millis(s.retry_delay_ms),
                    max_delay: Duration::from_millis(s.retry_max_delay_ms),
                },
                timeout: Duration::from_millis(s.timeout_ms),
                limits: TaskLimits {
                    memory: s.limits.memory,
                    processes: s.limits.processes,
                    open_files: s.limits.open_files,
                    cpu_time: s.limits.cpu_time_ms.map(Duration::from_millis),
                },
            });
        }
        Ok(Self { tasks })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::package::Manifest;

    #[test]
    fn a_plan_survives_storage_unchanged() {
        let m = Manifest::parse(
            r#"[package]
name = "p"
version = "1.0.0"
[[workflow]]
name = "w"
[[workflow.task]]
id = "a"
command = ["sh", "a.sh"]
env = { LEVEL = "debug" }
timeout = "90s"
limits = { memory = "2GiB", processes = 64, cpu_time = "10m" }
retries = 3
backoff = "exponential"
retry_delay = "250ms"
[[workflow.task]]
id = "b"
command = ["true"]
depends_on = ["a"]
"#,
        )
        .unwrap();
        let plan = Plan::of(&m.workflows[0]);
        assert_eq!(plan.tasks[0].limits.memory, Some(2 * 1024 * 1024 * 1024));
        assert_eq!(Plan::from_json(&plan.to_json()).unwrap(), plan);
        // A plan stored before limits existed reads back with none asked for.
        let mut old = plan.to_json();
        old[0].as_object_mut().unwrap().remove("limits");
        assert!(Plan::from_json(&old).unwrap().tasks[0].limits.is_default());
    }

    #[test]
    fn a_stored_plan_pointing_forward_is_refused() {
        let bad = serde_json::json!([{"id": "a", "command": ["true"], "deps": [0], "retries": 0,
            "backoff": "fixed", "retry_delay_ms": 1, "retry_max_delay_ms": 1, "timeout_ms": 1}]);
        assert!(Plan::from_json(&bad).is_err());
    }

    #[test]
    fn execution_ids_parse_only_uuids() {
        let id: ExecutionId = "6f9619ff-8b86-d011-b42d-00c04fc964ff".parse().unwrap();
        assert_eq!(id.to_string(), "6f9619ff-8b86-d011-b42d-00c04fc964ff");
        assert!("nope".parse::<ExecutionId>().is_err());
        assert!("".parse::<ExecutionId>().is_err());
    }

    #[test]
    fn pieces_merge_into_one_log_per_attempt_in_the_order_kept() {
        let at = |s: i64| DateTime::<Utc>::from_timestamp(s, 0).unwrap();
        let piece = |attempt, out: &str, err: &str, t, ended| TaskLog {
            task_id: "t".into(),
            attempt,
            stdout: out.into(),
            stderr: err.into(),
            truncated: out.contains('!'),
            at: at(t),
            ended,
        };
        let logs = TaskLog::merge(vec![
            piece(1, "a", "", 1, false),
            piece(1, "b!", "x", 2, false),
            piece(1, "c", "y", 3, true),
            piece(2, "d", "", 4, false),
        ]);
        assert_eq!(logs.len(), 2);
        assert_eq!((logs[0].stdout.as_str(), logs[0].stderr.as_str()), ("ab!c", "xy"));
        assert!(logs[0].truncated && logs[0].ended);
        assert_eq!(logs[0].at, at(3));
        assert_eq!((logs[1].attempt, logs[1].stdout.as_str(), logs[1].ended), (2, "d", false));
        assert!(TaskLog::merge(Vec::new()).is_empty());
    }
}
