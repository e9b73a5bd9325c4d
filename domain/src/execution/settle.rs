//! What recording an attempt, a cancel or a retry changes, as one list of row changes that
//! both storage adapters apply the same way, with the events that describe them.

use std::time::Duration;

use serde_json::{Value, json};

use super::event::{EventDraft, EventKind};
use super::{AfterFailure, ExecutionStatus, Plan, Progress, TaskStatus};

/// One task whose status changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Change {
    pub position: usize,
    pub status: TaskStatus,
}

/// What one step of an execution changed.
#[derive(Clone, Debug, PartialEq)]
pub struct Settled {
    /// The tasks whose status changed, in plan order.
    pub changes: Vec<Change>,
    /// The execution's status afterwards.
    pub status: ExecutionStatus,
    /// When the attempted task goes back to ready, the wait before it may run again.
    pub retry_after: Option<Duration>,
    /// The events that describe the step, in order.
    pub events: Vec<EventDraft>,
    /// The execution's failure message, when this step failed it for good (the first one
    /// is kept: a store writes it only where none is stored).
    pub error: Option<String>,
    /// The changed tasks start over (a retry): their start time, output and error go, and
    /// so does the execution's error and end time.
    pub reset: bool,
}

impl Settled {
    /// Whether any task became ready (so workers should be woken).
    pub fn readied(&self) -> bool {
        self.changes.iter().any(|c| c.status == TaskStatus::Ready)
    }
}

/// How an attempt ended, as the rules need it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attempt {
    Succeeded,
    /// Failed or timed out; the text says how.
    Failed(String),
}

/// An execution's failure message: which task failed for good, after how many attempts, and why.
pub fn failure_message(task: &str, attempts: u32, reason: &str) -> String {
    format!("task '{task}' failed after {attempts} attempt(s): {reason}")
}

fn changes(before: &Progress, after: &Progress) -> Vec<Change> {
    (0..after.status.len())
        .filter(|&i| before.status[i] != after.status[i])
        .map(|i| Change { position: i, status: after.status[i] })
        .collect()
}

impl Plan {
    fn task_name(&self, position: usize) -> Option<String> {
        self.tasks.get(position).map(|t| t.id.to_string())
    }

    /// Events for tasks that became ready, skipped or cancelled as a consequence, and for the
    /// execution's end.
    fn consequence_events(
        &self,
        changed: &[Change],
        skip: Option<usize>,
        before: ExecutionStatus,
        after: ExecutionStatus,
    ) -> Vec<EventDraft> {
        let mut events: Vec<EventDraft> = changed
            .iter()
            .filter(|c| Some(c.position) != skip)
            .map(|c| EventDraft::new(EventKind::task_became(c.status), self.task_name(c.position), json!({})))
            .collect();
        if after != before
            && let Some(ended) = EventKind::execution_ended(after)
        {
            events.push(EventDraft::new(ended, None, json!({})));
        }
        events
    }

    /// Records how attempt `attempt` of the running task `task` ended.
    pub fn settle(&self, p: &mut Progress, task: usize, attempt: &Attempt) -> Settled {
        let before = p.clone();
        let status_before = self.status(p);
        let mut retry_after = None;
        let mut error = None;
        let mut events = Vec::new();
        let name = self.task_name(task);
        let number = p.attempts.get(task).copied().unwrap_or(0);
        match attempt {
            Attempt::Succeeded => {
                self.succeed(p, task);
                events.push(EventDraft::new(EventKind::TaskSucceeded, name, json!({"attempt": number})));
            }
            Attempt::Failed(reason) => match self.fail(p, task) {
                AfterFailure::Retry { after } => {
                    retry_after = Some(after);
                    events.push(EventDraft::new(
                        EventKind::TaskRetrying,
                        name,
                        json!({"attempt": number, "error": reason, "retry_in_ms": after.as_millis() as u64}),
                    ));
                }
                AfterFailure::Failed { .. } => {
                    error = Some(failure_message(name.as_deref().unwrap_or_default(), number, reason));
                    events.push(EventDraft::new(
                        EventKind::TaskFailed,
                        name,
                        json!({"attempt": number, "error": reason}),
                    ));
                }
            },
        }
        let changed = changes(&before, p);
        let status = self.status(p);
        events.extend(self.consequence_events(&changed, Some(task), status_before, status));
        Settled { changes: changed, status, retry_after, events, error, reset: false }
    }

    /// Cancels every task that has not finished.
    pub fn settle_cancel(&self, p: &mut Progress) -> Settled {
        let before = p.clone();
        let status_before = self.status(p);
        self.cancel(p);
        let changed = changes(&before, p);
        let status = self.status(p);
        let events = self.consequence_events(&changed, None, status_before, status);
        Settled { changes: changed, status, retry_after: None, events, error: None, reset: false }
    }

    /// Runs a finished execution's unsuccessful tasks again: every task that did not succeed
    /// starts over (attempts back to 0), ready if what it depends on succeeded, else waiting.
    /// Succeeded tasks keep their outputs and are not run again.
    pub fn settle_retry(&self, p: &mut Progress) -> Settled {
        let before = p.clone();
        for i in 0..self.tasks.len() {
            if p.status[i] != TaskStatus::Succeeded {
                p.attempts[i] = 0;
                let deps_done = self.tasks[i].deps.iter().all(|&d| p.status[d] == TaskStatus::Succeeded);
                p.status[i] = if deps_done { TaskStatus::Ready } else { TaskStatus::Waiting };
            }
        }
        let changed = changes(&before, p);
        let status = self.status(p);
        let mut events = vec![EventDraft::new(EventKind::ExecutionRetried, None, json!({"tasks": changed.len()}))];
        events.extend(
            changed
                .iter()
                .filter(|c| c.status == TaskStatus::Ready)
                .map(|c| EventDraft::new(EventKind::TaskReady, self.task_name(c.position), json!({}))),
        );
        Settled { changes: changed, status, retry_after: None, events, error: None, reset: true }
    }

    /// The context after every task: the initial one with every output merged in, in plan
    /// order.
    pub fn result(
        &self,
        initial: &serde_json::Map<String, Value>,
        outputs: &[Option<serde_json::Map<String, Value>>],
    ) -> serde_json::Map<String, Value> {
        let mut context = initial.clone();
        for out in outputs.iter().flatten() {
            for (k, v) in out {
                context.insert(k.clone(), v.clone());
            }
        }
        context
    }
}
