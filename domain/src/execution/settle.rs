//! What recording an attempt, a cancel or a retry changes, as one list of row changes that
//! both storage adapters apply the same way, with the events that describe them.

use std::time::Duration;

use serde_json::{Value, json};

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
}

impl Settled {
    /// Whether any task became ready (so workers should be woken).
    pub fn readied(&self) -> bool {
        self.changes.iter().any(|c| c.status == TaskStatus::Ready)
    }
}

/// An event to store: its kind, the task it concerns, and what else is worth knowing.
#[derive(Clone, Debug, PartialEq)]
pub struct EventDraft {
    pub kind: String,
    pub task: Option<String>,
    pub detail: Value,
}

impl EventDraft {
    pub fn new(kind: impl Into<String>, task: Option<String>, detail: Value) -> Self {
        Self { kind: kind.into(), task, detail }
    }
}

/// How an attempt ended, as the rules need it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attempt {
    Succeeded,
    /// Failed or timed out; the text says how.
    Failed(String),
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
            .map(|c| EventDraft::new(format!("task_{}", c.status.as_str()), self.task_name(c.position), json!({})))
            .collect();
        if after != before && after.is_terminal() {
            events.push(EventDraft::new(format!("execution_{}", after.as_str()), None, json!({})));
        }
        events
    }

    /// Records how attempt `attempt` of the running task `task` ended.
    pub fn settle(&self, p: &mut Progress, task: usize, attempt: &Attempt) -> Settled {
        let before = p.clone();
        let status_before = self.status(p);
        let mut retry_after = None;
        let mut events = Vec::new();
        let name = self.task_name(task);
        let number = p.attempts.get(task).copied().unwrap_or(0);
        match attempt {
            Attempt::Succeeded => {
                self.succeed(p, task);
                events.push(EventDraft::new("task_succeeded", name, json!({"attempt": number})));
            }
            Attempt::Failed(reason) => match self.fail(p, task) {
                AfterFailure::Retry { after } => {
                    retry_after = Some(after);
                    events.push(EventDraft::new(
                        "task_retrying",
                        name,
                        json!({"attempt": number, "error": reason, "retry_in_ms": after.as_millis() as u64}),
                    ));
                }
                AfterFailure::Failed { .. } => {
                    events.push(EventDraft::new("task_failed", name, json!({"attempt": number, "error": reason})));
                }
            },
        }
        let changed = changes(&before, p);
        let status = self.status(p);
        events.extend(self.consequence_events(&changed, Some(task), status_before, status));
        Settled { changes: changed, status, retry_after, events }
    }

    /// Cancels every task that has not finished.
    pub fn settle_cancel(&self, p: &mut Progress) -> Settled {
        let before = p.clone();
        let status_before = self.status(p);
        self.cancel(p);
        let changed = changes(&before, p);
        let status = self.status(p);
        let events = self.consequence_events(&changed, None, status_before, status);
        Settled { changes: changed, status, retry_after: None, events }
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
        let mut events = vec![EventDraft::new("execution_retried", None, json!({"tasks": changed.len()}))];
        events.extend(
            changed
                .iter()
                .filter(|c| c.status == TaskStatus::Ready)
                .map(|c| EventDraft::new("task_ready", self.task_name(c.position), json!({}))),
        );
        Settled { changes: changed, status, retry_after: None, events }
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
