//! The `TaskQueue` contract: ready tasks claimed once, outcomes recorded (alone and in
//! batches, stale ones skipped), retries after their delay, leases that expire or are given
//! back, and the tenants with work due, the same way on every backend.

use cloacina_domain::TenantName;
use cloacina_domain::execution::{Attempt, ExecutionStatus, OutputPiece, Recorded, TaskLog, TaskStatus};
use serde_json::{Value, json};

use crate::Store;
use crate::executions::{RecordOne as _, claim, create, finish, get, new_execution, report, secs, setup, statuses, t0};
use crate::noted;

pub async fn a_ready_task_is_claimed_once_and_its_success_readies_the_next_with_the_merged_context(store: Store) {
    let (plan, package) = setup(&store, 0).await;
    let new = new_execution(&plan, package, t0(), None);
    create(&store, &new).await;
    let (one, two) = tokio::join!(claim(&store, "w1", t0() + secs(1), 10), claim(&store, "w2", t0() + secs(1), 10));
    assert_eq!(one.len() + two.len(), 1, "one ready task, claimed once: {one:?} {two:?}");
    let (worker, task) = if one.is_empty() { ("w2", two[0].clone()) } else { ("w1", one[0].clone()) };
    assert_eq!((task.task_id.as_str(), task.attempt, task.command.clone()), ("a", 1, vec!["sh".into(), "a.sh".into()]));
    assert_eq!(task.context, new.context);
    assert_eq!(get(&store, new.id).await.status, ExecutionStatus::Running);
    assert!(claim(&store, "w3", t0() + secs(2), 10).await.is_empty(), "b waits for a");
    let out = json!({"doubled": 6});
    assert_eq!(
        finish(&store, worker, report(&task, Attempt::Succeeded, Some(out)), t0() + secs(3)).await,
        Recorded::Done { readied: true }
    );
    let next = claim(&store, "w3", t0() + secs(4), 10).await;
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].task_id, "b");
    assert_eq!(next[0].env.get("K").map(String::as_str), Some("v"));
    assert_eq!(Value::Object(next[0].context.clone()), json!({"rows": 3, "doubled": 6}));
    assert_eq!(
        finish(&store, "w3", report(&next[0], Attempt::Succeeded, None), t0() + secs(5)).await,
        Recorded::Done { readied: false }
    );
    let e = get(&store, new.id).await;
    assert_eq!(e.status, ExecutionStatus::Succeeded);
    assert_eq!(e.finished_at, Some(t0() + secs(5)));
    let tasks = store.execution_tasks(&TenantName::public(), new.id).await.unwrap().into_found().unwrap();
    assert_eq!(tasks[0].output.clone().map(Value::Object), Some(json!({"doubled": 6})));
    let logs = store.task_logs(&TenantName::public(), new.id, "a").await.unwrap().into_found().unwrap();
    assert_eq!(logs.len(), 1);
    assert_eq!((logs[0].attempt, logs[0].stdout.as_str()), (1, "out of a #1"));
    let kinds: Vec<String> = store
        .execution_events(&TenantName::public(), new.id, 0, 100)
        .await
        .unwrap()
        .into_found()
        .unwrap()
        .into_iter()
        .map(|e| e.kind.as_str().to_owned())
        .collect();
    assert_eq!(
        kinds,
        [
            "execution_created",
            "task_started",
            "task_succeeded",
            "task_ready",
            "task_started",
            "task_succeeded",
            "execution_succeeded"
        ]
    );
    // The same report again changes nothing.
    assert_eq!(finish(&store, "w3", report(&next[0], Attempt::Succeeded, None), t0() + secs(6)).await, Recorded::Stale);
}

/// A running attempt's output is kept in pieces as it comes, readable before the attempt ends;
/// its outcome adds the last piece and its end. A piece for an execution that is gone is not
/// kept.
pub async fn a_running_attempts_output_is_kept_in_pieces_before_and_with_its_outcome(store: Store) {
    let public = TenantName::public();
    let (plan, package) = setup(&store, 0).await;
    let new = new_execution(&plan, package, t0(), None);
    create(&store, &new).await;
    let task = claim(&store, "w1", t0() + secs(1), 10).await.remove(0);
    let piece = |stdout: &str, stderr: &str, ended| OutputPiece {
        key: task.key,
        task_id: task.task_id.clone(),
        attempt: task.attempt,
        stdout: stdout.into(),
        stderr: stderr.into(),
        truncated: false,
        ended,
    };
    store.append_output(&public, piece("one\n", "", false), t0() + secs(2)).await.unwrap();
    store.append_output(&public, piece("", "warn ünïcode\n", false), t0() + secs(3)).await.unwrap();
    let pieces = store.task_logs(&public, new.id, "a").await.unwrap().into_found().unwrap();
    assert_eq!(pieces.len(), 2, "{pieces:?}");
    let running = TaskLog::merge(pieces);
    assert_eq!(running.len(), 1);
    assert_eq!((running[0].stdout.as_str(), running[0].stderr.as_str()), ("one\n", "warn ünïcode\n"));
    assert!(!running[0].ended, "still running");
    assert_eq!(running[0].at, t0() + secs(3));
    assert_eq!(
        finish(&store, "w1", report(&task, Attempt::Succeeded, None), t0() + secs(4)).await,
        Recorded::Done { readied: true }
    );
    let ended = TaskLog::merge(store.task_logs(&public, new.id, "a").await.unwrap().into_found().unwrap());
    assert_eq!(ended.len(), 1);
    assert_eq!((ended[0].stdout.as_str(), ended[0].ended), ("one\nout of a #1", true));
    // An execution that is not there keeps nothing.
    let mut stray = piece("lost", "", true);
    stray.key.execution_id = cloacina_domain::execution::ExecutionId::from_uuid(uuid::Uuid::from_u128(7));
    store.append_output(&public, stray.clone(), t0() + secs(5)).await.unwrap();
    assert!(store.task_logs(&public, stray.key.execution_id, "a").await.unwrap().into_found().is_none());
}

pub async fn a_claim_carries_the_tenants_task_network_as_it_is_when_claimed(store: Store) {
    use cloacina_domain::{Setting, TaskNetwork, TenantChange};
    let (plan, package) = setup(&store, 0).await;
    create(&store, &new_execution(&plan, package, t0(), None)).await;
    let first = claim(&store, "w", t0(), 1).await;
    assert_eq!(first[0].network, None, "no setting: the deployment's");
    store.record_one(&TenantName::public(), "w", &report(&first[0], Attempt::Succeeded, None), t0()).await.unwrap();
    let change = TenantChange { task_network: Setting::Set(TaskNetwork::Host), ..TenantChange::default() };
    store.update_tenant(&TenantName::public(), &change, &noted()).await.unwrap();
    let second = claim(&store, "w", t0() + secs(1), 1).await;
    assert_eq!((second[0].task_id.as_str(), second[0].network), ("b", Some(TaskNetwork::Host)));
}

pub async fn a_failure_is_retried_after_its_delay_then_fails_the_execution_and_skips_what_depends_on_it(store: Store) {
    let public = TenantName::public();
    let (plan, package) = setup(&store, 1).await;
    let new = new_execution(&plan, package, t0(), None);
    create(&store, &new).await;
    let first = claim(&store, "w", t0(), 1).await.remove(0);
    let failed = report(&first, Attempt::Failed("exited with status 3".into()), None);
    assert_eq!(
        store.record_one(&public, "w", &failed, t0() + secs(1)).await.unwrap(),
        Recorded::Done { readied: true }
    );
    assert_eq!(statuses(&store, new.id).await, [TaskStatus::Ready, TaskStatus::Waiting]);
    assert!(claim(&store, "w", t0() + secs(5), 1).await.is_empty(), "not before the retry delay");
    let due = store.due_tenants(t0() + secs(5)).await.unwrap();
    assert!(due.tenants.is_empty(), "{due:?}");
    assert_eq!(due.next, Some(t0() + secs(11)));
    assert_eq!(store.due_tenants(t0() + secs(11)).await.unwrap().tenants, std::slice::from_ref(&public));
    let second = claim(&store, "w", t0() + secs(11), 1).await.remove(0);
    assert_eq!(second.attempt, 2);
    let failed = report(&second, Attempt::Failed("timed out after 1s".into()), None);
    assert_eq!(
        store.record_one(&public, "w", &failed, t0() + secs(12)).await.unwrap(),
        Recorded::Done { readied: false }
    );
    assert_eq!(statuses(&store, new.id).await, [TaskStatus::Failed, TaskStatus::Skipped]);
    let e = get(&store, new.id).await;
    assert_eq!(e.status, ExecutionStatus::Failed);
    assert_eq!(e.error.as_deref(), Some("task 'a' failed after 2 attempt(s): timed out after 1s"));
    let logs = store.task_logs(&public, new.id, "a").await.unwrap().into_found().unwrap();
    assert_eq!(logs.iter().map(|l| l.attempt).collect::<Vec<_>>(), [1, 2]);
    assert!(store.task_logs(&public, new.id, "b").await.unwrap().into_found().unwrap().is_empty());
}

pub async fn an_expired_lease_makes_the_task_ready_again_and_its_old_holder_stale(store: Store) {
    let public = TenantName::public();
    let (plan, package) = setup(&store, 0).await;
    let new = new_execution(&plan, package, t0(), None);
    create(&store, &new).await;
    let lost = claim(&store, "dead", t0(), 1).await.remove(0);
    assert_eq!(store.due_tenants(t0() + secs(10)).await.unwrap().next, Some(t0() + secs(30)), "the lease's end");
    let held = store.renew(&public, "dead", vec![lost.key], t0() + secs(40)).await.unwrap();
    assert_eq!(held, [lost.key]);
    assert!(store.renew(&public, "other", vec![lost.key], t0() + secs(90)).await.unwrap().is_empty());
    assert!(claim(&store, "alive", t0() + secs(35), 1).await.is_empty(), "renewed until 40 s");
    let again = claim(&store, "alive", t0() + secs(41), 1).await;
    assert_eq!(again.len(), 1, "the expired lease was taken over");
    assert_eq!((again[0].key, again[0].attempt), (lost.key, 1), "the lost attempt does not count");
    let late = report(&lost, Attempt::Succeeded, None);
    assert_eq!(store.record_one(&public, "dead", &late, t0() + secs(42)).await.unwrap(), Recorded::Stale);
    let on_time = report(&again[0], Attempt::Succeeded, None);
    assert_eq!(
        store.record_one(&public, "alive", &on_time, t0() + secs(43)).await.unwrap(),
        Recorded::Done { readied: true }
    );
    let kinds: Vec<String> = store
        .execution_events(&public, new.id, 0, 100)
        .await
        .unwrap()
        .into_found()
        .unwrap()
        .into_iter()
        .map(|e| e.kind.as_str().to_owned())
        .collect();
    assert!(kinds.contains(&"task_lease_expired".to_owned()), "{kinds:?}");
}

pub async fn released_attempts_are_ready_again_at_once(store: Store) {
    let public = TenantName::public();
    let (plan, package) = setup(&store, 0).await;
    create(&store, &new_execution(&plan, package, t0(), None)).await;
    let task = claim(&store, "stopping", t0(), 1).await.remove(0);
    store.release(&public, "stopping", vec![task.key], t0() + secs(1)).await.unwrap();
    let again = claim(&store, "next", t0() + secs(1), 1).await;
    assert_eq!((again[0].key, again[0].attempt), (task.key, 1));
}

pub async fn no_work_means_no_tenant_is_due(store: Store) {
    let due = store.due_tenants(t0()).await.unwrap();
    assert!(due.tenants.is_empty() && due.next.is_none(), "{due:?}");
    let (plan, package) = setup(&store, 0).await;
    let new = new_execution(&plan, package, t0(), None);
    create(&store, &new).await;
    assert_eq!(store.due_tenants(t0()).await.unwrap().tenants, [TenantName::public()]);
    let a = claim(&store, "w", t0(), 5).await.remove(0);
    store.record_one(&TenantName::public(), "w", &report(&a, Attempt::Succeeded, None), t0()).await.unwrap();
    let b = claim(&store, "w", t0(), 5).await.remove(0);
    store.record_one(&TenantName::public(), "w", &report(&b, Attempt::Succeeded, None), t0()).await.unwrap();
    assert!(claim(&store, "w", t0(), 5).await.is_empty());
    let due = store.due_tenants(t0() + secs(1)).await.unwrap();
    assert!(due.tenants.is_empty() && due.next.is_none(), "all done: {due:?}");
}

pub async fn a_batch_records_each_outcome_in_order_and_skips_stale_reports(store: Store) {
    let public = TenantName::public();
    let (plan, package) = setup(&store, 0).await;
    let (one, two) = (new_execution(&plan, package, t0(), None), new_execution(&plan, package, t0(), None));
    create(&store, &one).await;
    create(&store, &two).await;
    let claimed = claim(&store, "w", t0(), 10).await;
    assert_eq!(claimed.len(), 2);
    let first = claimed.iter().find(|c| c.key.execution_id == one.id).unwrap();
    let second = claimed.iter().find(|c| c.key.execution_id == two.id).unwrap();
    let batch = vec![
        report(first, Attempt::Succeeded, Some(json!({"k": 1}))),
        report(second, Attempt::Failed("boom".into()), None),
        report(first, Attempt::Succeeded, None),
    ];
    let recorded = store.record(&public, "w", batch, t0() + secs(1)).await.unwrap();
    assert_eq!(recorded, [Recorded::Done { readied: true }, Recorded::Done { readied: false }, Recorded::Stale]);
    assert_eq!(statuses(&store, one.id).await, [TaskStatus::Succeeded, TaskStatus::Ready]);
    assert_eq!(statuses(&store, two.id).await, [TaskStatus::Failed, TaskStatus::Skipped]);
    assert_eq!(get(&store, two.id).await.error.as_deref(), Some("task 'a' failed after 1 attempt(s): boom"));
    let next = claim(&store, "w", t0() + secs(2), 10).await;
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].context.get("k"), Some(&json!(1)));
    let empty = store.record(&public, "w", Vec::new(), t0()).await.unwrap();
    assert!(empty.is_empty());
}
