//! The bootstrap use case against mocks.

use std::sync::Arc;

use cloacina_domain::Secret;
use cloacina_domain::StoredSecret;
use cloacina_domain::bootstrap::SuppliedBootstrapKey;
use cloacina_domain::ports::{MockKeyGenerator, MockKeyStore, MockSecretHasher};

use crate::authenticate::tests::{deps, hasher_never, minted};
use crate::{BootstrapOutcome, bootstrap};

fn with_keygen(mut d: crate::Deps) -> crate::Deps {
    let mut keygen = MockKeyGenerator::new();
    keygen.expect_key_id().returning(|| minted(7).id());
    keygen.expect_secret().returning(|| [7; 32]);
    d.keygen = Arc::new(keygen);
    d
}

#[tokio::test]
async fn an_empty_database_gets_a_generated_god_key() {
    let mut store = MockKeyStore::new();
    store.expect_count_active_god_keys().returning(|_| Ok(0));
    store.expect_insert_first_god_key().times(1).returning(|k, _, _| {
        assert!(k.authority.is_god());
        Ok(true)
    });
    let out = bootstrap(&with_keygen(deps(store, hasher_never(), 0)), None).await.unwrap();
    let BootstrapOutcome::Created { plaintext, supplied, .. } = out else { panic!("not created") };
    assert_eq!(plaintext.expose(), minted(7).plaintext().expose());
    assert!(!supplied);
}

#[tokio::test]
async fn an_existing_god_key_skips_bootstrap_and_says_a_supplied_key_was_ignored() {
    let mut store = MockKeyStore::new();
    store.expect_count_active_god_keys().returning(|_| Ok(1));
    let supplied = SuppliedBootstrapKey::parse(Secret::new("my-secret-admin-key-here")).unwrap();
    let out = bootstrap(&deps(store, hasher_never(), 0), Some(supplied)).await.unwrap();
    assert!(matches!(out, BootstrapOutcome::Skipped { supplied_ignored: true }));
}

#[tokio::test]
async fn a_supplied_key_is_stored_as_an_argon2id_hash() {
    let mut store = MockKeyStore::new();
    store.expect_count_active_god_keys().returning(|_| Ok(0));
    store.expect_insert_first_god_key().times(1).returning(|k, _, _| {
        assert_eq!(k.secret, StoredSecret::Argon2("$argon2id$x".into()));
        Ok(true)
    });
    let mut hasher = MockSecretHasher::new();
    hasher.expect_hash().times(1).returning(|_| Ok("$argon2id$x".into()));
    let supplied = SuppliedBootstrapKey::parse(Secret::new("my-secret-admin-key-here")).unwrap();
    let out = bootstrap(&with_keygen(deps(store, hasher, 0)), Some(supplied)).await.unwrap();
    let BootstrapOutcome::Created { plaintext, supplied, .. } = out else { panic!("not created") };
    assert_eq!(plaintext.expose(), "my-secret-admin-key-here");
    assert!(supplied);
}

#[tokio::test]
async fn a_replica_that_loses_the_race_skips() {
    let mut store = MockKeyStore::new();
    store.expect_count_active_god_keys().returning(|_| Ok(0));
    store.expect_insert_first_god_key().returning(|_, _, _| Ok(false));
    let out = bootstrap(&with_keygen(deps(store, hasher_never(), 0)), None).await.unwrap();
    assert!(matches!(out, BootstrapOutcome::Skipped { supplied_ignored: false }));
}
