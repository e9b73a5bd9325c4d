//! The `KeyStore` contract.

use chrono::{DateTime, Duration, TimeZone, Utc};
use cloacina_domain::ports::{Constraint, ConstraintKind, RevokeOutcome, StoreError};
use cloacina_domain::{ApiKeyId, Authority, KeyDigest, KeyName, NewKey, Role, StoredSecret, TenantName};
use uuid::Uuid;

use crate::Store;
use crate::noted;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 4, 2, 12, 0, 0).single().unwrap_or_default()
}

fn id(n: u8) -> ApiKeyId {
    ApiKeyId::from_uuid(Uuid::from_bytes([n; 16]))
}

fn key(n: u8, authority: Authority, at: DateTime<Utc>) -> NewKey {
    NewKey {
        id: id(n),
        name: KeyName::parse(&format!("key-{n}")).unwrap(),
        authority,
        secret: StoredSecret::Sha256(KeyDigest::from_bytes([n; 32])),
        created_at: at,
        created_by: None,
        expires_at: None,
    }
}

fn public(role: Role) -> Authority {
    Authority::Tenant { tenant: TenantName::public(), role }
}

pub async fn an_inserted_key_reads_back_with_every_field(store: Store) {
    let creator = key(1, Authority::God, t0());
    store.insert(&creator, &noted()).await.unwrap();
    let mut k = key(2, public(Role::Write), t0() + Duration::microseconds(1_500_001));
    k.created_by = Some(creator.id);
    k.expires_at = Some(t0() + Duration::days(30));
    store.insert(&k, &noted()).await.unwrap();
    let back = store.find(k.id).await.unwrap().unwrap();
    assert_eq!(back, k.clone().into());
    let mut s = key(3, Authority::God, t0());
    s.secret = StoredSecret::Argon2("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into());
    store.insert(&s, &noted()).await.unwrap();
    assert_eq!(store.find(s.id).await.unwrap().unwrap().secret, s.secret);
}

pub async fn a_duplicate_id_conflicts_and_changes_nothing(store: Store) {
    store.insert(&key(1, Authority::God, t0()), &noted()).await.unwrap();
    let mut again = key(1, public(Role::Read), t0());
    again.name = KeyName::parse("other").unwrap();
    assert!(matches!(
        store.insert(&again, &noted()).await,
        Err(StoreError::Constraint(Constraint { kind: ConstraintKind::Unique, .. }))
    ));
    assert!(store.find(id(1)).await.unwrap().unwrap().authority.is_god());
    assert_eq!(store.list(None).await.unwrap().len(), 1);
}

pub async fn an_unknown_id_is_not_found(store: Store) {
    assert_eq!(store.find(id(9)).await.unwrap(), None);
    assert_eq!(store.revoke(id(9), t0(), &noted()).await.unwrap(), RevokeOutcome::NotFound);
}

pub async fn listing_is_by_tenant_oldest_first_and_includes_revoked_keys(store: Store) {
    store.insert(&key(3, public(Role::Read), t0() + Duration::seconds(2)), &noted()).await.unwrap();
    store.insert(&key(1, Authority::God, t0()), &noted()).await.unwrap();
    store.insert(&key(2, public(Role::Admin), t0() + Duration::seconds(1)), &noted()).await.unwrap();
    store.revoke(id(3), t0() + Duration::seconds(5), &noted()).await.unwrap();
    let all: Vec<_> = store.list(None).await.unwrap().into_iter().map(|k| k.id).collect();
    assert_eq!(all, vec![id(1), id(2), id(3)]);
    let public_keys = store.list(Some(TenantName::public())).await.unwrap();
    assert_eq!(public_keys.iter().map(|k| k.id).collect::<Vec<_>>(), vec![id(2), id(3)]);
    assert!(public_keys[1].revoked);
    assert!(store.list(Some(TenantName::parse("acme").unwrap())).await.unwrap().is_empty());
}

pub async fn revoking_flags_the_key_once(store: Store) {
    store.insert(&key(1, Authority::God, t0()), &noted()).await.unwrap();
    store.insert(&key(2, public(Role::Read), t0()), &noted()).await.unwrap();
    let at = t0() + Duration::minutes(1);
    assert!(matches!(store.revoke(id(2), at, &noted()).await.unwrap(), RevokeOutcome::Revoked(r) if !r.revoked));
    let back = store.find(id(2)).await.unwrap().unwrap();
    assert!(back.revoked);
    assert_eq!(back.revoked_at, Some(at));
    assert!(matches!(store.revoke(id(2), at, &noted()).await.unwrap(), RevokeOutcome::AlreadyRevoked(_)));
}

pub async fn the_last_active_god_key_cannot_be_revoked(store: Store) {
    store.insert(&key(1, Authority::God, t0()), &noted()).await.unwrap();
    store.insert(&key(2, Authority::God, t0()), &noted()).await.unwrap();
    assert!(matches!(store.revoke(id(1), t0(), &noted()).await.unwrap(), RevokeOutcome::Revoked(_)));
    assert_eq!(store.revoke(id(2), t0(), &noted()).await.unwrap(), RevokeOutcome::LastGodKey);
    assert!(!store.find(id(2)).await.unwrap().unwrap().revoked);
    assert_eq!(store.count_active_god_keys(t0()).await.unwrap(), 1);
}

pub async fn expired_god_keys_do_not_count_as_active(store: Store) {
    let mut k = key(1, Authority::God, t0());
    k.expires_at = Some(t0() + Duration::hours(1));
    store.insert(&k, &noted()).await.unwrap();
    assert_eq!(store.count_active_god_keys(t0()).await.unwrap(), 1);
    assert_eq!(store.count_active_god_keys(t0() + Duration::hours(2)).await.unwrap(), 0);
    assert!(
        store.insert_first_god_key(&key(2, Authority::God, t0()), t0() + Duration::hours(2), &noted()).await.unwrap()
    );
}

pub async fn the_first_god_key_is_inserted_once_even_under_a_race(store: Store) {
    let racers = (10..20u8).map(|n| {
        let store = store.clone();
        tokio::spawn(
            async move { store.insert_first_god_key(&key(n, Authority::God, t0()), t0(), &noted()).await.unwrap() },
        )
    });
    let mut winners = 0;
    for r in racers {
        winners += usize::from(r.await.unwrap());
    }
    assert_eq!(winners, 1);
    assert_eq!(store.count_active_god_keys(t0()).await.unwrap(), 1);
    assert!(!store.insert_first_god_key(&key(30, Authority::God, t0()), t0(), &noted()).await.unwrap());
}

pub async fn only_active_supplied_keys_are_listed_for_argon2(store: Store) {
    let argon = |n: u8| {
        let mut k = key(n, Authority::God, t0());
        k.secret = StoredSecret::Argon2(format!("$argon2id$stub{n}"));
        k
    };
    store.insert(&argon(1), &noted()).await.unwrap();
    store.insert(&argon(2), &noted()).await.unwrap();
    let mut expired = argon(3);
    expired.expires_at = Some(t0() - Duration::seconds(1));
    store.insert(&expired, &noted()).await.unwrap();
    store.insert(&key(4, Authority::God, t0()), &noted()).await.unwrap();
    store.revoke(id(2), t0(), &noted()).await.unwrap();
    let ids: Vec<_> = store.active_supplied_keys(t0()).await.unwrap().into_iter().map(|k| k.id).collect();
    assert_eq!(ids, vec![id(1)]);
}

pub async fn last_used_never_moves_backwards(store: Store) {
    store.insert(&key(1, Authority::God, t0()), &noted()).await.unwrap();
    let later = t0() + Duration::minutes(10);
    store.record_last_used(vec![(id(1), later), (id(99), later)]).await.unwrap();
    store.record_last_used(vec![(id(1), t0() + Duration::minutes(5))]).await.unwrap();
    assert_eq!(store.find(id(1)).await.unwrap().unwrap().last_used_at, Some(later));
}

pub async fn a_name_is_taken_once_among_a_scopes_unrevoked_keys(store: Store) {
    let named = |n: u8, name: &str, authority: Authority| {
        let mut k = key(n, authority, t0());
        k.name = KeyName::parse(name).unwrap();
        k
    };
    let acme = || Authority::Tenant { tenant: TenantName::parse("acme").unwrap(), role: Role::Read };
    store.insert(&named(1, "ci", public(Role::Write)), &noted()).await.unwrap();
    let taken = store.insert(&named(2, "ci", public(Role::Read)), &noted()).await;
    assert!(matches!(taken, Err(StoreError::Constraint(Constraint { kind: ConstraintKind::Unique, .. }))), "{taken:?}");
    assert_eq!(store.find(id(2)).await.unwrap(), None, "nothing written");
    // Another scope may have it: a god key, and (where the backend has tenants) another tenant.
    store.insert(&named(3, "ci", Authority::God), &noted()).await.unwrap();
    assert!(store.insert(&named(4, "ci", Authority::God), &noted()).await.is_err(), "god keys among god keys");
    if store.create_tenant(&crate::tenants::new_tenant("acme"), &noted()).await.is_ok() {
        store.insert(&named(5, "ci", acme()), &noted()).await.unwrap();
    }
    // Once revoked, the name is free again.
    store.revoke(id(1), t0(), &noted()).await.unwrap();
    store.insert(&named(6, "ci", public(Role::Read)), &noted()).await.unwrap();

    // The bootstrap's name is freed from a god key that expired without being revoked.
    let mut old = named(7, "bootstrap-admin", Authority::God);
    old.expires_at = Some(t0() + Duration::hours(1));
    store.insert(&old, &noted()).await.unwrap();
    store.revoke(id(3), t0(), &noted()).await.unwrap();
    let later = t0() + Duration::hours(2);
    assert!(store.insert_first_god_key(&named(8, "bootstrap-admin", Authority::God), later, &noted()).await.unwrap());
    let retired = store.find(id(7)).await.unwrap().unwrap();
    assert!(retired.revoked && retired.revoked_at == Some(later), "{retired:?}");
}
