use super::*;
use crate::package::Manifest;
use proptest::prelude::*;
use serde_json::json;

/// extract → (transform, audit) → load, where load needs transform only.
fn plan(retries: u32) -> Plan {
    let text = format!(
        r#"[package]
name = "p"
version = "1.0.0"
[[workflow]]
name = "w"
[[workflow.task]]
id = "extract"
command = ["true"]
[[workflow.task]]
id = "transform"
command = ["true"]
depends_on = ["extract"]
retries = {retries}
backoff = "fixed"
retry_delay = "2s"
[[workflow.task]]
id = "audit"
command = ["true"]
depends_on = ["extract"]
[[workflow.task]]
id = "load"
command = ["true"]
depends_on = ["transform"]
"#
    );
    Plan::of(&Manifest::parse(&text).unwrap().workflows[0])
}

const EXTRACT: usize = 0;
const TRANSFORM: usize = 1;
const AUDIT: usize = 2;
const LOAD: usize = 3;

#[test]
fn a_run_where_everything_succeeds_readies_tasks_as_their_dependencies_finish() {
    let plan = plan(0);
    let mut p = plan.start();
    assert_eq!(p.status, [TaskStatus::Ready, TaskStatus::Waiting, TaskStatus::Waiting, TaskStatus::Waiting]);
    assert_eq!(plan.status(&p), ExecutionStatus::Pending);
    assert!(!plan.claim(&mut p, TRANSFORM), "a waiting task cannot be claimed");
    assert!(plan.claim(&mut p, EXTRACT));
    assert_eq!(plan.status(&p), ExecutionStatus::Running);
    assert_eq!(plan.succeed(&mut p, EXTRACT), vec![TRANSFORM, AUDIT]);
    assert!(plan.claim(&mut p, AUDIT) && plan.claim(&mut p, TRANSFORM));
    assert_eq!(plan.succeed(&mut p, TRANSFORM), vec![LOAD]);
    assert!(plan.succeed(&mut p, AUDIT).is_empty());
    assert!(plan.claim(&mut p, LOAD));
    plan.succeed(&mut p, LOAD);
    assert_eq!(plan.status(&p), ExecutionStatus::Succeeded);
}

#[test]
fn a_failure_retries_with_its_delay_then_fails_the_execution_and_skips_what_depends_on_it() {
    let plan = plan(1);
    let mut p = plan.start();
    plan.claim(&mut p, EXTRACT);
    plan.succeed(&mut p, EXTRACT);
    plan.claim(&mut p, TRANSFORM);
    assert_eq!(plan.fail(&mut p, TRANSFORM), AfterFailure::Retry { after: Duration::from_secs(2) });
    assert_eq!(p.status[TRANSFORM], TaskStatus::Ready);
    plan.claim(&mut p, TRANSFORM);
    assert_eq!(p.attempts[TRANSFORM], 2);
    assert_eq!(plan.fail(&mut p, TRANSFORM), AfterFailure::Failed { skipped: vec![LOAD] });
    assert_eq!(plan.status(&p), ExecutionStatus::Running, "audit, independent, still runs");
    plan.claim(&mut p, AUDIT);
    plan.succeed(&mut p, AUDIT);
    assert_eq!(plan.status(&p), ExecutionStatus::Failed);
    assert_eq!(p.status[LOAD], TaskStatus::Skipped);
}

#[test]
fn cancelling_stops_everything_unfinished() {
    let plan = plan(0);
    let mut p = plan.start();
    plan.claim(&mut p, EXTRACT);
    plan.succeed(&mut p, EXTRACT);
    plan.claim(&mut p, AUDIT);
    assert_eq!(plan.cancel(&mut p), vec![TRANSFORM, AUDIT, LOAD]);
    assert_eq!(plan.status(&p), ExecutionStatus::Cancelled);
    assert!(plan.succeed(&mut p, AUDIT).is_empty(), "a late success changes nothing");
    assert_eq!(p.status[AUDIT], TaskStatus::Cancelled);
}

#[test]
fn a_task_receives_the_initial_context_with_its_ancestors_outputs_later_ones_winning() {
    let plan = plan(0);
    let initial = json!({"date": "2026-06-01", "rows": 0}).as_object().cloned().unwrap();
    let out = |v: serde_json::Value| v.as_object().cloned();
    let outputs =
        vec![out(json!({"rows": 3, "source": "s3"})), out(json!({"rows": 6})), out(json!({"audited": true})), None];
    let for_load = plan.context_for(LOAD, &initial, &outputs);
    assert_eq!(serde_json::Value::Object(for_load), json!({"date": "2026-06-01", "rows": 6, "source": "s3"}));
    let for_audit = plan.context_for(AUDIT, &initial, &outputs);
    assert_eq!(for_audit["rows"], json!(3), "audit does not see transform's output");
    assert_eq!(plan.context_for(EXTRACT, &initial, &outputs), initial);
}

proptest! {
    /// Random DAGs driven by random outcomes always end, never run a task before its
    /// dependencies succeeded, and skip exactly the tasks downstream of a failure.
    #[test]
    fn every_run_ends_and_keeps_the_rules(
        edges in proptest::collection::vec((0usize..8, 0usize..8), 0..20),
        outcomes in proptest::collection::vec(any::<bool>(), 64),
        retries in 0u32..3,
    ) {
        let n = 8;
        let mut deps: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (a, b) in edges {
            let (hi, lo) = (a.max(b), a.min(b));
            if hi != lo && !deps[hi].contains(&lo) { deps[hi].push(lo); }
        }
        let policy = RetryPolicy { retries, backoff: crate::package::Backoff::Fixed, delay: Duration::from_secs(1), max_delay: Duration::from_secs(1) };
        let plan = Plan { tasks: (0..n).map(|i| PlannedTask {
            id: TaskId::parse(&format!("t{i}")).unwrap(), command: vec!["true".into()], env: Default::default(), secrets: Default::default(), deps: deps[i].clone(), retry: policy, timeout: Duration::from_secs(1), limits: Default::default(),
        }).collect() };
        let mut p = plan.start();
        let mut flips = outcomes.into_iter().cycle();
        for _ in 0..(n * 10) {
            let Some(t) = (0..n).find(|&i| p.status[i] == TaskStatus::Ready) else { break };
            prop_assert!(plan.tasks[t].deps.iter().all(|&d| p.status[d] == TaskStatus::Succeeded));
            prop_assert!(plan.claim(&mut p, t));
            if flips.next().unwrap_or(true) { plan.succeed(&mut p, t); } else { plan.fail(&mut p, t); }
        }
        let status = plan.status(&p);
        prop_assert!(status.is_terminal(), "{:?}", p.status);
        for i in 0..n {
            match p.status[i] {
                TaskStatus::Skipped => prop_assert!(plan.ancestors(i).iter().any(|&a| p.status[a] == TaskStatus::Failed)),
                TaskStatus::Failed => prop_assert_eq!(p.attempts[i], retries + 1),
                TaskStatus::Succeeded => {}
                other => prop_assert!(false, "task {} ended {:?}", i, other),
            }
        }
        prop_assert_eq!(status == ExecutionStatus::Succeeded, p.status.iter().all(|s| *s == TaskStatus::Succeeded));
    }
}
