//! The audit contract's cases that need PostgreSQL's own access: an audit insert made to fail,
//! and rows changed behind the server's back by the tenant's own role (the table's owner, who
//! can switch its append-only triggers off; a role that logs in with the tenant's password
//! could do the same).

use std::sync::Arc;

use cloacina_domain::TenantName;
use cloacina_domain::ports::StoreError;
use sqlx::AssertSqlSafe;

use crate::db::translate;
use crate::{PgDb, PgSettings};

async fn fresh() -> PgDb {
    let db = cloacina_testpg::TestPg::shared().database().await;
    let pg = PgDb::connect(&cloacina_domain::Secret::new(db.url), &PgSettings::default()).await.unwrap();
    pg.migrate().await.unwrap();
    pg
}

/// Runs `sql` as tenant `public`'s role in its schema, in a transaction of its own.
async fn as_tenant(pg: &PgDb, sql: &str) -> Result<(), StoreError> {
    let mut tx = pg.begin_tenant(&TenantName::public()).await?.expect("public exists");
    sqlx::raw_sql(AssertSqlSafe(sql.to_owned())).execute(&mut *tx).await.map_err(translate)?;
    tx.commit().await.map_err(translate)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_whose_audit_row_cannot_be_written_is_rolled_back() {
    let pg = fresh().await;
    let store: cloacina_contract::Store = Arc::new(pg.clone());
    let sabotage = async move {
        as_tenant(&pg, "ALTER TABLE audit_log ADD CONSTRAINT sabotage CHECK (false) NOT VALID").await.unwrap();
    };
    cloacina_contract::audit::changes_fail_closed(store, sabotage).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_or_deleted_row_is_found_at_its_place() {
    let pg = fresh().await;
    let store: cloacina_contract::Store = Arc::new(pg.clone());
    let (a, b) = (pg.clone(), pg);
    let unguarded = |sql: String| {
        format!("ALTER TABLE audit_log DISABLE TRIGGER USER; {sql}; ALTER TABLE audit_log ENABLE TRIGGER USER")
    };
    cloacina_contract::audit::tampering_is_found(
        store,
        move |seq| async move {
            as_tenant(&a, &unguarded(format!("UPDATE audit_log SET target = 'forged' WHERE seq = {seq}")))
                .await
                .unwrap();
        },
        move |seq| async move {
            as_tenant(&b, &unguarded(format!("DELETE FROM audit_log WHERE seq = {seq}"))).await.unwrap();
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordinary_statements_cannot_change_or_remove_audit_rows() {
    let pg = fresh().await;
    let store: cloacina_contract::Store = Arc::new(pg.clone());
    let attempt = move || async move {
        (as_tenant(&pg, "UPDATE audit_log SET target = 'x'").await, as_tenant(&pg, "DELETE FROM audit_log").await)
    };
    cloacina_contract::audit::rows_are_append_only(store, attempt).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenants_role_cannot_read_or_write_a_tenants_audit_rows() {
    use cloacina_domain::ports::TenantStore;
    let pg = fresh().await;
    let acme = TenantName::parse("acme").unwrap();
    let new = cloacina_domain::NewTenant {
        name: acme.clone(),
        description: None,
        db_password: cloacina_domain::Secret::new("pw_acme_Zx9-abcdefghijklmnop"),
        created_at: chrono::Utc::now(),
    };
    pg.create_tenant(&new, &cloacina_contract::noted()).await.unwrap();
    let mut tx = pg.begin_tenant(&acme).await.unwrap().unwrap();
    let read = sqlx::raw_sql("SELECT count(*) FROM \"tenant_public\".audit_log").execute(&mut *tx).await;
    assert_eq!(crate::db::sqlstate(&read.unwrap_err()).as_deref(), Some("42501"));
    drop(tx);
    let mut tx = pg.begin_tenant(&acme).await.unwrap().unwrap();
    let write = sqlx::raw_sql("UPDATE public.audit_head SET seq = 0").execute(&mut *tx).await;
    assert_eq!(crate::db::sqlstate(&write.unwrap_err()).as_deref(), Some("42501"), "nor the control chain's head");
}
