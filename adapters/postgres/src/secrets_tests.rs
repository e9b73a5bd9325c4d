//! A secret's ciphertext copied into another tenant's row does not open there: it is sealed
//! under its own tenant's data key, bound to its tenant and name.

use chrono::Utc;
use cloacina_domain::ports::{SecretMode, SecretPut, SecretStore, TenantStore};
use cloacina_domain::secrets::{DataKey, MasterKey, SecretFields, SecretName, SecretRecord, SecretWrite, SecretsError};
use cloacina_domain::{NewTenant, Secret, TenantName};

use crate::{PgDb, PgSettings};

async fn tenant(pg: &PgDb, name: &str) -> TenantName {
    let t = TenantName::parse(name).unwrap();
    let new = NewTenant {
        name: t.clone(),
        description: None,
        db_password: Secret::new(format!("pw_{name}_Zx9-abcdefghijklmnop")),
        created_at: Utc::now(),
    };
    pg.create_tenant(&new, &cloacina_contract::noted()).await.unwrap();
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ciphertext_copied_to_another_tenants_row_fails_to_decrypt() {
    let db = cloacina_testpg::TestPg::shared().database().await;
    let pg = PgDb::connect(&Secret::new(db.url.clone()), &PgSettings::default()).await.unwrap();
    pg.migrate().await.unwrap();
    let master = MasterKey::from_bytes([1; 32]);
    let name = SecretName::parse("db").unwrap();
    for (t, byte, value) in [("acme", 2u8, "acme-password"), ("globex", 3u8, "globex-password")] {
        let t = tenant(&pg, t).await;
        let dek = DataKey::from_bytes([byte; 32]);
        let f = SecretFields::new([("password".to_owned(), value.to_owned())].into()).unwrap();
        let now = Utc::now();
        let w = SecretWrite {
            record: SecretRecord {
                id: uuid::Uuid::new_v4(),
                name: name.clone(),
                field_names: f.names(),
                created_at: now,
                updated_at: now,
            },
            sealed: dek.seal(&t, &name, &f, [byte; 12]),
        };
        let key = master.wrap(&t, &dek, [byte; 12]);
        let put = pg.put_secret(&t, &w, &key, true, SecretMode::Create, &cloacina_contract::noted()).await.unwrap();
        assert!(matches!(put, Some(SecretPut::Stored(_))));
    }
    // A superuser copies acme's ciphertext over globex's.
    let mut admin = cloacina_testpg::TestPg::shared().admin_of(&db.name).await;
    sqlx::raw_sql(
        "UPDATE tenant_globex.secrets g SET nonce = a.nonce, sealed = a.sealed
         FROM tenant_acme.secrets a WHERE a.name = g.name",
    )
    .execute(&mut admin)
    .await
    .unwrap();
    let globex = TenantName::parse("globex").unwrap();
    let found = pg.sealed_secrets(&globex, std::slice::from_ref(&name)).await.unwrap().unwrap();
    let dek = master.unwrap(&globex, found.key.as_ref().unwrap()).unwrap();
    assert_eq!(dek.open(&globex, &name, &found.secrets[0].1), Err(SecretsError::Tampered));
    // And acme's own still opens under acme's key.
    let acme = TenantName::parse("acme").unwrap();
    let own = pg.sealed_secrets(&acme, std::slice::from_ref(&name)).await.unwrap().unwrap();
    let opened =
        master.unwrap(&acme, own.key.as_ref().unwrap()).unwrap().open(&acme, &name, &own.secrets[0].1).unwrap();
    assert_eq!(opened.get("password").map(Secret::expose), Some("acme-password"));
}
