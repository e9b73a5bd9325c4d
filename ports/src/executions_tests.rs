//! Execute, cancel and retry rules against mocks of the ports: who may, what a paused
//! workflow or a reused idempotency key answers, and that refusals touch no store.

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use cloacina_domain::execution::{ExecutionCreated, ExecutionId, ExecutionRecord, ExecutionStatus, Transition};
use cloacina_domain::package::StoredManifest;
use cloacina_domain::ports::{
    Lookup, MockExecutionStore, MockKeyGenerator, MockKeyStore, MockPackageStore, MockWorkflowStore,
};
use cloacina_domain::{Authority, Denied, Principal, Role, TenantName, WorkflowSummary};
use serde_json::Map;
use uuid::Uuid;

use crate::authenticate::tests::{deps, hasher_never, minted, record};
use crate::{ExecutionError, Executions};

const MANIFEST: &str = "[package]\nname = \"p\"\nversion = \"1.0.0\"\n[[workflow]]\nname = \"nightly\"\n\
    [[workflow.task]]\nid = \"a\"\ncommand = [\"true\"]\n[[workflow.task]]\nid = \"b\"\ncommand = [\"true\"]\ndepends_on = [\"a\"]\n";

fn public() -> TenantName {
    TenantName::public()
}

fn caller(role: Role) -> Principal {
    record(&minted(1), Authority::Tenant { tenant: public(), role }).principal()
}

fn summary() -> WorkflowSummary {
    WorkflowSummary {
        name: "nightly".into(),
        package_name: "p".into(),
        version: "1.0.0".into(),
        description: None,
        tasks: vec!["a".into(), "b".into()],
        paused: false,
        updated_at: Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap(),
        package_id: Uuid::nil(),
        created_at: Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap(),
    }
}

fn execution(id: ExecutionId, workflow: &str, status: ExecutionStatus) -> ExecutionRecord {
    ExecutionRecord {
        id,
        workflow: workflow.into(),
        package_id: Uuid::nil(),
        package_version: "1.0.0".into(),
        status,
        context: Map::new(),
        error: None,
        origin: "api".into(),
        idempotency_key: Some("k".into()),
        created_at: Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap(),
        started_at: None,
        finished_at: None,
        created_by: None,
        fired: None,
    }
}

/// A service whose workflow `nightly` is in force at `p 1.0.0`, storing with `store`.
fn service(store: MockExecutionStore) -> Executions {
    let mut d = deps(MockKeyStore::new(), hasher_never(), 0);
    let mut keygen = MockKeyGenerator::new();
    keygen.expect_key_id().returning(|| minted(9).id());
    d.keygen = Arc::new(keygen);
    let mut workflows = MockWorkflowStore::new();
    workflows.expect_get_workflow().returning(|_, name| Ok(Lookup::from_option((name == "nightly").then(summary))));
    let mut packages = MockPackageStore::new();
    packages
        .expect_package_manifest()
        .returning(|_, _, _| Ok(Lookup::Found(StoredManifest { id: Uuid::nil(), manifest: MANIFEST.into() })));
    Executions::new(d, Arc::new(workflows), Arc::new(packages), Arc::new(store))
}

#[tokio::test]
async fn execute_freezes_the_workflows_plan_into_the_new_execution() {
    let mut store = MockExecutionStore::new();
    store.expect_create_execution().times(1).returning(|_, new, _| {
        assert_eq!(new.plan.tasks.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(new.plan.tasks[1].deps, [0]);
        assert_eq!((new.origin.as_str(), new.package_version.as_str()), ("api", "1.0.0"));
        assert_eq!(new.created_by, Some(minted(1).id()));
        Ok(Some(ExecutionCreated::Created(execution(new.id, &new.workflow, ExecutionStatus::Pending))))
    });
    let accepted = service(store).execute(&caller(Role::Write), &public(), "nightly", Map::new(), None).await.unwrap();
    assert!(!accepted.replayed);
    assert_eq!(accepted.execution.id, ExecutionId::from_uuid(minted(9).id().as_uuid()));
}

#[tokio::test]
async fn a_read_key_may_not_execute_and_nothing_is_looked_up() {
    let mut store = MockExecutionStore::new();
    store.expect_create_execution().never();
    let err = service(store).execute(&caller(Role::Read), &public(), "nightly", Map::new(), None).await.unwrap_err();
    assert!(matches!(err, ExecutionError::Denied(Denied::InsufficientRole { needed: Role::Write })), "{err:?}");
}

#[tokio::test]
async fn a_paused_workflow_and_an_unknown_one_are_refused() {
    let mut store = MockExecutionStore::new();
    store.expect_create_execution().returning(|_, _, _| Ok(Some(ExecutionCreated::Paused)));
    let s = service(store);
    let err = s.execute(&caller(Role::Write), &public(), "nightly", Map::new(), None).await.unwrap_err();
    assert!(matches!(err, ExecutionError::Paused(ref w) if w == "nightly"), "{err:?}");
    let err = s.execute(&caller(Role::Write), &public(), "weekly", Map::new(), None).await.unwrap_err();
    assert!(matches!(err, ExecutionError::NoSuchWorkflow(ref w) if w == "weekly"), "{err:?}");
}

#[tokio::test]
async fn a_repeated_idempotency_key_returns_the_first_execution_and_another_workflows_is_a_conflict() {
    let first = ExecutionId::from_uuid(Uuid::from_u128(7));
    let mut store = MockExecutionStore::new();
    store.expect_create_execution().times(1).returning(move |_, _, _| {
        Ok(Some(ExecutionCreated::Existing(execution(first, "nightly", ExecutionStatus::Running))))
    });
    let accepted =
        service(store).execute(&caller(Role::Write), &public(), "nightly", Map::new(), Some("k".into())).await.unwrap();
    assert!(accepted.replayed);
    assert_eq!(accepted.execution.id, first);

    let mut store = MockExecutionStore::new();
    store.expect_create_execution().returning(move |_, _, _| {
        Ok(Some(ExecutionCreated::Existing(execution(first, "other", ExecutionStatus::Running))))
    });
    let err = service(store)
        .execute(&caller(Role::Write), &public(), "nightly", Map::new(), Some("k".into()))
        .await
        .unwrap_err();
    assert!(matches!(err, ExecutionError::IdempotencyKeyReused(id, ref w) if id == first && w == "other"), "{err:?}");
}

#[tokio::test]
async fn a_malformed_idempotency_key_is_refused_before_any_lookup() {
    let mut store = MockExecutionStore::new();
    store.expect_create_execution().never();
    let s = service(store);
    // `cloacina:` keys are the scheduled fires' own (one per trigger and scheduled time).
    for bad in ["", "has space", &"x".repeat(256), "naïve", "cloacina:trigger:nightly:1780000000"] {
        let err =
            s.execute(&caller(Role::Write), &public(), "nightly", Map::new(), Some(bad.into())).await.unwrap_err();
        assert!(matches!(err, ExecutionError::BadIdempotencyKey), "{bad:?}: {err:?}");
    }
}

#[tokio::test]
async fn cancel_and_retry_need_write_and_a_refused_transition_names_the_status() {
    let id = ExecutionId::from_uuid(Uuid::from_u128(3));
    let mut store = MockExecutionStore::new();
    store.expect_cancel_execution().times(1).returning(move |_, _, _, _| {
        Ok(Some(Transition::Refused(execution(id, "nightly", ExecutionStatus::Succeeded))))
    });
    store.expect_retry_execution().times(1).returning(|_, _, _, _| Ok(Some(Transition::NotFound)));
    let s = service(store);
    assert!(matches!(s.cancel(&caller(Role::Read), &public(), id).await, Err(ExecutionError::Denied(_))));
    let err = s.cancel(&caller(Role::Write), &public(), id).await.unwrap_err();
    assert!(matches!(err, ExecutionError::WrongState(ref m) if m.contains("succeeded")), "{err:?}");
    assert!(
        matches!(s.retry(&caller(Role::Write), &public(), id).await, Err(ExecutionError::NoSuchExecution(x)) if x == id)
    );
}
