//! The `TenantDirectory` and `DatabaseHealth` contract.

use cloacina_domain::TenantName;

use crate::Store;

pub async fn public_always_exists_and_unknown_tenants_do_not(store: Store) {
    assert!(store.exists(&TenantName::public()).await.unwrap());
    assert!(!store.exists(&TenantName::parse("never-created").unwrap()).await.unwrap());
}

pub async fn a_migrated_database_is_healthy(store: Store) {
    store.ping().await.unwrap();
}
