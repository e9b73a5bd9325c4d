//! The `TenantDirectory`, `TenantStore` and `DatabaseHealth` contract.
//!
//! SQLite is single-tenant by design (docs/postgres.md): there, creating and deleting answer
//! [`StoreError::Unsupported`] and everything else behaves as with one tenant, `public`.

use chrono::{DateTime, Duration, TimeZone, Utc};
use cloacina_domain::ports::{StoreError, TenantCreated, TenantDeleted};
use cloacina_domain::{
    ApiKeyId, Authority, KeyDigest, KeyName, NewKey, NewTenant, Role, Secret, Setting, StoredSecret, TaskNetwork,
    TenantChange, TenantDescription, TenantName,
};
use uuid::Uuid;

use crate::Store;
use crate::noted;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 5, 1, 9, 0, 0).single().unwrap_or_default()
}

fn name(n: &str) -> TenantName {
    TenantName::parse(n).unwrap()
}

pub(crate) fn new_tenant(n: &str) -> NewTenant {
    NewTenant {
        name: name(n),
        description: Some(TenantDescription::parse("Acme, EU").unwrap()),
        db_password: Secret::new(format!("pw_{n}_Zx9-abcdefghijklmnop")),
        created_at: t0(),
    }
}

fn tenant_key(n: u8, tenant: &str) -> NewKey {
    NewKey {
        id: ApiKeyId::from_uuid(Uuid::from_bytes([n; 16])),
        name: KeyName::parse(&format!("key-{n}")).unwrap(),
        authority: Authority::Tenant { tenant: name(tenant), role: Role::Write },
        secret: StoredSecret::Sha256(KeyDigest::from_bytes([n; 32])),
        created_at: t0(),
        created_by: None,
        expires_at: None,
    }
}

/// Whether the backend is multi-tenant; on a single-tenant one, checks the refusals.
async fn multi_tenant(store: &Store) -> bool {
    match store.create_tenant(&new_tenant("probe"), &noted()).await {
        Ok(_) => {
            let deleted = store.delete_tenant(&name("probe"), t0(), &noted()).await;
            assert!(matches!(deleted, Ok(TenantDeleted::Deleted { .. })), "{deleted:?}");
            true
        }
        Err(StoreError::Unsupported(message)) => {
            assert!(message.contains("PostgreSQL"), "the refusal says what is needed: {message}");
            assert!(matches!(
                store.delete_tenant(&name("probe"), t0(), &noted()).await,
                Err(StoreError::Unsupported(_))
            ));
            false
        }
        Err(e) => panic!("create failed: {e}"),
    }
}

pub async fn public_always_exists_and_unknown_tenants_do_not(store: Store) {
    assert!(store.exists(&TenantName::public()).await.unwrap());
    assert!(!store.exists(&name("never-created")).await.unwrap());
    let listed = store.list_tenants().await.unwrap();
    assert_eq!(listed[0].name, TenantName::public());
    assert!(listed[0].is_builtin());
    assert_eq!(store.get_tenant(&TenantName::public()).await.unwrap().unwrap().name, TenantName::public());
    assert_eq!(store.get_tenant(&name("never-created")).await.unwrap(), None);
}

pub async fn a_migrated_database_is_healthy(store: Store) {
    store.ping().await.unwrap();
}

pub async fn a_tenant_is_created_listed_and_found_once(store: Store) {
    if !multi_tenant(&store).await {
        return;
    }
    let acme = created(&store, "acme").await;
    assert_eq!(acme.name, name("acme"));
    assert_eq!(acme.created_at, t0());
    assert_eq!(acme.description.as_ref().map(TenantDescription::as_str), Some("Acme, EU"));
    assert!(acme.db_role.as_deref().is_some_and(|r| r.ends_with("_acme")));
    assert!(acme.schema.contains("acme"));
    assert!(matches!(store.create_tenant(&new_tenant("acme"), &noted()).await, Ok(TenantCreated::NameTaken)));
    assert_eq!(created(&store, "globex").await.name, name("globex"));
    let names: Vec<_> = store.list_tenants().await.unwrap().into_iter().map(|t| t.name.to_string()).collect();
    assert_eq!(names, ["public", "acme", "globex"]);
    assert!(store.exists(&name("acme")).await.unwrap());
    assert_eq!(store.get_tenant(&name("acme")).await.unwrap(), Some(acme));
}

pub async fn deleting_a_tenant_revokes_its_keys_and_frees_its_name(store: Store) {
    if !multi_tenant(&store).await {
        return;
    }
    assert_eq!(created(&store, "acme").await.name, name("acme"));
    assert_eq!(created(&store, "globex").await.name, name("globex"));
    store.insert(&tenant_key(1, "acme"), &noted()).await.unwrap();
    store.insert(&tenant_key(2, "acme"), &noted()).await.unwrap();
    store.insert(&tenant_key(3, "globex"), &noted()).await.unwrap();
    store.revoke(ApiKeyId::from_uuid(Uuid::from_bytes([2; 16])), t0(), &noted()).await.unwrap();
    let at = t0() + Duration::hours(1);
    assert_eq!(
        store.delete_tenant(&name("acme"), at, &noted()).await.unwrap(),
        TenantDeleted::Deleted { revoked_keys: 1 }
    );
    assert!(!store.exists(&name("acme")).await.unwrap());
    assert_eq!(store.get_tenant(&name("acme")).await.unwrap(), None);
    let first = store.find(ApiKeyId::from_uuid(Uuid::from_bytes([1; 16]))).await.unwrap().unwrap();
    assert!(first.revoked && first.revoked_at == Some(at), "its keys are revoked, never deleted");
    assert!(!store.find(ApiKeyId::from_uuid(Uuid::from_bytes([3; 16]))).await.unwrap().unwrap().revoked);
    assert_eq!(store.delete_tenant(&name("acme"), at, &noted()).await.unwrap(), TenantDeleted::NotFound);
    assert_eq!(created(&store, "acme").await.name, name("acme"));
    assert!(store.exists(&name("acme")).await.unwrap(), "the name can be taken again at once");
}

fn network(n: Option<TaskNetwork>) -> TenantChange {
    TenantChange { task_network: n.map_or(Setting::Default, Setting::Set), ..TenantChange::default() }
}

pub async fn a_tenants_task_network_is_set_kept_and_cleared_and_an_unknown_tenant_has_none(store: Store) {
    let public = TenantName::public();
    assert_eq!(store.get_tenant(&public).await.unwrap().unwrap().task_network, None, "the default at first");
    let set = store.update_tenant(&public, &network(Some(TaskNetwork::Host)), &noted()).await.unwrap().unwrap();
    assert_eq!((set.name.clone(), set.task_network), (public.clone(), Some(TaskNetwork::Host)));
    assert_eq!(store.get_tenant(&public).await.unwrap().unwrap(), set, "read back as written");
    assert_eq!(store.list_tenants().await.unwrap()[0].task_network, Some(TaskNetwork::Host));
    let kept = store.update_tenant(&public, &TenantChange::default(), &noted()).await.unwrap().unwrap();
    assert_eq!(kept.task_network, Some(TaskNetwork::Host), "an empty change keeps it");
    let none = store.update_tenant(&public, &network(Some(TaskNetwork::None)), &noted()).await.unwrap().unwrap();
    assert_eq!(none.task_network, Some(TaskNetwork::None));
    let cleared = store.update_tenant(&public, &network(None), &noted()).await.unwrap().unwrap();
    assert_eq!(cleared.task_network, None);
    assert_eq!(
        store.update_tenant(&name("never-created"), &network(Some(TaskNetwork::Host)), &noted()).await.unwrap(),
        None
    );
    if multi_tenant(&store).await {
        assert_eq!(created(&store, "acme").await.name, name("acme"));
        let acme =
            store.update_tenant(&name("acme"), &network(Some(TaskNetwork::Host)), &noted()).await.unwrap().unwrap();
        assert_eq!(acme.task_network, Some(TaskNetwork::Host));
        assert_eq!(store.get_tenant(&public).await.unwrap().unwrap().task_network, None, "each tenant its own");
        store.delete_tenant(&name("acme"), t0(), &noted()).await.unwrap();
        assert_eq!(created(&store, "acme").await.name, name("acme"));
        assert_eq!(
            store.get_tenant(&name("acme")).await.unwrap().unwrap().task_network,
            None,
            "a new tenant starts afresh"
        );
    }
}

pub async fn a_tenants_request_limit_is_set_kept_and_cleared_apart_from_its_other_settings(store: Store) {
    let public = TenantName::public();
    let limit = |rate: Setting<u32>| TenantChange { rate_limit_per_key: rate, ..TenantChange::default() };
    assert_eq!(store.get_tenant(&public).await.unwrap().unwrap().rate_limit_per_key, None, "the default at first");
    store.update_tenant(&public, &network(Some(TaskNetwork::Host)), &noted()).await.unwrap();
    let set = store.update_tenant(&public, &limit(Setting::Set(250)), &noted()).await.unwrap().unwrap();
    assert_eq!(
        (set.rate_limit_per_key, set.task_network),
        (Some(250), Some(TaskNetwork::Host)),
        "one setting at a time"
    );
    assert_eq!(store.get_tenant(&public).await.unwrap().unwrap(), set, "read back as written");
    let kept = store.update_tenant(&public, &network(None), &noted()).await.unwrap().unwrap();
    assert_eq!((kept.rate_limit_per_key, kept.task_network), (Some(250), None));
    let none = store.update_tenant(&public, &limit(Setting::Set(0)), &noted()).await.unwrap().unwrap();
    assert_eq!(none.rate_limit_per_key, Some(0), "0 (no limit) is a value of its own");
    let cleared = store.update_tenant(&public, &limit(Setting::Default), &noted()).await.unwrap().unwrap();
    assert_eq!(cleared.rate_limit_per_key, None);
    assert_eq!(store.update_tenant(&name("never-created"), &limit(Setting::Set(1)), &noted()).await.unwrap(), None);
    if multi_tenant(&store).await {
        created(&store, "acme").await;
        let acme = store.update_tenant(&name("acme"), &limit(Setting::Set(5)), &noted()).await.unwrap().unwrap();
        assert_eq!(acme.rate_limit_per_key, Some(5));
        assert_eq!(store.get_tenant(&public).await.unwrap().unwrap().rate_limit_per_key, None, "each its own");
    }
}

/// Creates a tenant that must not exist yet.
async fn created(store: &Store, tenant: &str) -> cloacina_domain::TenantRecord {
    match store.create_tenant(&new_tenant(tenant), &noted()).await {
        Ok(TenantCreated::Created(record)) => record,
        other => panic!("expected {tenant} created, got {other:?}"),
    }
}
