//! The `ExecutionStore` contract: executions accepted, cancelled, retried, listed, paged and
//! pruned the same way on every backend; and the helpers the queue's contract (`queue.rs`)
//! shares.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use cloacina_domain::TenantName;
use cloacina_domain::execution::{
    Attempt, AttemptReport, ClaimedTask, ExecutionCreated, ExecutionId, ExecutionQuery, ExecutionRecord,
    ExecutionStatus, NewExecution, Plan, Recorded, TaskStatus, Transition,
};
use cloacina_domain::package::{Manifest, NewPackage, PackageConflict, PackageDeleted, PackageStored};
use cloacina_domain::ports::{Lookup, StoreError};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::Store;
use crate::noted;

pub(crate) const LEASE: Duration = Duration::from_secs(30);

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap()
}

pub fn secs(n: i64) -> chrono::Duration {
    chrono::Duration::seconds(n)
}

/// Uploads a package whose workflow `pipe` is `a` → `b`, with `retries` for `a` (a fixed
/// 10 s delay); returns the plan and the package id.
pub(crate) async fn setup(store: &Store, retries: u32) -> (Plan, Uuid) {
    let text = format!(
        "[package]\nname = \"pkg\"\nversion = \"1.0.0\"\n[[workflow]]\nname = \"pipe\"\n\
         [[workflow.task]]\nid = \"a\"\ncommand = [\"sh\", \"a.sh\"]\nretries = {retries}\nbackoff = \"fixed\"\nretry_delay = \"10s\"\n\
         [[workflow.task]]\nid = \"b\"\ncommand = [\"sh\", \"b.sh\"]\ndepends_on = [\"a\"]\nenv = {{ K = \"v\" }}\n"
    );
    let manifest = Manifest::parse(&text).unwrap();
    let plan = Plan::of(&manifest.workflows[0]);
    let new = NewPackage {
        id: Uuid::new_v4(),
        manifest,
        manifest_text: text,
        archive: crate::spool(b"archive"),
        size_bytes: 7,
        content_hash: "ab".repeat(32),
        uploaded_at: t0(),
        uploaded_by: None,
        signature: None,
    };
    let Some(PackageStored::Created(rec)) = store.store_package(&TenantName::public(), &new, &noted()).await.unwrap()
    else {
        panic!("stored")
    };
    (plan, rec.id)
}

pub(crate) fn new_execution(plan: &Plan, package: Uuid, at: DateTime<Utc>, key: Option<&str>) -> NewExecution {
    NewExecution {
        id: ExecutionId::from_uuid(Uuid::new_v4()),
        workflow: "pipe".into(),
        package_id: package,
        package_version: "1.0.0".into(),
        plan: plan.clone(),
        context: json!({"rows": 3}).as_object().cloned().unwrap(),
        origin: "api".into(),
        idempotency_key: key.map(str::to_owned),
        created_at: at,
        created_by: None,
        fired: None,
    }
}

pub(crate) async fn create(store: &Store, new: &NewExecution) -> ExecutionRecord {
    match store.create_execution(&TenantName::public(), new, &noted()).await.unwrap() {
        Some(ExecutionCreated::Created(r)) => r,
        other => panic!("not created: {other:?}"),
    }
}

pub(crate) async fn claim(store: &Store, worker: &str, at: DateTime<Utc>, limit: usize) -> Vec<ClaimedTask> {
    store.claim(&TenantName::public(), worker, at, LEASE, limit).await.unwrap()
}

pub(crate) fn report(task: &ClaimedTask, outcome: Attempt, output: Option<Value>) -> AttemptReport {
    AttemptReport {
        key: task.key,
        attempt: task.attempt,
        outcome,
        output: output.and_then(|o| o.as_object().cloned()),
        stdout: format!("out of {} #{}", task.task_id, task.attempt),
        stderr: String::new(),
        truncated: false,
    }
}

/// One report at a time, through the batch call.
pub(crate) trait RecordOne {
    async fn record_one(
        &self,
        tenant: &TenantName,
        worker: &str,
        report: &AttemptReport,
        at: DateTime<Utc>,
    ) -> Result<Recorded, StoreError>;
}

impl RecordOne for Store {
    async fn record_one(
        &self,
        tenant: &TenantName,
        worker: &str,
        report: &AttemptReport,
        at: DateTime<Utc>,
    ) -> Result<Recorded, StoreError> {
        let mut v = self.record(tenant, worker, vec![report.clone()], at).await?;
        assert_eq!(v.len(), 1);
        Ok(v.remove(0))
    }
}

pub(crate) async fn finish(store: &Store, worker: &str, r: AttemptReport, at: DateTime<Utc>) -> Recorded {
    store.record_one(&TenantName::public(), worker, &r, at).await.unwrap()
}

pub(crate) async fn statuses(store: &Store, id: ExecutionId) -> Vec<TaskStatus> {
    let tasks = store.execution_tasks(&TenantName::public(), id).await.unwrap().into_found().unwrap();
    tasks.iter().map(|t| t.status).collect()
}

pub(crate) async fn get(store: &Store, id: ExecutionId) -> ExecutionRecord {
    store.get_execution(&TenantName::public(), id).await.unwrap().into_found().unwrap()
}

pub async fn an_execution_is_stored_with_its_tasks_and_a_repeated_key_returns_the_first(store: Store) {
    let (plan, package) = setup(&store, 0).await;
    let first = new_execution(&plan, package, t0(), Some("nightly-2026-06-01"));
    let rec = create(&store, &first).await;
    assert_eq!((rec.status, rec.workflow.as_str(), rec.origin.as_str()), (ExecutionStatus::Pending, "pipe", "api"));
    assert_eq!(rec.context, first.context);
    assert_eq!(rec.idempotency_key.as_deref(), Some("nightly-2026-06-01"));
    assert_eq!(statuses(&store, first.id).await, [TaskStatus::Ready, TaskStatus::Waiting]);
    let repeat = new_execution(&plan, package, t0() + secs(5), Some("nightly-2026-06-01"));
    match store.create_execution(&TenantName::public(), &repeat, &noted()).await.unwrap() {
        Some(ExecutionCreated::Existing(r)) => assert_eq!(r.id, first.id),
        other => panic!("expected the first execution: {other:?}"),
    }
    assert_eq!(store.get_execution(&TenantName::public(), repeat.id).await.unwrap(), Lookup::Missing);
    let stranger = TenantName::parse("nobody-here").unwrap();
    assert!(store.create_execution(&stranger, &repeat, &noted()).await.unwrap().is_none());
    assert_eq!(store.get_execution(&stranger, first.id).await.unwrap(), Lookup::NoTenant);
    let events = store.execution_events(&TenantName::public(), first.id, 0, 100).await.unwrap().into_found().unwrap();
    assert_eq!(events.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(), ["execution_created"]);
}

pub async fn a_paused_workflow_and_a_vanished_package_accept_nothing(store: Store) {
    let public = TenantName::public();
    let (plan, package) = setup(&store, 0).await;
    assert!(matches!(store.set_paused(&public, "pipe", true, t0(), &noted()).await.unwrap(), Lookup::Found(_)));
    let new = new_execution(&plan, package, t0(), None);
    assert_eq!(store.create_execution(&public, &new, &noted()).await.unwrap(), Some(ExecutionCreated::Paused));
    assert!(matches!(store.set_paused(&public, "pipe", false, t0(), &noted()).await.unwrap(), Lookup::Found(_)));
    let elsewhere = NewExecution { package_id: Uuid::new_v4(), ..new.clone() };
    assert_eq!(store.create_execution(&public, &elsewhere, &noted()).await.unwrap(), Some(ExecutionCreated::Gone));
    let page = store.list_executions(&public, &ExecutionQuery { limit: 10, ..Default::default() }).await.unwrap();
    assert_eq!(page.unwrap().total, 0);
}

pub async fn cancel_stops_what_has_not_finished_and_refuses_a_finished_execution(store: Store) {
    let public = TenantName::public();
    let (plan, package) = setup(&store, 0).await;
    let new = new_execution(&plan, package, t0(), None);
    create(&store, &new).await;
    let running = claim(&store, "w", t0(), 1).await.remove(0);
    let Some(Transition::Done(e)) = store.cancel_execution(&public, new.id, t0() + secs(2), &noted()).await.unwrap()
    else {
        panic!("cancelled")
    };
    assert_eq!((e.status, e.finished_at), (ExecutionStatus::Cancelled, Some(t0() + secs(2))));
    assert_eq!(statuses(&store, new.id).await, [TaskStatus::Cancelled, TaskStatus::Cancelled]);
    assert!(store.renew(&public, "w", vec![running.key], t0() + secs(60)).await.unwrap().is_empty(), "lease gone");
    let late = report(&running, Attempt::Succeeded, None);
    assert_eq!(store.record_one(&public, "w", &late, t0() + secs(3)).await.unwrap(), Recorded::Stale);
    assert!(matches!(
        store.cancel_execution(&public, new.id, t0() + secs(4), &noted()).await.unwrap(),
        Some(Transition::Refused(e)) if e.status == ExecutionStatus::Cancelled
    ));
    let unknown = ExecutionId::from_uuid(Uuid::new_v4());
    assert_eq!(store.cancel_execution(&public, unknown, t0(), &noted()).await.unwrap(), Some(Transition::NotFound));
}

pub async fn retry_runs_the_unsuccessful_tasks_again_and_keeps_what_succeeded(store: Store) {
    let public = TenantName::public();
    let (plan, package) = setup(&store, 0).await;
    let new = new_execution(&plan, package, t0(), None);
    create(&store, &new).await;
    assert!(matches!(
        store.retry_execution(&public, new.id, t0(), &noted()).await.unwrap(),
        Some(Transition::Refused(e)) if e.status == ExecutionStatus::Pending
    ));
    let a = claim(&store, "w", t0(), 1).await.remove(0);
    store
        .record_one(&public, "w", &report(&a, Attempt::Succeeded, Some(json!({"x": 1}))), t0() + secs(1))
        .await
        .unwrap();
    let b = claim(&store, "w", t0() + secs(1), 1).await.remove(0);
    store.record_one(&public, "w", &report(&b, Attempt::Failed("boom".into()), None), t0() + secs(2)).await.unwrap();
    assert_eq!(get(&store, new.id).await.status, ExecutionStatus::Failed);
    let Some(Transition::Done(e)) = store.retry_execution(&public, new.id, t0() + secs(3), &noted()).await.unwrap()
    else {
        panic!("retried")
    };
    assert_eq!((e.status, e.error, e.finished_at), (ExecutionStatus::Running, None, None));
    assert_eq!(statuses(&store, new.id).await, [TaskStatus::Succeeded, TaskStatus::Ready]);
    let tasks = store.execution_tasks(&public, new.id).await.unwrap().into_found().unwrap();
    assert_eq!((tasks[1].error.as_deref(), tasks[1].started_at, tasks[1].attempts), (None, None, 0), "b starts over");
    assert!(tasks[0].output.is_some(), "a keeps its output");
    let b2 = claim(&store, "w", t0() + secs(3), 1).await.remove(0);
    assert_eq!((b2.task_id.as_str(), b2.attempt), ("b", 1));
    assert_eq!(b2.context.get("x"), Some(&json!(1)), "the kept output still flows downstream");
    store.record_one(&public, "w", &report(&b2, Attempt::Succeeded, None), t0() + secs(4)).await.unwrap();
    assert_eq!(get(&store, new.id).await.status, ExecutionStatus::Succeeded);
    let logs = store.task_logs(&public, new.id, "b").await.unwrap().into_found().unwrap();
    assert_eq!(logs.len(), 2, "both runs' logs are kept");
}

pub async fn listing_filters_by_status_and_workflow_and_pages_newest_first_with_a_total(store: Store) {
    let public = TenantName::public();
    let (plan, package) = setup(&store, 0).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let new = new_execution(&plan, package, t0() + secs(i), None);
        create(&store, &new).await;
        ids.push(new.id);
    }
    store.cancel_execution(&public, ids[1], t0() + secs(10), &noted()).await.unwrap();
    let q = |status, workflow: Option<&str>, limit, offset| ExecutionQuery {
        status,
        workflow: workflow.map(str::to_owned),
        trigger: None,
        limit,
        offset,
    };
    let page = store.list_executions(&public, &q(None, None, 2, 0)).await.unwrap().unwrap();
    assert_eq!(page.total, 5);
    assert_eq!(page.executions.iter().map(|e| e.id).collect::<Vec<_>>(), [ids[4], ids[3]]);
    let page = store.list_executions(&public, &q(None, None, 2, 4)).await.unwrap().unwrap();
    assert_eq!((page.total, page.executions.len()), (5, 1));
    let cancelled = store.list_executions(&public, &q(Some(ExecutionStatus::Cancelled), None, 10, 0)).await.unwrap();
    assert_eq!(cancelled.unwrap().executions.iter().map(|e| e.id).collect::<Vec<_>>(), [ids[1]]);
    let other = store.list_executions(&public, &q(None, Some("other"), 10, 0)).await.unwrap().unwrap();
    assert_eq!(other.total, 0);
    let pipe = store.list_executions(&public, &q(Some(ExecutionStatus::Pending), Some("pipe"), 10, 0)).await.unwrap();
    assert_eq!(pipe.unwrap().total, 4);
}

pub async fn events_page_after_an_id(store: Store) {
    let public = TenantName::public();
    let (plan, package) = setup(&store, 0).await;
    let new = new_execution(&plan, package, t0(), None);
    create(&store, &new).await;
    let a = claim(&store, "w", t0(), 1).await.remove(0);
    store.record_one(&public, "w", &report(&a, Attempt::Succeeded, None), t0() + secs(1)).await.unwrap();
    let all = store.execution_events(&public, new.id, 0, 100).await.unwrap().into_found().unwrap();
    assert_eq!(all.len(), 4);
    assert!(all.windows(2).all(|w| w[0].id < w[1].id));
    let first_two = store.execution_events(&public, new.id, 0, 2).await.unwrap().into_found().unwrap();
    assert_eq!(first_two, all[..2]);
    let rest = store.execution_events(&public, new.id, first_two[1].id, 100).await.unwrap().into_found().unwrap();
    assert_eq!(rest, all[2..]);
    let unknown = ExecutionId::from_uuid(Uuid::new_v4());
    assert_eq!(store.execution_events(&public, unknown, 0, 10).await.unwrap(), Lookup::Missing);
}

pub async fn pruning_deletes_only_executions_finished_before_the_cutoff(store: Store) {
    let public = TenantName::public();
    let (plan, package) = setup(&store, 0).await;
    let old = new_execution(&plan, package, t0(), None);
    let recent = new_execution(&plan, package, t0(), None);
    let open = new_execution(&plan, package, t0(), None);
    for e in [&old, &recent, &open] {
        create(&store, e).await;
    }
    store.cancel_execution(&public, old.id, t0() + secs(10), &noted()).await.unwrap();
    store.cancel_execution(&public, recent.id, t0() + secs(100), &noted()).await.unwrap();
    assert_eq!(store.prune_executions(&public, t0() + secs(50)).await.unwrap(), 1);
    assert_eq!(store.get_execution(&public, old.id).await.unwrap(), Lookup::Missing);
    assert_eq!(store.execution_tasks(&public, old.id).await.unwrap(), Lookup::Missing);
    assert!(matches!(store.get_execution(&public, recent.id).await.unwrap(), Lookup::Found(_)));
    assert!(matches!(store.get_execution(&public, open.id).await.unwrap(), Lookup::Found(_)));
}

pub async fn a_package_version_in_use_by_an_unfinished_execution_cannot_be_deleted(store: Store) {
    let public = TenantName::public();
    let (plan, package) = setup(&store, 0).await;
    let new = new_execution(&plan, package, t0(), None);
    create(&store, &new).await;
    let refused = store.delete_package(&public, "pkg", "1.0.0", t0(), &noted()).await;
    assert!(
        matches!(&refused, Ok(Lookup::Found(PackageDeleted::Refused(PackageConflict::InUse { executions: 1, .. })))),
        "{refused:?}"
    );
    store.cancel_execution(&public, new.id, t0(), &noted()).await.unwrap();
    assert!(matches!(
        store.delete_package(&public, "pkg", "1.0.0", t0(), &noted()).await.unwrap(),
        Lookup::Found(PackageDeleted::Deleted(_))
    ));
    assert!(matches!(store.get_execution(&public, new.id).await.unwrap(), Lookup::Found(_)), "history stays");
}
