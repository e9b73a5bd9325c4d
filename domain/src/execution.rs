//! Executions as the engine plans and advances them: which tasks may run, what a success or a
//! failure changes, when an execution is over, and what context each task receives
//! (docs/engine.md). Pure rules; the engine stores the state and runs the tasks.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::package::{RetryPolicy, TaskId, TaskLimits, WorkflowDef};

/// Where an execution stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExecutionStatus {
    /// Accepted; no task has started.
    Pending,
    Running,
    Succeeded,
    /// A task failed out of attempts; tasks that depend on it were skipped.
    Failed,
    Cancelled,
}

impl ExecutionStatus {
    /// Every status.
    pub const ALL: [ExecutionStatus; 5] = [
        ExecutionStatus::Pending,
        ExecutionStatus::Running,
        ExecutionStatus::Succeeded,
        ExecutionStatus::Failed,
        ExecutionStatus::Cancelled,
    ];

    /// The status a wire or stored name stands for.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionStatus::Pending => "pending",
            ExecutionStatus::Running => "running",
            ExecutionStatus::Succeeded => "succeeded",
            ExecutionStatus::Failed => "failed",
            ExecutionStatus::Cancelled => "cancelled",
        }
    }

    /// Whether nothing more will happen.
    pub fn is_terminal(self) -> bool {
        matches!(self, ExecutionStatus::Succeeded | ExecutionStatus::Failed | ExecutionStatus::Cancelled)
    }

    /// The word the API answers with: the reference server's vocabulary (docs/api.md,
    /// "Reference compatibility"), so its clients read our answers unchanged.
    pub fn wire_name(self) -> &'static str {
        match self {
            ExecutionStatus::Pending => "Pending",
            ExecutionStatus::Running => "Running",
            ExecutionStatus::Succeeded => "Completed",
            ExecutionStatus::Failed => "Failed",
            ExecutionStatus::Cancelled => "Cancelled",
        }
    }

    /// The status a filter names: the API's word or the stored one, in any case.
    pub fn from_filter(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|s| s.wire_name().eq_ignore_ascii_case(name) || s.as_str().eq_ignore_ascii_case(name))
    }
}

/// Where one task of an execution stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TaskStatus {
    /// Its dependencies have not all succeeded yet.
    Waiting,
    /// May be claimed by a worker (once its retry time, if any, has come).
    Ready,
    Running,
    Succeeded,
    /// Out of attempts.
    Failed,
    /// Never ran: something it depends on failed.
    Skipped,
    Cancelled,
}

impl TaskStatus {
    /// Every status.
    pub const ALL: [TaskStatus; 7] = [
        TaskStatus::Waiting,
        TaskStatus::Ready,
        TaskStatus::Running,
        TaskStatus::Succeeded,
        TaskStatus::Failed,
        TaskStatus::Skipped,
        TaskStatus::Cancelled,
    ];

    /// The status a stored name stands for.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Waiting => "waiting",
            TaskStatus::Ready => "ready",
            TaskStatus::Running => "running",
            TaskStatus::Succeeded => "succeeded",
            TaskStatus::Failed => "failed",
            TaskStatus::Skipped => "skipped",
            TaskStatus::Cancelled => "cancelled",
        }
    }

    /// The word the API answers with, in the reference server's vocabulary (docs/api.md,
    /// "Reference compatibility"); it has none for a cancelled task, which keeps ours.
    pub fn wire_name(self) -> &'static str {
        match self {
            TaskStatus::Waiting => "NotStarted",
            TaskStatus::Ready => "Ready",
            TaskStatus::Running => "Running",
            TaskStatus::Succeeded => "Completed",
            TaskStatus::Failed => "Failed",
            TaskStatus::Skipped => "Skipped",
            TaskStatus::Cancelled => "Cancelled",
        }
    }

    /// Whether this task will not change again.
    pub fn is_terminal(self) -> bool {
        matches!(self, TaskStatus::Succeeded | TaskStatus::Failed | TaskStatus::Skipped | TaskStatus::Cancelled)
    }
}

/// One task as an execution runs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedTask {
    pub id: TaskId,
    /// The argv, run in the package folder.
    pub command: Vec<String>,
    /// The manifest's `env` for the task.
    pub env: BTreeMap<String, String>,
    /// Variables set from the tenant's secrets when an attempt starts: name → `secret.field`.
    pub secrets: BTreeMap<String, String>,
    /// Positions of the tasks it depends on, all earlier in the plan.
    pub deps: Vec<usize>,
    pub retry: RetryPolicy,
    pub timeout: Duration,
    pub limits: TaskLimits,
}

/// A workflow's tasks in run order, with dependencies as positions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub tasks: Vec<PlannedTask>,
}

/// The state of every task of one execution, by plan position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Progress {
    pub status: Vec<TaskStatus>,
    /// Attempts started, per task.
    pub attempts: Vec<u32>,
}

/// What a failed attempt leads to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AfterFailure {
    /// Ready again after this wait.
    Retry { after: Duration },
    /// Out of attempts: these tasks (positions) are skipped as a result.
    Failed { skipped: Vec<usize> },
}

impl Plan {
    /// The plan of a checked workflow (whose tasks are already in run order).
    pub fn of(workflow: &WorkflowDef) -> Self {
        let position = |id: &TaskId| workflow.tasks.iter().position(|t| &t.id == id);
        let tasks = workflow
            .tasks
            .iter()
            .map(|t| PlannedTask {
                id: t.id.clone(),
                command: t.command.clone(),
                env: t.env.clone(),
                secrets: t.secrets.iter().map(|(k, r)| (k.clone(), r.to_string())).collect(),
                deps: t.depends_on.iter().filter_map(position).collect(),
                retry: t.retry,
                timeout: t.timeout,
                limits: t.limits,
            })
            .collect();
        Self { tasks }
    }

    /// A fresh execution: tasks without dependencies are ready, the rest wait.
    pub fn start(&self) -> Progress {
        Progress {
            status: self
                .tasks
                .iter()
                .map(|t| if t.deps.is_empty() { TaskStatus::Ready } else { TaskStatus::Waiting })
                .collect(),
            attempts: vec![0; self.tasks.len()],
        }
    }

    /// A worker starts an attempt of a ready task.
    ///
    /// # Panics
    /// Never; a task that is not ready is left alone and `false` returned.
    pub fn claim(&self, p: &mut Progress, task: usize) -> bool {
        if p.status.get(task) != Some(&TaskStatus::Ready) {
            return false;
        }
        p.status[task] = TaskStatus::Running;
        p.attempts[task] += 1;
        true
    }

    /// The running task succeeded; returns the tasks that became ready.
    pub fn succeed(&self, p: &mut Progress, task: usize) -> Vec<usize> {
        if p.status.get(task) != Some(&TaskStatus::Running) {
            return Vec::new();
        }
        p.status[task] = TaskStatus::Succeeded;
        let mut ready = Vec::new();
        for (i, t) in self.tasks.iter().enumerate() {
            if p.status[i] == TaskStatus::Waiting
                && t.deps.contains(&task)
                && t.deps.iter().all(|&d| p.status[d] == TaskStatus::Succeeded)
            {
                p.status[i] = TaskStatus::Ready;
                ready.push(i);
            }
        }
        ready
    }

    /// The running task's attempt failed (or timed out, or its worker vanished).
    pub fn fail(&self, p: &mut Progress, task: usize) -> AfterFailure {
        if p.status.get(task) != Some(&TaskStatus::Running) {
            return AfterFailure::Failed { skipped: Vec::new() };
        }
        let retry = self.tasks[task].retry;
        let attempts = p.attempts[task];
        if attempts <= retry.retries {
            p.status[task] = TaskStatus::Ready;
            return AfterFailure::Retry { after: retry.delay_before(attempts) };
        }
        p.status[task] = TaskStatus::Failed;
        let mut skipped = Vec::new();
        // Plan order puts every dependent after what it depends on: one pass suffices.
        for (i, t) in self.tasks.iter().enumerate().skip(task + 1) {
            let blocked = t.deps.iter().any(|&d| matches!(p.status[d], TaskStatus::Failed | TaskStatus::Skipped));
            if blocked && p.status[i] == TaskStatus::Waiting {
                p.status[i] = TaskStatus::Skipped;
                skipped.push(i);
            }
        }
        AfterFailure::Failed { skipped }
    }

    /// Cancels every task that has not finished; returns them.
    pub fn cancel(&self, p: &mut Progress) -> Vec<usize> {
        let mut cancelled = Vec::new();
        for (i, s) in p.status.iter_mut().enumerate() {
            if !s.is_terminal() {
                *s = TaskStatus::Cancelled;
                cancelled.push(i);
            }
        }
        cancelled
    }

    /// The execution's status as its tasks make it.
    pub fn status(&self, p: &Progress) -> ExecutionStatus {
        let finished = p.status.iter().all(|s| s.is_terminal());
        if p.status.iter().all(|s| *s == TaskStatus::Succeeded) {
            ExecutionStatus::Succeeded
        } else if finished && p.status.contains(&TaskStatus::Cancelled) {
            ExecutionStatus::Cancelled
        } else if finished {
            ExecutionStatus::Failed
        } else if p.attempts.iter().all(|&a| a == 0) {
            ExecutionStatus::Pending
        } else {
            ExecutionStatus::Running
        }
    }

    /// The tasks `task` depends on, directly or not, in plan order.
    pub fn ancestors(&self, task: usize) -> Vec<usize> {
        let mut marked = vec![false; self.tasks.len()];
        let mut stack: Vec<usize> = self.tasks.get(task).map(|t| t.deps.clone()).unwrap_or_default();
        while let Some(d) = stack.pop() {
            if !marked[d] {
                marked[d] = true;
                stack.extend(self.tasks[d].deps.iter().copied());
            }
        }
        (0..self.tasks.len()).filter(|&i| marked[i]).collect()
    }

    /// The context `task` receives: the execution's initial context with the outputs of the
    /// tasks it depends on (directly or not) merged in, top-level keys, in plan order, so a
    /// later task wins a clash. The same whatever order the tasks happened to finish in.
    pub fn context_for(
        &self,
        task: usize,
        initial: &Map<String, Value>,
        outputs: &[Option<Map<String, Value>>],
    ) -> Map<String, Value> {
        let mut context = initial.clone();
        for a in self.ancestors(task) {
            if let Some(Some(out)) = outputs.get(a) {
                for (k, v) in out {
                    context.insert(k.clone(), v.clone());
                }
            }
        }
        context
    }
}

mod decide;
mod event;
mod settle;
mod stored;

pub use decide::{Command, Hold, Recording};
pub use event::{EventDraft, EventKind};
pub use settle::{Attempt, Change, Settled, failure_message};
pub use stored::*;

#[cfg(test)]
mod decide_tests;
#[cfg(test)]
mod tests;

#[cfg(test)]
mod wire_names {
    use super::*;

    #[test]
    fn every_status_has_one_api_word_and_filters_take_either_word_in_any_case() {
        let words: Vec<_> = ExecutionStatus::ALL.iter().map(|s| s.wire_name()).collect();
        assert_eq!(words, ["Pending", "Running", "Completed", "Failed", "Cancelled"]);
        for s in ExecutionStatus::ALL {
            for name in [s.wire_name().to_owned(), s.wire_name().to_lowercase(), s.as_str().to_owned()] {
                assert_eq!(ExecutionStatus::from_filter(&name), Some(s), "{name}");
            }
        }
        assert_eq!(ExecutionStatus::from_filter("COMPLETED"), Some(ExecutionStatus::Succeeded));
        assert_eq!(ExecutionStatus::from_filter("done"), None);
        let tasks: Vec<_> = TaskStatus::ALL.iter().map(|s| s.wire_name()).collect();
        assert_eq!(tasks, ["NotStarted", "Ready", "Running", "Completed", "Failed", "Skipped", "Cancelled"]);
    }
}
