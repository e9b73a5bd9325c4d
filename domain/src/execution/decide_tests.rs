//! The decisions the storage adapters hand over: a report's hold, what recording it
//! changes, the execution's failure message, and which commands a status allows.

use serde_json::json;

use super::*;
use crate::package::Manifest;

/// first → second, the second with one retry.
fn plan() -> Plan {
    let text = r#"[package]
name = "p"
version = "1.0.0"
[[workflow]]
name = "w"
[[workflow.task]]
id = "first"
command = ["true"]
[[workflow.task]]
id = "second"
command = ["true"]
depends_on = ["first"]
retries = 1
"#;
    Plan::of(&Manifest::parse(text).unwrap().workflows[0])
}

fn report(position: usize, attempt: u32, outcome: Attempt) -> AttemptReport {
    AttemptReport {
        key: TaskKey { execution_id: ExecutionId::from_uuid(uuid::Uuid::nil()), position },
        attempt,
        outcome,
        output: Some(json!({"rows": 3}).as_object().unwrap().clone()),
        stdout: String::new(),
        stderr: String::new(),
        truncated: false,
    }
}

#[test]
fn a_report_holds_its_task_only_while_running_on_its_attempt_under_its_workers_lease() {
    let r = report(0, 2, Attempt::Succeeded);
    let held = Hold { status: TaskStatus::Running, attempts: 2, owner: Some("w1") };
    assert!(r.holds("w1", held));
    assert!(!r.holds("w2", held), "another worker's lease");
    assert!(!r.holds("w1", Hold { attempts: 3, ..held }), "claimed again since");
    assert!(!r.holds("w1", Hold { owner: None, ..held }), "given back");
    for status in TaskStatus::ALL.into_iter().filter(|s| *s != TaskStatus::Running) {
        assert!(!r.holds("w1", Hold { status, ..held }), "{status:?}");
    }
}

#[test]
fn recording_a_success_keeps_its_output_and_readies_what_depends_on_it() {
    let plan = plan();
    let mut p = plan.start();
    assert!(plan.claim(&mut p, 0));
    let rec = plan.record(&mut p, &report(0, 1, Attempt::Succeeded));
    assert_eq!(rec.task, "first");
    assert_eq!(rec.output, Some(json!({"rows": 3}).as_object().unwrap().clone()));
    assert_eq!(rec.error, None);
    assert_eq!(rec.settled.error, None);
    assert!(rec.settled.readied() && !rec.settled.reset);
    let kinds: Vec<_> = rec.settled.events.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, [EventKind::TaskSucceeded, EventKind::TaskReady]);
}

#[test]
fn only_the_last_failed_attempt_fails_the_execution_with_a_message_naming_task_attempts_and_cause() {
    let plan = plan();
    let mut p = plan.start();
    plan.claim(&mut p, 0);
    plan.record(&mut p, &report(0, 1, Attempt::Succeeded));
    plan.claim(&mut p, 1);
    let first = plan.record(&mut p, &report(1, 1, Attempt::Failed("exit 3".into())));
    assert_eq!(first.settled.error, None, "a retry is coming");
    assert_eq!(first.error.as_deref(), Some("exit 3"));
    assert_eq!(first.output, None, "a failure stores no output");
    assert_eq!(first.settled.events[0].kind, EventKind::TaskRetrying);
    plan.claim(&mut p, 1);
    let last = plan.record(&mut p, &report(1, 2, Attempt::Failed("exit 4".into())));
    assert_eq!(last.settled.error.as_deref(), Some("task 'second' failed after 2 attempt(s): exit 4"));
    assert_eq!(last.settled.status, ExecutionStatus::Failed);
    let kinds: Vec<_> = last.settled.events.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, [EventKind::TaskFailed, EventKind::ExecutionFailed]);
}

#[test]
fn cancel_is_allowed_until_the_end_and_retry_only_after_a_failure_or_cancel() {
    use ExecutionStatus::*;
    let cancel: Vec<_> = ExecutionStatus::ALL.into_iter().filter(|s| Command::Cancel.allowed_from(*s)).collect();
    assert_eq!(cancel, [Pending, Running]);
    let retry: Vec<_> = ExecutionStatus::ALL.into_iter().filter(|s| Command::Retry.allowed_from(*s)).collect();
    assert_eq!(retry, [Failed, Cancelled]);
}

#[test]
fn a_refused_command_changes_nothing_and_an_allowed_one_says_whether_tasks_start_over() {
    let plan = plan();
    let mut p = plan.start();
    let before = p.clone();
    assert_eq!(plan.command(Command::Retry, ExecutionStatus::Pending, &mut p), None);
    assert_eq!(p, before);
    let cancel = plan.command(Command::Cancel, ExecutionStatus::Pending, &mut p).unwrap();
    assert_eq!(cancel.status, ExecutionStatus::Cancelled);
    assert!(!cancel.reset);
    assert_eq!(cancel.events.last().map(|e| e.kind), Some(EventKind::ExecutionCancelled));
    let retry = plan.command(Command::Retry, ExecutionStatus::Cancelled, &mut p).unwrap();
    assert!(retry.reset, "a retried task keeps nothing of its earlier runs but its logs");
    assert_eq!(retry.events[0].kind, EventKind::ExecutionRetried);
    assert_eq!(p.status, [TaskStatus::Ready, TaskStatus::Waiting]);
}
