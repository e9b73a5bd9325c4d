//! Key management rules against mocks of the ports.

use std::sync::Arc;
use std::time::Duration;

use cloacina_domain::ports::{MockKeyGenerator, MockKeyStore, RevokeOutcome};
use cloacina_domain::{Authority, Denied, KeyName, Principal, Role, TenantName};

use crate::authenticate::tests::{deps, hasher_never, minted, record};
use crate::{Authenticator, CreateKey, CreateKeyError, KeyScope, Keys, RevokeKeyError};

fn keys(store: MockKeyStore) -> Keys {
    let mut d = deps(store, hasher_never(), 0);
    let mut keygen = MockKeyGenerator::new();
    keygen.expect_key_id().returning(|| minted(42).id());
    keygen.expect_secret().returning(|| [42; 32]);
    d.keygen = Arc::new(keygen);
    let auth = Arc::new(Authenticator::new(&d, Duration::from_secs(30), 10));
    Keys::new(d, auth)
}

fn principal(authority: Authority) -> Principal {
    record(&minted(1), authority).principal()
}

fn tenant(name: &str, role: Role) -> Authority {
    Authority::Tenant { tenant: TenantName::parse(name).unwrap(), role }
}

fn request(authority: Authority) -> CreateKey {
    CreateKey { name: KeyName::parse("ci").unwrap(), authority, expires_at: None }
}

#[tokio::test]
async fn a_god_key_mints_a_god_key_and_the_plaintext_matches_the_stored_digest() {
    let mut store = MockKeyStore::new();
    store.expect_insert().times(1).returning(|_, _| Ok(()));
    let created = keys(store).create(&principal(Authority::God), request(Authority::God)).await.unwrap();
    assert!(created.plaintext.expose().starts_with("clk_"));
    assert_eq!(created.record.secret, cloacina_domain::StoredSecret::Sha256(minted(42).digest()));
    assert_eq!(created.record.created_by, Some(minted(1).id()));
}

#[tokio::test]
async fn a_tenant_admin_cannot_mint_a_god_key_and_nothing_is_written() {
    let caller = principal(tenant("public", Role::Admin));
    let err = keys(MockKeyStore::new()).create(&caller, request(Authority::God)).await.unwrap_err();
    assert!(matches!(err, CreateKeyError::Denied(Denied::GodOnly)));
}

#[tokio::test]
async fn a_key_for_a_tenant_that_does_not_exist_is_refused() {
    let err = keys(MockKeyStore::new())
        .create(&principal(Authority::God), request(tenant("acme", Role::Read)))
        .await
        .unwrap_err();
    assert!(matches!(err, CreateKeyError::NoSuchTenant(t) if t.as_str() == "acme"));
}

#[tokio::test]
async fn a_tenant_scope_hides_keys_of_other_scopes_as_not_found() {
    let god_key = record(&minted(5), Authority::God);
    let mut store = MockKeyStore::new();
    store.expect_find().returning(move |_| Ok(Some(god_key.clone())));
    let caller = principal(tenant("public", Role::Admin));
    let err = keys(store).revoke(&caller, KeyScope::Tenant(TenantName::public()), minted(5).id()).await.unwrap_err();
    assert!(matches!(err, RevokeKeyError::NotFound));
}

#[tokio::test]
async fn the_last_god_key_cannot_be_revoked() {
    let god_key = record(&minted(5), Authority::God);
    let mut store = MockKeyStore::new();
    store.expect_find().returning(move |_| Ok(Some(god_key.clone())));
    store.expect_revoke().returning(|_, _, _| Ok(RevokeOutcome::LastGodKey));
    let err = keys(store).revoke(&principal(Authority::God), KeyScope::All, minted(5).id()).await.unwrap_err();
    assert!(matches!(err, RevokeKeyError::LastGodKey));
}

#[tokio::test]
async fn listing_every_key_takes_a_god_key() {
    let caller = principal(tenant("public", Role::Admin));
    assert!(keys(MockKeyStore::new()).list(&caller, KeyScope::All).await.is_err());
}
