//! The `PackageStore` contract (and what it does to `WorkflowStore`).

use chrono::{TimeZone, Utc};
use cloacina_domain::TenantName;
use cloacina_domain::package::{Manifest, NewPackage, PackageConflict, PackageDeleted, PackageRecord, PackageStored};
use cloacina_domain::ports::{Lookup, StoreError};
use uuid::Uuid;

use crate::Store;
use crate::noted;

fn manifest(name: &str, version: &str, workflows: &[&str]) -> String {
    let mut text = format!("[package]\nname = \"{name}\"\nversion = \"{version}\"\n");
    for w in workflows {
        text.push_str(&format!(
            "[[workflow]]\nname = \"{w}\"\n[[workflow.task]]\nid = \"a\"\ncommand = [\"true\"]\n\
             [[workflow.task]]\nid = \"b\"\ncommand = [\"true\"]\ndepends_on = [\"a\"]\n"
        ));
    }
    text
}

fn upload(name: &str, version: &str, workflows: &[&str], content: &str) -> NewPackage {
    let text = manifest(name, version, workflows);
    NewPackage {
        id: Uuid::new_v4(),
        manifest: Manifest::parse(&text).unwrap(),
        manifest_text: text,
        archive: crate::spool(content.as_bytes()),
        size_bytes: content.len() as u64,
        content_hash: format!("{:0>64}", content.len().to_string() + content),
        uploaded_at: Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap(),
        uploaded_by: None,
        signature: None,
    }
}

async fn versions_in_force(store: &Store) -> Vec<(String, String, String)> {
    store
        .list_workflows(&TenantName::public())
        .await
        .unwrap()
        .unwrap()
        .into_iter()
        .map(|w| (w.name, w.package_name, w.version))
        .collect()
}

pub async fn an_upload_is_stored_once_and_its_workflows_are_in_force(store: Store) {
    let public = TenantName::public();
    let first = upload("acme-etl", "1.0.0", &["nightly"], "bytes-1");
    let Some(PackageStored::Created(rec)) = store.store_package(&public, &first, &noted()).await.unwrap() else {
        panic!("created")
    };
    assert_eq!((rec.name.as_str(), rec.version.to_string(), rec.size_bytes), ("acme-etl", "1.0.0".into(), 7));
    assert_eq!(rec.workflows, ["nightly"]);
    let again = NewPackage { id: Uuid::new_v4(), ..first.clone() };
    assert!(
        matches!(store.store_package(&public, &again, &noted()).await.unwrap(), Some(PackageStored::Existing(r)) if r.id == first.id)
    );
    let listed = store.list_packages(&public).await.unwrap().unwrap();
    assert_eq!(listed, vec![rec.clone()]);
    let wf = store.list_workflows(&public).await.unwrap().unwrap();
    assert_eq!(wf.len(), 1);
    assert_eq!((wf[0].name.as_str(), wf[0].tasks.clone()), ("nightly", vec!["a".to_owned(), "b".to_owned()]));
    assert_eq!((wf[0].package_id, wf[0].created_at), (rec.id, rec.uploaded_at), "the version in force");
    let paused =
        store.set_paused(&public, "nightly", true, rec.uploaded_at + chrono::Duration::hours(1), &noted()).await;
    let paused = paused.unwrap().into_found().unwrap();
    assert_eq!((paused.package_id, paused.created_at, paused.paused), (rec.id, rec.uploaded_at, true));
    assert!(matches!(
        store.set_paused(&public, "nightly", false, rec.uploaded_at, &noted()).await.unwrap(),
        Lookup::Found(_)
    ));
    assert_eq!(store.list_packages(&TenantName::parse("nobody").unwrap()).await.unwrap(), None);
    assert_eq!(store.store_package(&TenantName::parse("nobody").unwrap(), &first, &noted()).await.unwrap(), None);
}

pub async fn the_same_bytes_uploaded_eight_times_at_once_are_eight_successes_and_one_copy(store: Store) {
    let public = TenantName::public();
    let uploads = (0..8).map(|_| {
        let store = store.clone();
        let new = NewPackage { id: Uuid::new_v4(), ..upload("acme-etl", "1.0.0", &["nightly"], "same bytes") };
        tokio::spawn(async move { store.store_package(&TenantName::public(), &new, &noted()).await })
    });
    let mut created = 0;
    for result in futures::future::join_all(uploads).await {
        match result.unwrap() {
            Ok(Some(PackageStored::Created(_))) => created += 1,
            Ok(Some(PackageStored::Existing(_))) => {}
            other => panic!("an upload of the same bytes failed: {other:?}"),
        }
    }
    assert_eq!(created, 1, "one upload stores them, the others find them");
    assert_eq!(store.list_packages(&public).await.unwrap().unwrap().len(), 1);
}

pub async fn versions_are_immutable_and_the_newest_is_in_force(store: Store) {
    let public = TenantName::public();
    store.store_package(&public, &upload("acme-etl", "1.0.0", &["nightly", "hourly"], "v1"), &noted()).await.unwrap();
    let clash = upload("acme-etl", "1.0.0", &["nightly"], "other bytes");
    assert!(matches!(
        store.store_package(&public, &clash, &noted()).await,
        Ok(Some(PackageStored::Refused(PackageConflict::VersionTaken { .. })))
    ));
    store.store_package(&public, &upload("acme-etl", "1.1.0", &["nightly"], "v11"), &noted()).await.unwrap();
    assert_eq!(
        versions_in_force(&store).await,
        vec![("nightly".into(), "acme-etl".into(), "1.1.0".into())],
        "1.1.0 supersedes 1.0.0 and drops 'hourly'"
    );
    store.store_package(&public, &upload("acme-etl", "0.9.0", &["nightly", "old"], "v09"), &noted()).await.unwrap();
    assert_eq!(
        versions_in_force(&store).await,
        vec![("nightly".into(), "acme-etl".into(), "1.1.0".into())],
        "an older upload changes nothing in force"
    );
    let names: Vec<String> =
        store.list_packages(&public).await.unwrap().unwrap().iter().map(|p| p.version.to_string()).collect();
    assert_eq!(names, ["1.1.0", "1.0.0", "0.9.0"]);
}

pub async fn a_workflow_name_belongs_to_one_package(store: Store) {
    let public = TenantName::public();
    store.store_package(&public, &upload("acme-etl", "1.0.0", &["nightly"], "a"), &noted()).await.unwrap();
    let rival = upload("other-pkg", "1.0.0", &["nightly"], "b");
    let refused = store.store_package(&public, &rival, &noted()).await.unwrap();
    assert!(
        matches!(&refused, Some(PackageStored::Refused(PackageConflict::WorkflowTaken { workflow, owner }))
            if workflow == "nightly" && owner == "acme-etl"),
        "{refused:?}"
    );
    assert_eq!(store.list_packages(&public).await.unwrap().unwrap().len(), 1, "the refused upload left nothing");
}

pub async fn a_workflow_is_found_paused_and_resumed_and_stays_paused_across_versions(store: Store) {
    let public = TenantName::public();
    let at = Utc.with_ymd_and_hms(2026, 6, 2, 8, 0, 0).unwrap();
    assert_eq!(store.get_workflow(&public, "nightly").await.unwrap(), Lookup::Missing);
    assert_eq!(store.set_paused(&public, "nightly", true, at, &noted()).await.unwrap(), Lookup::Missing);
    store.store_package(&public, &upload("acme-etl", "1.0.0", &["nightly"], "v1"), &noted()).await.unwrap();
    let paused = store.set_paused(&public, "nightly", true, at, &noted()).await.unwrap().into_found().unwrap();
    assert!(paused.paused);
    assert_eq!(paused.updated_at, at);
    store.store_package(&public, &upload("acme-etl", "2.0.0", &["nightly"], "v2"), &noted()).await.unwrap();
    let found = store.get_workflow(&public, "nightly").await.unwrap().into_found().unwrap();
    assert_eq!((found.version.as_str(), found.paused), ("2.0.0", true), "a new version keeps the pause");
    let resumed = store.set_paused(&public, "nightly", false, at, &noted()).await.unwrap().into_found().unwrap();
    assert!(!resumed.paused);
    assert_eq!(store.get_workflow(&TenantName::parse("nobody").unwrap(), "nightly").await.unwrap(), Lookup::NoTenant);
}

pub async fn deleting_the_version_in_force_falls_back_to_the_newest_left(store: Store) {
    let public = TenantName::public();
    let at = Utc.with_ymd_and_hms(2026, 6, 3, 8, 0, 0).unwrap();
    store.store_package(&public, &upload("acme-etl", "1.0.0", &["nightly", "hourly"], "v1"), &noted()).await.unwrap();
    store.store_package(&public, &upload("acme-etl", "1.1.0", &["nightly"], "v11"), &noted()).await.unwrap();
    store.store_package(&public, &upload("acme-etl", "0.5.0", &["nightly"], "v05"), &noted()).await.unwrap();
    assert!(matches!(store.set_paused(&public, "nightly", true, at, &noted()).await.unwrap(), Lookup::Found(_)));
    let gone = deleted(store.delete_package(&public, "acme-etl", "0.5.0", at, &noted()).await);
    assert_eq!(gone.version.to_string(), "0.5.0");
    assert_eq!(versions_in_force(&store).await, vec![("nightly".into(), "acme-etl".into(), "1.1.0".into())]);
    deleted(store.delete_package(&public, "acme-etl", "1.1.0", at, &noted()).await);
    assert_eq!(
        versions_in_force(&store).await,
        vec![
            ("hourly".into(), "acme-etl".into(), "1.0.0".into()),
            ("nightly".into(), "acme-etl".into(), "1.0.0".into())
        ],
        "1.0.0 is in force again, 'hourly' with it"
    );
    assert!(store.get_workflow(&public, "nightly").await.unwrap().into_found().unwrap().paused, "the pause is kept");
    deleted(store.delete_package(&public, "acme-etl", "1.0.0", at, &noted()).await);
    assert!(versions_in_force(&store).await.is_empty());
    assert_eq!(store.delete_package(&public, "acme-etl", "1.0.0", at, &noted()).await.unwrap(), Lookup::Missing);
    assert!(store.list_packages(&public).await.unwrap().unwrap().is_empty());
}

pub async fn an_archive_reads_back_whole_from_its_chunks_and_its_manifest_by_version(store: Store) {
    let public = TenantName::public();
    // Over two chunks' worth, not a whole number of them.
    let content: Vec<u8> = (0..(5 << 19) + 123).map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    let text = manifest("big", "1.0.0", &["w"]);
    let new = NewPackage {
        id: Uuid::new_v4(),
        manifest: Manifest::parse(&text).unwrap(),
        manifest_text: text.clone(),
        archive: crate::spool(&content),
        size_bytes: content.len() as u64,
        content_hash: "cd".repeat(32),
        uploaded_at: Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap(),
        uploaded_by: None,
        signature: None,
    };
    store.store_package(&public, &new, &noted()).await.unwrap();
    let back = store.package_archive(&public, new.id).await.unwrap().into_found().unwrap();
    assert_eq!(back.content_hash, "cd".repeat(32));
    assert!(back.bytes == content, "{} bytes back for {}", back.bytes.len(), content.len());
    assert_eq!(store.package_archive(&public, Uuid::new_v4()).await.unwrap(), Lookup::Missing);
    let m = store.package_manifest(&public, "big", "1.0.0").await.unwrap().into_found().unwrap();
    assert_eq!((m.id, m.manifest), (new.id, text));
    assert_eq!(store.package_manifest(&public, "big", "2.0.0").await.unwrap(), Lookup::Missing);
    let stranger = TenantName::parse("nobody-here").unwrap();
    assert_eq!(store.package_archive(&stranger, new.id).await.unwrap(), Lookup::NoTenant);
}

/// The row a delete that must succeed returns.
fn deleted(result: Result<Lookup<PackageDeleted>, StoreError>) -> PackageRecord {
    match result {
        Ok(Lookup::Found(PackageDeleted::Deleted(rec))) => rec,
        other => panic!("expected a deleted version, got {other:?}"),
    }
}
