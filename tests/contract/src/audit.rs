//! The `AuditStore` contract, and the audit rows every change's store method appends: one row
//! for each change that happens, none for one that does not, each chain verifying, listings
//! filtered and paged alike on every backend.
//!
//! What needs a backend's own access (breaking the audit insert, editing a row behind the
//! server's back) is in [`changes_fail_closed`] and [`tampering_is_found`], which each
//! adapter's tests call with its own means.

use std::future::Future;

use chrono::{DateTime, Utc};
use cloacina_domain::audit::{
    Actor, AuditAction, AuditEntry, AuditFilter, AuditRecord, ChainBreak, RequestOrigin, verify_chain,
};
use cloacina_domain::execution::{ExecutionCreated, Transition};
use cloacina_domain::package::{PackageDeleted, PackageStored};
use cloacina_domain::ports::{AuditPage, Chain, Lookup, RevokeOutcome, StoreError, TenantCreated, TenantDeleted};
use cloacina_domain::{
    ApiKeyId, Authority, KeyDigest, KeyName, NewKey, Role, Setting, StoredSecret, TenantChange, TenantName,
};
use uuid::Uuid;

use crate::Store;
use crate::executions::{new_execution, secs, setup, t0};
use crate::triggers::package;

/// A key of tenant `public` acting from a request.
fn actor() -> Actor {
    Actor { key_id: ApiKeyId::from_uuid(Uuid::from_u128(0xC1)), key_name: "ci".into() }
}

/// The entry a use case would make for `action` on `target` in `public`.
fn entry(action: AuditAction, target: &str, at: DateTime<Utc>) -> AuditEntry {
    let origin = RequestOrigin { request_id: Some(format!("req-{target}")), client: Some("192.0.2.7".into()) };
    AuditEntry::new(at, Some(actor()), Some(TenantName::public()), action, target, origin).with("n", 1)
}

async fn chain(store: &Store, chain: &Chain) -> AuditPage {
    chain_after(store, chain, 0).await
}

async fn chain_after(store: &Store, chain: &Chain, after: u64) -> AuditPage {
    let filter = AuditFilter { after: Some(after), ..AuditFilter::default() };
    store.list_audit(chain, &filter, 1000).await.unwrap().unwrap()
}

fn public() -> Chain {
    Chain::Tenant(TenantName::public())
}

fn actions(page: &AuditPage) -> Vec<&'static str> {
    page.items.iter().map(|r| r.entry.action.as_str()).collect()
}

fn tenant_key(n: u8) -> NewKey {
    NewKey {
        id: ApiKeyId::from_uuid(Uuid::from_bytes([n; 16])),
        name: KeyName::parse(&format!("audited-{n}")).unwrap(),
        authority: Authority::Tenant { tenant: TenantName::public(), role: Role::Write },
        secret: StoredSecret::Sha256(KeyDigest::from_bytes([n; 32])),
        created_at: t0(),
        created_by: None,
        expires_at: None,
    }
}

pub async fn every_change_leaves_one_row_in_its_chain_and_a_change_that_does_not_happen_none(store: Store) {
    let p = TenantName::public();
    let at = t0();
    let (plan, package_id) = setup(&store, 0).await;
    let start = chain(&store, &public()).await.head.seq;
    // Keys: created, revoked; a second revoke changes nothing.
    let key = tenant_key(9);
    store.insert(&key, &entry(AuditAction::KeyCreate, "key-9", at)).await.unwrap();
    assert!(matches!(
        store.revoke(key.id, at, &entry(AuditAction::KeyRevoke, "key-9", at)).await.unwrap(),
        RevokeOutcome::Revoked(_)
    ));
    assert!(matches!(
        store.revoke(key.id, at, &entry(AuditAction::KeyRevoke, "again", at)).await.unwrap(),
        RevokeOutcome::AlreadyRevoked(_)
    ));
    // A package with a trigger; the same bytes again store nothing.
    let pkg = package("audited", "1.0.0", &["name = \"nightly\"\ncron = \"0 2 * * *\""]);
    let upload = |target: &str| entry(AuditAction::PackageUpload, target, at);
    assert!(matches!(
        store.store_package(&p, &pkg, &upload("audited@1.0.0")).await.unwrap(),
        Some(PackageStored::Created(_))
    ));
    assert!(matches!(
        store.store_package(&p, &pkg, &upload("repeat")).await.unwrap(),
        Some(PackageStored::Existing(_))
    ));
    // Workflow and trigger pause and resume.
    for (paused, action) in [(true, AuditAction::WorkflowPause), (false, AuditAction::WorkflowResume)] {
        assert!(matches!(
            store.set_paused(&p, "wf-audited", paused, at, &entry(action, "wf-audited", at)).await.unwrap(),
            Lookup::Found(_)
        ));
    }
    assert!(matches!(
        store.set_paused(&p, "nothing", true, at, &entry(AuditAction::WorkflowPause, "nothing", at)).await.unwrap(),
        Lookup::Missing
    ));
    for (paused, action) in [(true, AuditAction::TriggerPause), (false, AuditAction::TriggerResume)] {
        assert!(matches!(
            store.set_trigger_paused(&p, "nightly", paused, at, &entry(action, "nightly", at)).await.unwrap(),
            Lookup::Found(_)
        ));
    }
    // An execution: created, replayed by its key (no row), cancelled, cancelled again (no
    // row: it had finished), retried.
    let new = new_execution(&plan, package_id, at + secs(1), Some("once"));
    let execute = |target: &str| entry(AuditAction::WorkflowExecute, target, at);
    assert!(matches!(
        store.create_execution(&p, &new, &execute("first")).await.unwrap(),
        Some(ExecutionCreated::Created(_))
    ));
    let replay = new_execution(&plan, package_id, at + secs(2), Some("once"));
    assert!(matches!(
        store.create_execution(&p, &replay, &execute("replay")).await.unwrap(),
        Some(ExecutionCreated::Existing(_))
    ));
    let cancel = |target: &str| entry(AuditAction::ExecutionCancel, target, at);
    assert!(matches!(
        store.cancel_execution(&p, new.id, at + secs(3), &cancel("first")).await.unwrap(),
        Some(Transition::Done(_))
    ));
    assert!(matches!(
        store.cancel_execution(&p, new.id, at + secs(4), &cancel("again")).await.unwrap(),
        Some(Transition::Refused(_))
    ));
    let retry = entry(AuditAction::ExecutionRetry, "first", at);
    assert!(matches!(
        store.retry_execution(&p, new.id, at + secs(5), &retry).await.unwrap(),
        Some(Transition::Done(_))
    ));
    store.cancel_execution(&p, new.id, at + secs(6), &cancel("second")).await.unwrap();
    // The tenant's settings: a god key's change, in the control chain.
    let control_start = chain(&store, &Chain::Control).await.head.seq;
    let change = TenantChange { rate_limit_per_key: Setting::Set(50), ..TenantChange::default() };
    let mut update = entry(AuditAction::TenantUpdate, "public", at);
    update.tenant = None;
    assert!(store.update_tenant(&p, &change, &update).await.unwrap().is_some());
    let control = chain_after(&store, &Chain::Control, control_start).await;
    assert_eq!(actions(&control), ["tenant.update"]);
    // A package version deleted.
    let delete = entry(AuditAction::PackageDelete, "audited@1.0.0", at);
    assert!(matches!(
        store.delete_package(&p, "audited", "1.0.0", at + secs(7), &delete).await.unwrap(),
        Lookup::Found(PackageDeleted::Deleted(_))
    ));

    let page = chain_after(&store, &public(), start).await;
    assert_eq!(
        actions(&page),
        [
            "key.create",
            "key.revoke",
            "package.upload",
            "workflow.pause",
            "workflow.resume",
            "trigger.pause",
            "trigger.resume",
            "workflow.execute",
            "execution.cancel",
            "execution.retry",
            "execution.cancel",
            "package.delete",
        ],
        "one row per change that happened, in order, none for the rest"
    );
    let targets: Vec<&str> = page.items.iter().map(|r| r.entry.target.as_str()).collect();
    assert!(!targets.iter().any(|t| ["again", "repeat", "replay", "nothing"].contains(t)));
    let whole = chain(&store, &public()).await;
    let summary = verify_chain(&whole.head, &whole.items).expect("the chain verifies as stored");
    assert_eq!((summary.rows, whole.head.seq, page.total), (start + 12, start + 12, start + 12));
    // Every field comes back as written.
    let first = &page.items[0];
    assert_eq!(first.entry, entry(AuditAction::KeyCreate, "key-9", at).link(&Default::default()).0.entry);
    assert_eq!(first.entry.origin.client.as_deref(), Some("192.0.2.7"));
    assert_eq!(first.entry.detail["n"], 1);
}

pub async fn tenants_created_and_deleted_are_rows_of_the_control_chain(store: Store) {
    let acme = TenantName::parse("audited").unwrap();
    let god = |action, at| {
        let mut e = entry(action, "audited", at);
        e.tenant = None;
        e
    };
    let start = chain(&store, &Chain::Control).await.head.seq;
    let new = crate::tenants::new_tenant("audited");
    match store.create_tenant(&new, &god(AuditAction::TenantCreate, t0())).await {
        Ok(TenantCreated::Created(_)) => {
            let deleted = store.delete_tenant(&acme, t0() + secs(1), &god(AuditAction::TenantDelete, t0())).await;
            assert!(matches!(deleted, Ok(TenantDeleted::Deleted { .. })));
            let rows = chain_after(&store, &Chain::Control, start).await;
            assert_eq!(actions(&rows), ["tenant.create", "tenant.delete"]);
            assert_eq!(rows.items[1].entry.detail["revoked_keys"], 0);
            let whole = chain(&store, &Chain::Control).await;
            assert!(verify_chain(&whole.head, &whole.items).is_ok());
            assert!(store.list_audit(&Chain::Tenant(acme), &AuditFilter::default(), 10).await.unwrap().is_none());
        }
        // A single-tenant backend creates no tenant, and records nothing.
        Err(StoreError::Unsupported(_)) => {
            assert_eq!(chain(&store, &Chain::Control).await.head.seq, start);
        }
        other => panic!("unexpected: {other:?}"),
    }
}

pub async fn listings_filter_and_page_by_cursor_both_ways(store: Store) {
    for n in 0..5u8 {
        let key = tenant_key(20 + n);
        let mut e = entry(AuditAction::KeyCreate, &format!("k{n}"), t0() + secs(i64::from(n)));
        if n == 3 {
            e.actor = Some(Actor { key_id: ApiKeyId::from_uuid(Uuid::from_u128(0xD2)), key_name: "other".into() });
        }
        store.insert(&key, &e).await.unwrap();
    }
    store.append_audit(&[entry(AuditAction::TenantUpdate, "public", t0() + secs(9))]).await.unwrap();
    let list = |filter: AuditFilter, limit| {
        let store = store.clone();
        async move { store.list_audit(&public(), &filter, limit).await.unwrap().unwrap() }
    };
    let seqs = |page: &AuditPage| page.items.iter().map(|r| r.seq).collect::<Vec<_>>();
    // Newest first by default, then on from the cursor.
    let newest = list(AuditFilter::default(), 2).await;
    assert_eq!((seqs(&newest), newest.total, newest.head.seq), (vec![6, 5], 6, 6));
    let older = list(AuditFilter { before: Some(5), ..AuditFilter::default() }, 2).await;
    assert_eq!(seqs(&older), [4, 3]);
    let after = list(AuditFilter { after: Some(4), ..AuditFilter::default() }, 10).await;
    assert_eq!(seqs(&after), [5, 6]);
    let by_action = list(AuditFilter { action: Some(AuditAction::TenantUpdate), ..AuditFilter::default() }, 10).await;
    assert_eq!((seqs(&by_action), by_action.total), (vec![6], 1));
    let by_actor = AuditFilter { actor: Some(ApiKeyId::from_uuid(Uuid::from_u128(0xD2))), ..AuditFilter::default() };
    assert_eq!(seqs(&list(by_actor, 10).await), [4]);
    let window = AuditFilter { since: Some(t0() + secs(1)), until: Some(t0() + secs(3)), ..AuditFilter::default() };
    let window = list(window, 10).await;
    assert_eq!((seqs(&window), window.total), (vec![3, 2], 2));
    // Another tenant's chain does not exist on a store that does not hold the tenant.
    let stranger = Chain::Tenant(TenantName::parse("nobody-here").unwrap());
    assert!(store.list_audit(&stranger, &AuditFilter::default(), 10).await.unwrap().is_none());
}

pub async fn rows_without_a_change_are_appended_and_the_prune_keeps_the_chain_verifiable(store: Store) {
    let burst = |n: i64| {
        let mut e = AuditEntry::new(
            t0() + chrono::Duration::days(n),
            None,
            None,
            AuditAction::AuthFailures,
            "192.0.2.99",
            RequestOrigin { request_id: None, client: Some("192.0.2.99".into()) },
        )
        .with("count", 40 + n);
        e.outcome = cloacina_domain::audit::AuditOutcome::Denied;
        e
    };
    store.append_audit(&[burst(0), burst(1), burst(2), burst(3)]).await.unwrap();
    let control = chain(&store, &Chain::Control).await;
    let bursts: Vec<&AuditRecord> =
        control.items.iter().filter(|r| r.entry.action == AuditAction::AuthFailures).collect();
    assert_eq!(bursts.len(), 4);
    assert!(verify_chain(&control.head, &control.items).is_ok());
    // Rows older than day 2 go; the chain verifies from its new anchor.
    let gone = store.prune_audit(&Chain::Control, t0() + chrono::Duration::days(2)).await.unwrap();
    let pruned = chain(&store, &Chain::Control).await;
    assert_eq!(gone as usize + pruned.items.len(), control.items.len());
    assert!(pruned.items.iter().all(|r| r.entry.at >= t0() + chrono::Duration::days(2)));
    assert_eq!(pruned.head.anchor_seq, pruned.items[0].seq - 1);
    assert!(verify_chain(&pruned.head, &pruned.items).is_ok(), "a pruned chain verifies from its anchor");
    assert!(store.prune_audit(&Chain::Control, t0()).await.unwrap() == 0, "nothing older is left");
    // Appending goes on after the prune.
    store.append_audit(&[burst(4)]).await.unwrap();
    let after = chain(&store, &Chain::Control).await;
    assert!(verify_chain(&after.head, &after.items).is_ok());
}

/// A change whose audit row cannot be written does not happen. `sabotage` makes every later
/// insert into the tenant `public`'s chain fail, by the backend's own means.
pub async fn changes_fail_closed<F: Future<Output = ()>>(store: Store, sabotage: F) {
    let p = TenantName::public();
    let (plan, package_id) = setup(&store, 0).await;
    let before = chain(&store, &public()).await;
    sabotage.await;
    let key = tenant_key(40);
    let refused = store.insert(&key, &entry(AuditAction::KeyCreate, "key-40", t0())).await;
    assert!(refused.is_err(), "the key insert failed with its audit row: {refused:?}");
    assert!(store.find(key.id).await.unwrap().is_none(), "and no key was made");
    let new = new_execution(&plan, package_id, t0() + secs(1), None);
    let refused = store.create_execution(&p, &new, &entry(AuditAction::WorkflowExecute, "x", t0())).await;
    assert!(refused.is_err(), "the execute failed with its audit row: {refused:?}");
    assert!(matches!(store.get_execution(&p, new.id).await.unwrap(), Lookup::Missing), "and no execution exists");
    let refused = store.set_paused(&p, "pipe", true, t0(), &entry(AuditAction::WorkflowPause, "pipe", t0())).await;
    assert!(refused.is_err());
    let w = store.get_workflow(&p, "pipe").await.unwrap().into_found().unwrap();
    assert!(!w.paused, "the pause was rolled back");
    let after = chain(&store, &public()).await;
    assert_eq!(after.items.len(), before.items.len());
}

/// An edit made behind the server's back is found at its row. `edit` changes the target of
/// row `seq` of `public`'s chain (bypassing the table's append-only guard); `delete` removes
/// row `seq`.
pub async fn tampering_is_found<E, D>(store: Store, edit: impl FnOnce(u64) -> E, delete: impl FnOnce(u64) -> D)
where
    E: Future<Output = ()>,
    D: Future<Output = ()>,
{
    for n in 0..4u8 {
        store.insert(&tenant_key(50 + n), &entry(AuditAction::KeyCreate, &format!("k{n}"), t0())).await.unwrap();
    }
    let sound = chain(&store, &public()).await;
    assert!(verify_chain(&sound.head, &sound.items).is_ok());
    edit(2).await;
    let edited = chain(&store, &public()).await;
    assert_eq!(verify_chain(&edited.head, &edited.items), Err(ChainBreak::Edited { seq: 2 }));
    delete(3).await;
    let holed = chain(&store, &public()).await;
    // With the edited row set aside, the deleted one is found too.
    let rows: Vec<AuditRecord> = holed.items.into_iter().filter(|r| r.seq != 2).collect();
    assert_eq!(verify_chain(&holed.head, &rows), Err(ChainBreak::Missing { from: 2, to: 3 }));
}

/// The store refuses to change or remove audit rows by ordinary statements: `attempt`
/// tries an `UPDATE` and a `DELETE` through the backend and returns what each gave.
pub async fn rows_are_append_only<F>(store: Store, attempt: impl FnOnce() -> F)
where
    F: Future<Output = (Result<(), StoreError>, Result<(), StoreError>)>,
{
    store.insert(&tenant_key(60), &entry(AuditAction::KeyCreate, "k", t0())).await.unwrap();
    let (update, delete) = attempt().await;
    assert!(update.is_err(), "an UPDATE of an audit row is refused");
    assert!(delete.is_err(), "a DELETE of an audit row is refused");
    let page = chain(&store, &public()).await;
    assert_eq!(page.items.len(), 1);
    assert!(verify_chain(&page.head, &page.items).is_ok());
}
