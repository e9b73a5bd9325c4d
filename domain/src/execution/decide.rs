//! The decisions a store hands over once it has locked what they need: whether a report
//! still holds its task, what recording it changes, and whether a cancel or retry may happen.
//! Both storage adapters apply the [`Settled`] these return; neither decides (docs/engine.md).

use serde_json::{Map, Value};

use super::settle::{Attempt, Settled};
use super::{AttemptReport, ExecutionStatus, Plan, Progress, TaskStatus};

/// A task row's hold as stored: its status, the attempts it has started, and the worker
/// whose lease it is under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hold<'a> {
    pub status: TaskStatus,
    pub attempts: u32,
    pub owner: Option<&'a str>,
}

impl AttemptReport {
    /// Whether this report's attempt still holds its task: the task is running, on this
    /// attempt, under `worker`'s lease. Any other report is stale (its lease expired and the
    /// task was claimed again, or the execution was cancelled) and changes nothing.
    pub fn holds(&self, worker: &str, hold: Hold<'_>) -> bool {
        hold.status == TaskStatus::Running && hold.attempts == self.attempt && hold.owner == Some(worker)
    }
}

/// What recording one report changes: the step, and the attempted task's stored result.
#[derive(Clone, Debug, PartialEq)]
pub struct Recording {
    pub settled: Settled,
    /// The attempted task's name, as its log is filed under.
    pub task: String,
    /// A successful attempt's output.
    pub output: Option<Map<String, Value>>,
    /// A failed attempt's reason.
    pub error: Option<String>,
}

impl Plan {
    /// Records `report`, whose attempt holds its task ([`AttemptReport::holds`]).
    pub fn record(&self, p: &mut Progress, report: &AttemptReport) -> Recording {
        let position = report.key.position;
        let settled = self.settle(p, position, &report.outcome);
        let (output, error) = match &report.outcome {
            Attempt::Succeeded => (report.output.clone(), None),
            Attempt::Failed(reason) => (None, Some(reason.clone())),
        };
        let task = self.tasks.get(position).map(|t| t.id.to_string()).unwrap_or_default();
        Recording { settled, task, output, error }
    }

    /// Applies `command` to an execution in `status`: the step, or `None` if its status
    /// does not allow it (the execution is then left as it is).
    pub fn command(&self, command: Command, status: ExecutionStatus, p: &mut Progress) -> Option<Settled> {
        command.allowed_from(status).then(|| match command {
            Command::Cancel => self.settle_cancel(p),
            Command::Retry => self.settle_retry(p),
        })
    }
}

/// What a client may ask of a whole execution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// Stop every task that has not finished.
    Cancel,
    /// Run a failed or cancelled execution's unsuccessful tasks again.
    Retry,
}

impl Command {
    /// Whether an execution in `status` may be given this command: a cancel while it has not
    /// finished, a retry once it failed or was cancelled.
    pub fn allowed_from(self, status: ExecutionStatus) -> bool {
        match self {
            Command::Cancel => !status.is_terminal(),
            Command::Retry => matches!(status, ExecutionStatus::Failed | ExecutionStatus::Cancelled),
        }
    }
}
