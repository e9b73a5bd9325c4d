//! The database probe of the isolation matrix (docs/testing.md, layer 6): as each tenant's role,
//! every statement against another tenant's schema or the control tables is refused by
//! PostgreSQL (SQLSTATE 42501), and the server's login role holds no standing access to
//! tenant data.
//!
//! What the probe does not claim: a role switch (`SET ROLE`) is checked by PostgreSQL against
//! the session's login role, which is a member of every tenant role, so a transaction that
//! itself issued `SET ROLE other` would become `other`. Only the adapter switches roles, with
//! the role name read from the registry and bound as a parameter; no request text ever
//! becomes SQL. Data statements, whatever their text, cannot cross.

use cloacina_contract::noted;
use cloacina_domain::ports::{TenantCreated, TenantStore};
use sqlx::AssertSqlSafe;

use crate::db::{ident, sqlstate};
use crate::tests::{fresh, tenant};

/// Statements a tenant must never be able to run against `other` (a tenant schema).
fn hostile(other_schema: &str) -> Vec<String> {
    let s = ident(other_schema);
    vec![
        format!("SELECT * FROM {s}.audit_log"),
        format!("INSERT INTO {s}.audit_log (at, action) VALUES (now(), 'forged')"),
        format!("UPDATE {s}.audit_log SET action = 'x'"),
        format!("DELETE FROM {s}.audit_log"),
        format!("TRUNCATE {s}.audit_log"),
        format!("CREATE TABLE {s}.planted (id int)"),
        format!("DROP TABLE {s}.audit_log"),
        format!("ALTER TABLE {s}.audit_log ADD COLUMN x int"),
        format!("SELECT * FROM {s}._cloacina_migrations"),
        "SELECT * FROM public.api_keys".into(),
        "UPDATE public.api_keys SET revoked = false".into(),
        "INSERT INTO public.tenants (name, schema_name, db_role, created_at) VALUES ('x', 'x', 'x', now())".into(),
        "SELECT * FROM public.tenants".into(),
        "SELECT * FROM public.cloacina_deployment".into(),
        "CREATE SCHEMA planted".into(),
        "CREATE TABLE public.planted (id int)".into(),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_cross_tenant_statement_is_refused_by_postgres() {
    let pg = fresh().await;
    for t in ["acme", "globex"] {
        pg.create_tenant(&tenant(t), &noted()).await.unwrap();
    }
    let tenants = pg.list_tenants().await.unwrap();
    assert_eq!(tenants.len(), 3, "public, acme, globex");
    let mut refused = 0;
    for me in &tenants {
        // The tenant's own schema works.
        let mut tx = pg.begin_tenant(&me.name).await.unwrap().unwrap();
        sqlx::query(
            "INSERT INTO audit_log (seq, at, action, target, outcome, detail, prev_hash, hash)
             VALUES (1, now(), 'probe', 'probe', 'ok', '{}', 'x', 'y')",
        )
        .execute(&mut *tx)
        .await
        .unwrap();
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log").fetch_one(&mut *tx).await.unwrap();
        assert_eq!(n, 1, "{} sees only its own rows", me.name);
        tx.rollback().await.unwrap();
        for other in tenants.iter().filter(|o| o.name != me.name) {
            for sql in hostile(&other.schema) {
                let mut tx = pg.begin_tenant(&me.name).await.unwrap().unwrap();
                let result = sqlx::raw_sql(AssertSqlSafe(sql.as_str())).execute(&mut *tx).await;
                let code = result.as_ref().err().and_then(sqlstate);
                assert_eq!(code.as_deref(), Some("42501"), "as {}: `{sql}` gave {result:?}", me.name);
                refused += 1;
                tx.rollback().await.unwrap();
            }
        }
    }
    assert_eq!(refused, 3 * 2 * 16);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_login_role_has_no_standing_access_to_tenant_data() {
    let pg = fresh().await;
    let TenantCreated::Created(acme) = pg.create_tenant(&tenant("acme"), &noted()).await.unwrap() else {
        panic!("not created")
    };
    let sql = format!("SELECT * FROM {}.audit_log", ident(&acme.schema));
    let err = sqlx::raw_sql(AssertSqlSafe(sql.as_str())).execute(pg.pool()).await.unwrap_err();
    assert_eq!(sqlstate(&err).as_deref(), Some("42501"), "{err}");
    let (superuser, bypass): (bool, bool) =
        sqlx::query_as("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
            .fetch_one(pg.pool())
            .await
            .unwrap();
    assert!(!superuser && !bypass, "the tests run the server as production does: no superuser, no BYPASSRLS");
}
