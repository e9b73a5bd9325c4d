//! The `SecretStore` contract: ciphertext and a wrapped data key kept alike on every backend,
//! the first data key written once, names unique, rotation in place, and a rewrap that only
//! replaces the key it was given.

use chrono::Utc;
use cloacina_domain::TenantName;
use cloacina_domain::ports::{Lookup, SecretMode, SecretPut};
use cloacina_domain::secrets::{DataKey, MasterKey, SecretFields, SecretName, SecretRecord, SecretWrite, WrappedKey};
use uuid::Uuid;

use crate::Store;
use crate::noted;

fn fields(value: &str) -> SecretFields {
    SecretFields::new([("password".to_owned(), value.to_owned()), ("user".to_owned(), "app".to_owned())].into())
        .unwrap()
}

fn write(dek: &DataKey, name: &str, value: &str, n: u8) -> SecretWrite {
    let name = SecretName::parse(name).unwrap();
    let f = fields(value);
    let now = crate::executions::t0() + chrono::Duration::seconds(i64::from(n));
    SecretWrite {
        record: SecretRecord {
            id: Uuid::new_v4(),
            name: name.clone(),
            field_names: f.names(),
            created_at: now,
            updated_at: now,
        },
        sealed: dek.seal(&TenantName::public(), &name, &f, [n; 12]),
    }
}

pub async fn secrets_are_kept_sealed_rotated_listed_and_deleted(store: Store) {
    let p = TenantName::public();
    let master = MasterKey::from_bytes([1; 32]);
    let dek = DataKey::from_bytes([2; 32]);
    let wrapped = master.wrap(&p, &dek, [3; 12]);
    assert_eq!(store.data_key(&p).await.unwrap(), Some(None), "no data key before the first secret");
    let put = |w: SecretWrite, key: WrappedKey, first: bool, mode: SecretMode| {
        let store = store.clone();
        async move { store.put_secret(&TenantName::public(), &w, &key, first, mode, &noted()).await.unwrap().unwrap() }
    };
    let made = put(write(&dek, "db", "one", 1), wrapped.clone(), true, SecretMode::Create).await;
    let SecretPut::Stored(first) = made else { panic!("stored: {made:?}") };
    assert_eq!(store.data_key(&p).await.unwrap(), Some(Some(wrapped.clone())));
    assert_eq!(put(write(&dek, "db", "two", 2), wrapped.clone(), false, SecretMode::Create).await, SecretPut::Exists);
    assert_eq!(put(write(&dek, "nope", "x", 2), wrapped.clone(), false, SecretMode::Rotate).await, SecretPut::Missing);
    // A write sealed under another data key (a concurrent first secret) is refused.
    let other = master.wrap(&p, &DataKey::from_bytes([9; 32]), [4; 12]);
    assert_eq!(
        put(write(&dek, "api", "x", 3), other, true, SecretMode::Create).await,
        SecretPut::KeyChanged(wrapped.clone())
    );
    let SecretPut::Stored(rotated) =
        put(write(&dek, "db", "three", 4), wrapped.clone(), false, SecretMode::Rotate).await
    else {
        panic!("rotated")
    };
    assert_eq!((rotated.id, rotated.created_at), (first.id, first.created_at), "a rotation keeps the secret's id");
    assert!(rotated.updated_at > first.updated_at);
    put(write(&dek, "api", "four", 5), wrapped.clone(), false, SecretMode::Create).await;
    let listed = store.list_secrets(&p).await.unwrap().unwrap();
    assert_eq!(listed.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["api", "db"]);
    assert_eq!(listed[1].field_names, ["password", "user"]);
    // What a task needs opens to the rotated value.
    let db = SecretName::parse("db").unwrap();
    let found = store.sealed_secrets(&p, &[db.clone(), SecretName::parse("gone").unwrap()]).await.unwrap().unwrap();
    assert_eq!(found.key, Some(wrapped.clone()));
    assert_eq!(found.secrets.len(), 1, "only those that exist");
    let opened = master.unwrap(&p, found.key.as_ref().unwrap()).unwrap().open(&p, &db, &found.secrets[0].1).unwrap();
    assert_eq!(opened.get("password").map(cloacina_domain::Secret::expose), Some("three"));
    // A rewrap replaces only the key it was given.
    let new = MasterKey::from_bytes([7; 32]).wrap(&p, &dek, [8; 12]);
    assert!(!store.rewrap_data_key(&p, &new, &wrapped, Utc::now()).await.unwrap(), "not the stored key");
    assert!(store.rewrap_data_key(&p, &wrapped, &new, Utc::now()).await.unwrap());
    assert_eq!(store.data_key(&p).await.unwrap(), Some(Some(new)));
    assert!(matches!(store.get_secret(&p, &db).await.unwrap(), Lookup::Found(_)));
    assert!(matches!(store.delete_secret(&p, &db, &noted()).await.unwrap(), Lookup::Found(_)));
    assert!(matches!(store.delete_secret(&p, &db, &noted()).await.unwrap(), Lookup::Missing));
    assert!(matches!(store.get_secret(&p, &db).await.unwrap(), Lookup::Missing));
    let stranger = TenantName::parse("nobody-here").unwrap();
    assert_eq!(store.data_key(&stranger).await.unwrap(), None);
    assert!(store.list_secrets(&stranger).await.unwrap().is_none());
}
