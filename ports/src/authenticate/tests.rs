//! The authenticator against mocks of its ports: what each kind of token costs.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{TimeZone, Utc};
use cloacina_domain::ports::{
    MockClock, MockKeyGenerator, MockKeyStore, MockSecretHasher, MockTenantDirectory, RevokeOutcome,
};
use cloacina_domain::{ApiKeyId, Authority, KeyName, KeyRecord, MintedKey, Role, StoredSecret, TenantName};
use uuid::Uuid;

use super::*;
use crate::{Deps, KeyScope, Keys, NoMetrics};

pub(crate) fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000 + secs, 0).single().unwrap()
}

pub(crate) fn clock(secs: i64) -> MockClock {
    let mut c = MockClock::new();
    c.expect_now().returning(move || at(secs));
    c
}

/// A hasher that fails the test if it is ever asked to hash or verify.
pub(crate) fn hasher_never() -> MockSecretHasher {
    let mut h = MockSecretHasher::new();
    h.expect_verify().never();
    h.expect_hash().never();
    h
}

pub(crate) fn deps(store: MockKeyStore, hasher: MockSecretHasher, now: i64) -> Deps {
    let mut tenants = MockTenantDirectory::new();
    tenants.expect_exists().returning(|t| Ok(t.is_public()));
    Deps {
        keys: Arc::new(store),
        tenants: Arc::new(tenants),
        clock: Arc::new(clock(now)),
        keygen: Arc::new(MockKeyGenerator::new()),
        hasher: Arc::new(hasher),
        metrics: Arc::new(NoMetrics),
    }
}

fn authenticator(store: MockKeyStore, hasher: MockSecretHasher) -> Authenticator {
    Authenticator::new(&deps(store, hasher, 0), Duration::from_secs(30), 100)
}

pub(crate) fn minted(seed: u8) -> MintedKey {
    MintedKey::new(ApiKeyId::from_uuid(Uuid::from_bytes([seed; 16])), [seed; 32])
}

pub(crate) fn record(key: &MintedKey, authority: Authority) -> KeyRecord {
    KeyRecord {
        id: key.id(),
        name: KeyName::parse("k").unwrap(),
        authority,
        secret: StoredSecret::Sha256(key.digest()),
        created_at: at(-100),
        created_by: None,
        revoked: false,
        revoked_at: None,
        expires_at: None,
        last_used_at: None,
    }
}

#[tokio::test]
async fn a_malformed_key_costs_no_lookup_and_no_hash() {
    // A store mock with no expectations panics on any call.
    let auth = authenticator(MockKeyStore::new(), hasher_never());
    for token in ["", "short", "has spaces but is long enough", "\u{0}nul-byte-in-token-x"] {
        assert_eq!(auth.authenticate(token).await, Err(AuthError::Malformed), "{token:?}");
    }
}

#[tokio::test]
async fn a_bad_checksum_costs_no_lookup_and_no_hash() {
    let auth = authenticator(MockKeyStore::new(), hasher_never());
    let mut text = minted(1).plaintext().expose().to_owned();
    let last = text.pop().unwrap();
    text.push(if last == 'A' { 'B' } else { 'A' });
    assert_eq!(auth.authenticate(&text).await, Err(AuthError::BadChecksum));
}

#[tokio::test]
async fn an_unknown_id_costs_one_lookup_no_hash_and_the_miss_is_cached() {
    let mut store = MockKeyStore::new();
    store.expect_find().times(1).returning(|_| Ok(None));
    let auth = authenticator(store, hasher_never());
    let key = minted(2).plaintext();
    for _ in 0..5 {
        assert_eq!(auth.authenticate(key.expose()).await, Err(AuthError::Unknown));
    }
}

#[tokio::test]
async fn a_minted_key_is_looked_up_once_then_served_from_the_cache() {
    let key = minted(3);
    let rec = record(&key, Authority::God);
    let mut store = MockKeyStore::new();
    store.expect_find().times(1).returning(move |_| Ok(Some(rec.clone())));
    let auth = authenticator(store, hasher_never());
    for _ in 0..3 {
        let p = auth.authenticate(key.plaintext().expose()).await.unwrap();
        assert_eq!(p.key_id, key.id());
        assert!(p.authority.is_god());
    }
}

#[tokio::test]
async fn a_known_id_with_the_wrong_secret_is_refused() {
    let key = minted(4);
    let rec = record(&key, Authority::God);
    let mut store = MockKeyStore::new();
    store.expect_find().returning(move |_| Ok(Some(rec.clone())));
    let auth = authenticator(store, hasher_never());
    let forged = MintedKey::new(key.id(), [99; 32]);
    assert_eq!(auth.authenticate(forged.plaintext().expose()).await, Err(AuthError::Unknown));
}

#[tokio::test]
async fn an_expired_key_is_refused() {
    let key = minted(5);
    let mut rec = record(&key, Authority::God);
    rec.expires_at = Some(at(-1));
    let mut store = MockKeyStore::new();
    store.expect_find().returning(move |_| Ok(Some(rec.clone())));
    let auth = authenticator(store, hasher_never());
    assert_eq!(auth.authenticate(key.plaintext().expose()).await, Err(AuthError::Expired));
}

#[tokio::test]
async fn a_revoked_key_is_refused_on_the_next_request() {
    let key = minted(6);
    let admin = minted(7);
    let revoked = Arc::new(AtomicBool::new(false));
    let tenant = Authority::Tenant { tenant: TenantName::public(), role: Role::Read };
    let (rec, admin_rec) = (record(&key, tenant), record(&admin, Authority::God));
    let mut store = MockKeyStore::new();
    let flag = revoked.clone();
    store.expect_find().returning(move |id| {
        if id == admin_rec.id {
            return Ok(Some(admin_rec.clone()));
        }
        let mut r = rec.clone();
        r.revoked = flag.load(Ordering::SeqCst);
        Ok(Some(r))
    });
    let flag = revoked.clone();
    let rec2 = record(&key, Authority::God);
    store.expect_revoke().times(1).returning(move |_, _, _| {
        flag.store(true, Ordering::SeqCst);
        Ok(RevokeOutcome::Revoked(rec2.clone()))
    });
    let deps = deps(store, hasher_never(), 0);
    let auth = Arc::new(Authenticator::new(&deps, Duration::from_secs(3600), 100));
    let keys = Keys::new(deps, auth.clone());

    assert!(auth.authenticate(key.plaintext().expose()).await.is_ok());
    let god = auth.authenticate(admin.plaintext().expose()).await.unwrap();
    keys.revoke(&god, KeyScope::All, key.id()).await.unwrap();
    // The cache TTL is an hour: only the revocation's own invalidation can explain this.
    assert_eq!(auth.authenticate(key.plaintext().expose()).await, Err(AuthError::Revoked));
}

#[tokio::test]
async fn concurrent_attempts_with_one_supplied_key_run_argon2_once() {
    let phc = "$argon2id$stub".to_owned();
    let mut rec = record(&minted(8), Authority::God);
    rec.secret = StoredSecret::Argon2(phc.clone());
    let mut store = MockKeyStore::new();
    store.expect_active_supplied_keys().times(1).returning(move |_| Ok(vec![rec.clone()]));
    let mut hasher = MockSecretHasher::new();
    hasher.expect_verify().times(1).returning(|s, _| Ok(s.expose() == "my-secret-admin-key-here"));
    let auth = Arc::new(authenticator(store, hasher));
    let attempts = (0..8).map(|_| {
        let auth = auth.clone();
        tokio::spawn(async move { auth.authenticate("my-secret-admin-key-here").await })
    });
    for a in attempts {
        assert!(a.await.unwrap().unwrap().authority.is_god());
    }
}

#[tokio::test]
async fn a_supplied_looking_token_costs_no_hash_when_no_supplied_keys_exist() {
    let mut store = MockKeyStore::new();
    store.expect_active_supplied_keys().times(1).returning(|_| Ok(vec![]));
    let auth = authenticator(store, hasher_never());
    for _ in 0..3 {
        assert_eq!(auth.authenticate("definitely-not-a-key").await, Err(AuthError::Unknown));
    }
}

#[tokio::test]
async fn last_use_is_queued_at_most_once_a_minute_and_flushed_off_the_request_path() {
    let key = minted(9);
    let rec = record(&key, Authority::God);
    let mut store = MockKeyStore::new();
    store.expect_find().returning(move |_| Ok(Some(rec.clone())));
    store.expect_record_last_used().times(1).returning(|uses| {
        assert_eq!(uses.len(), 1);
        Ok(())
    });
    let auth = authenticator(store, hasher_never());
    for _ in 0..10 {
        auth.authenticate(key.plaintext().expose()).await.unwrap();
    }
    assert_eq!(auth.flush_last_used().await.unwrap(), 1);
    assert_eq!(auth.flush_last_used().await.unwrap(), 0);
}
