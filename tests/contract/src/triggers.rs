//! The `TriggerStore` contract: triggers put in force with their package version, and the
//! scheduler's passes firing each scheduled time once, on every backend.

use chrono::{DateTime, Utc};
use cloacina_domain::TenantName;
use cloacina_domain::execution::{ExecutionStatus, TaskStatus};
use cloacina_domain::package::{Manifest, NewPackage, PackageConflict, PackageDeleted, PackageStored};
use cloacina_domain::ports::{FirePass, Lookup};
use cloacina_domain::trigger::{FireOutcome, TriggerRecord, fire_key};
use uuid::Uuid;

use crate::Store;
use crate::executions::{get, secs, statuses, t0};
use crate::noted;

/// A package `name` `version` whose workflow `wf` has one task and these trigger tables.
pub fn package(name: &str, version: &str, triggers: &[&str]) -> NewPackage {
    let mut text = format!(
        "[package]\nname = \"{name}\"\nversion = \"{version}\"\n[[workflow]]\nname = \"wf-{name}\"\n\
         [[workflow.task]]\nid = \"a\"\ncommand = [\"true\"]\n"
    );
    for t in triggers {
        text.push_str(&format!("[[workflow.trigger]]\n{t}\n"));
    }
    NewPackage {
        id: Uuid::new_v4(),
        manifest: Manifest::parse(&text).unwrap(),
        manifest_text: text,
        archive: crate::spool(b"archive"),
        size_bytes: 7,
        content_hash: format!("{name}-{version}-{}", triggers.len()),
        uploaded_at: t0(),
        uploaded_by: None,
        signature: None,
    }
}

async fn upload(store: &Store, p: &NewPackage) -> PackageStored {
    store.store_package(&TenantName::public(), p, &noted()).await.unwrap().unwrap()
}

async fn names(store: &Store) -> Vec<String> {
    let page = store.list_triggers(&TenantName::public(), 100, 0).await.unwrap().unwrap();
    assert_eq!(page.total as usize, page.items.len());
    page.items.iter().map(|t| t.name().to_owned()).collect()
}

async fn trigger(store: &Store, name: &str) -> TriggerRecord {
    store.get_trigger(&TenantName::public(), name).await.unwrap().into_found().unwrap()
}

async fn pass(store: &Store, at: DateTime<Utc>) -> FirePass {
    store.fire_due(&TenantName::public(), at, 100).await.unwrap().unwrap()
}

const EVERY_10S: &str = "name = \"every\"\ncron = \"*/10 * * * * *\"\noverlap = \"allow\"";

pub async fn an_uploaded_versions_triggers_are_in_force_and_a_newer_version_replaces_them(store: Store) {
    let public = TenantName::public();
    let v1 = package("etl", "1.0.0", &[EVERY_10S, "name = \"gone\"\ncron = \"0 2 * * *\""]);
    assert!(matches!(upload(&store, &v1).await, PackageStored::Created(_)));
    assert_eq!(names(&store).await, ["every", "gone"]);
    let every = trigger(&store, "every").await;
    assert_eq!((every.workflow.as_str(), every.package_name.as_str()), ("wf-etl", "etl"));
    assert_eq!(every.next_fire_at, Some(t0() + secs(10)), "first due after the upload");
    assert_eq!(every.def.overlap.as_str(), "allow");
    store.set_trigger_paused(&public, "every", true, t0() + secs(1), &noted()).await.unwrap().into_found().unwrap();

    let v2 = package("etl", "2.0.0", &[EVERY_10S, "name = \"new\"\ncron = \"* * * * *\""]);
    assert!(matches!(upload(&store, &v2).await, PackageStored::Created(_)));
    assert_eq!(names(&store).await, ["every", "new"], "the newer version's triggers replace the older's");
    let kept = trigger(&store, "every").await;
    assert!(kept.paused, "a kept trigger keeps its pause");
    assert_eq!(kept.created_at, every.created_at);

    let Lookup::Found(PackageDeleted::Deleted(_)) =
        store.delete_package(&public, "etl", "2.0.0", t0() + secs(2), &noted()).await.unwrap()
    else {
        panic!("deleted")
    };
    assert_eq!(names(&store).await, ["every", "gone"], "deleting the version in force brings back the older's");
    store.delete_package(&public, "etl", "1.0.0", t0() + secs(3), &noted()).await.unwrap().into_found().unwrap();
    assert_eq!(names(&store).await, Vec::<String>::new(), "no version left, no trigger left");
    assert!(matches!(store.get_trigger(&public, "every").await.unwrap(), Lookup::Missing));
    assert!(matches!(
        store.get_trigger(&TenantName::parse("nobody").unwrap(), "every").await.unwrap(),
        Lookup::NoTenant
    ));
}

pub async fn a_trigger_name_belongs_to_one_package(store: Store) {
    upload(&store, &package("etl", "1.0.0", &[EVERY_10S])).await;
    let theirs = upload(&store, &package("other", "1.0.0", &[EVERY_10S])).await;
    assert!(
        matches!(&theirs, PackageStored::Refused(PackageConflict::TriggerTaken { trigger, owner }) if trigger == "every" && owner == "etl"),
        "{theirs:?}"
    );
    let packages = store.list_packages(&TenantName::public()).await.unwrap().unwrap();
    assert_eq!(packages.len(), 1, "the refused upload stored nothing");
}

pub async fn a_due_trigger_fires_once_per_scheduled_time_and_the_schedule_moves_on(store: Store) {
    upload(&store, &package("etl", "1.0.0", &[EVERY_10S])).await;
    let idle = store.due_trigger_tenants(t0() + secs(9)).await.unwrap();
    assert_eq!((idle.tenants.len(), idle.next), (0, Some(t0() + secs(10))), "nothing due yet, and when it will be");
    assert_eq!(pass(&store, t0() + secs(9)).await.started, []);

    let due = store.due_trigger_tenants(t0() + secs(10)).await.unwrap();
    assert_eq!(due.tenants, [TenantName::public()]);
    let first = pass(&store, t0() + secs(10)).await;
    assert_eq!(first.started.len(), 1);
    let fired = &first.started[0];
    assert_eq!((fired.scheduled_at, fired.outcome), (t0() + secs(10), FireOutcome::Fired));
    let e = get(&store, fired.execution).await;
    assert_eq!(e.origin, "trigger:every");
    assert_eq!(e.workflow, "wf-etl");
    assert_eq!(e.idempotency_key.as_deref(), Some(fire_key("every", t0() + secs(10)).as_str()));
    let f = e.fired.clone().unwrap();
    assert_eq!((f.trigger.as_str(), f.scheduled_at), ("every", t0() + secs(10)));
    assert_eq!(statuses(&store, e.id).await, [TaskStatus::Ready], "the fired execution's tasks are queued");

    assert_eq!(pass(&store, t0() + secs(10)).await.started, [], "the same time never fires twice");
    let t = trigger(&store, "every").await;
    assert_eq!((t.next_fire_at, t.last_fire_at, t.counts.fired), (Some(t0() + secs(20)), Some(t0() + secs(10)), 1));
    let after = store.due_trigger_tenants(t0() + secs(11)).await.unwrap();
    assert_eq!((after.tenants.len(), after.next), (0, Some(t0() + secs(20))));
}

pub async fn concurrent_passes_fire_each_scheduled_time_once(store: Store) {
    let all = "name = \"every\"\ncron = \"*/10 * * * * *\"\noverlap = \"allow\"\ncatchup = \"all\"";
    upload(&store, &package("etl", "1.0.0", &[all])).await;
    let at = t0() + secs(60);
    let passes: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.fire_due(&TenantName::public(), at, 100).await.unwrap().unwrap() })
        })
        .collect();
    let mut times = Vec::new();
    for p in passes {
        times.extend(p.await.unwrap().started.into_iter().map(|s| s.scheduled_at));
    }
    times.sort();
    let expected: Vec<_> = (1..=6).map(|i| t0() + secs(10 * i)).collect();
    assert_eq!(times, expected, "each of 12:00:10 to 12:01:00 once, whichever pass took it");
    let page = store
        .list_executions(
            &TenantName::public(),
            &cloacina_domain::execution::ExecutionQuery {
                trigger: Some("every".into()),
                limit: 100,
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(page.total, 6);
}

pub async fn overlap_skip_and_cancel_other_meet_an_unfinished_execution(store: Store) {
    let skip = "name = \"skipper\"\ncron = \"*/10 * * * * *\"";
    upload(&store, &package("one", "1.0.0", &[skip])).await;
    let cancel = "name = \"canceller\"\ncron = \"*/10 * * * * *\"\noverlap = \"cancel_other\"";
    upload(&store, &package("two", "1.0.0", &[cancel])).await;

    let first = pass(&store, t0() + secs(10)).await;
    assert_eq!(first.started.len(), 2);
    let second = pass(&store, t0() + secs(20)).await;
    assert_eq!(second.counts.skipped_overlap, 1, "skip: the unfinished one stays alone");
    assert_eq!(second.cancelled, 1);
    assert_eq!(second.started.len(), 1);
    assert_eq!(second.started[0].trigger, "canceller");
    let old = first.started.iter().find(|s| s.trigger == "canceller").unwrap();
    assert_eq!(get(&store, old.execution).await.status, ExecutionStatus::Cancelled, "cancel_other cancelled it");
    assert_eq!(trigger(&store, "skipper").await.counts.skipped_overlap, 1);
}

pub async fn a_paused_workflow_counts_each_skip_and_a_paused_trigger_resumes_from_then(store: Store) {
    let public = TenantName::public();
    upload(&store, &package("etl", "1.0.0", &[EVERY_10S])).await;
    store.set_paused(&public, "wf-etl", true, t0() + secs(1), &noted()).await.unwrap().into_found().unwrap();
    let skipped = pass(&store, t0() + secs(10)).await;
    assert_eq!((skipped.started.len(), skipped.counts.skipped_paused), (0, 1));
    store.set_paused(&public, "wf-etl", false, t0() + secs(11), &noted()).await.unwrap().into_found().unwrap();

    let paused = store
        .set_trigger_paused(&public, "every", true, t0() + secs(12), &noted())
        .await
        .unwrap()
        .into_found()
        .unwrap();
    assert!(paused.paused && paused.paused_at == Some(t0() + secs(12)));
    assert_eq!(store.due_trigger_tenants(t0() + secs(100)).await.unwrap().next, None, "a paused trigger is never due");
    assert_eq!(pass(&store, t0() + secs(45)).await.started, []);
    let resumed = store
        .set_trigger_paused(&public, "every", false, t0() + secs(45), &noted())
        .await
        .unwrap()
        .into_found()
        .unwrap();
    assert_eq!(resumed.next_fire_at, Some(t0() + secs(50)), "what came due while paused is not caught up");
    assert_eq!(resumed.counts.skipped_paused, 1);
    assert!(matches!(store.set_trigger_paused(&public, "nope", true, t0(), &noted()).await.unwrap(), Lookup::Missing));
}
