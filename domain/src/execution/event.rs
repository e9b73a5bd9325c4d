//! The kinds of event an execution records, with their one stored name each, and the events
//! the storage adapters write themselves (a claim, a lease lost, a give-back, a creation).

use serde_json::{Value, json};

use super::{ExecutionStatus, TaskStatus};

/// What an event says happened. [`EventKind::as_str`] is the name stored and served
/// (`event_type` on the API); it never changes once released.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    ExecutionCreated,
    ExecutionRetried,
    ExecutionSucceeded,
    ExecutionFailed,
    ExecutionCancelled,
    TaskWaiting,
    TaskReady,
    TaskStarted,
    TaskSucceeded,
    TaskRetrying,
    TaskFailed,
    TaskSkipped,
    TaskCancelled,
    /// Its worker stopped renewing the lease; the task is ready again.
    TaskLeaseExpired,
    /// Its worker gave it back unfinished (a shutdown).
    TaskReleased,
}

impl EventKind {
    pub const ALL: [EventKind; 15] = [
        EventKind::ExecutionCreated,
        EventKind::ExecutionRetried,
        EventKind::ExecutionSucceeded,
        EventKind::ExecutionFailed,
        EventKind::ExecutionCancelled,
        EventKind::TaskWaiting,
        EventKind::TaskReady,
        EventKind::TaskStarted,
        EventKind::TaskSucceeded,
        EventKind::TaskRetrying,
        EventKind::TaskFailed,
        EventKind::TaskSkipped,
        EventKind::TaskCancelled,
        EventKind::TaskLeaseExpired,
        EventKind::TaskReleased,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::ExecutionCreated => "execution_created",
            EventKind::ExecutionRetried => "execution_retried",
            EventKind::ExecutionSucceeded => "execution_succeeded",
            EventKind::ExecutionFailed => "execution_failed",
            EventKind::ExecutionCancelled => "execution_cancelled",
            EventKind::TaskWaiting => "task_waiting",
            EventKind::TaskReady => "task_ready",
            EventKind::TaskStarted => "task_started",
            EventKind::TaskSucceeded => "task_succeeded",
            EventKind::TaskRetrying => "task_retrying",
            EventKind::TaskFailed => "task_failed",
            EventKind::TaskSkipped => "task_skipped",
            EventKind::TaskCancelled => "task_cancelled",
            EventKind::TaskLeaseExpired => "task_lease_expired",
            EventKind::TaskReleased => "task_released",
        }
    }

    /// The kind stored under `name`, if it is one.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// The event of a task that came to `status` as a consequence of another's step.
    pub fn task_became(status: TaskStatus) -> Self {
        match status {
            TaskStatus::Waiting => EventKind::TaskWaiting,
            TaskStatus::Ready => EventKind::TaskReady,
            TaskStatus::Running => EventKind::TaskStarted,
            TaskStatus::Succeeded => EventKind::TaskSucceeded,
            TaskStatus::Failed => EventKind::TaskFailed,
            TaskStatus::Skipped => EventKind::TaskSkipped,
            TaskStatus::Cancelled => EventKind::TaskCancelled,
        }
    }

    /// The event of an execution's end, if `status` is one.
    pub fn execution_ended(status: ExecutionStatus) -> Option<Self> {
        match status {
            ExecutionStatus::Succeeded => Some(EventKind::ExecutionSucceeded),
            ExecutionStatus::Failed => Some(EventKind::ExecutionFailed),
            ExecutionStatus::Cancelled => Some(EventKind::ExecutionCancelled),
            ExecutionStatus::Pending | ExecutionStatus::Running => None,
        }
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An event to store: its kind, the task it concerns, and what else is worth knowing.
#[derive(Clone, Debug, PartialEq)]
pub struct EventDraft {
    pub kind: EventKind,
    pub task: Option<String>,
    pub detail: Value,
}

impl EventDraft {
    pub fn new(kind: EventKind, task: Option<String>, detail: Value) -> Self {
        Self { kind, task, detail }
    }

    /// An execution was accepted.
    pub fn created(new: &super::NewExecution) -> Self {
        Self::new(
            EventKind::ExecutionCreated,
            None,
            json!({"workflow": new.workflow, "package_version": new.package_version, "origin": new.origin}),
        )
    }

    /// `worker` claimed attempt `attempt` of `task`.
    pub fn started(task: &str, attempt: u32, worker: &str) -> Self {
        Self::new(EventKind::TaskStarted, Some(task.to_owned()), json!({"attempt": attempt, "worker": worker}))
    }

    /// The lease on `task` ran out; it is ready again and the lost attempt does not count.
    pub fn lease_expired(task: &str) -> Self {
        Self::new(EventKind::TaskLeaseExpired, Some(task.to_owned()), json!({}))
    }

    /// `worker` gave `task` back unfinished; it is ready again.
    pub fn released(task: &str, worker: &str) -> Self {
        Self::new(EventKind::TaskReleased, Some(task.to_owned()), json!({"worker": worker}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_one_stored_name_that_reads_back() {
        let mut names: Vec<_> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
        for k in EventKind::ALL {
            assert_eq!(EventKind::parse(k.as_str()), Some(k));
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), EventKind::ALL.len(), "two kinds share a name");
        assert_eq!(EventKind::parse("task_exploded"), None);
    }

    #[test]
    fn a_terminal_status_ends_an_execution_and_only_one_does() {
        let ended: Vec<_> = ExecutionStatus::ALL.into_iter().filter_map(EventKind::execution_ended).collect();
        assert_eq!(ended, [EventKind::ExecutionSucceeded, EventKind::ExecutionFailed, EventKind::ExecutionCancelled]);
    }
}
