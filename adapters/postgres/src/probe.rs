//! The database probe of the isolation matrix (quality.md, layer 6): as each tenant's role,
//! every statement against another tenant's schema or the control tables is refused by
//! PostgreSQL (SQLSTATE 42501), and the server's login role holds no standing access to
//! tenant data.
//!
//! What the probe does not claim: a role switch (`SET ROLE`) is checked by PostgreSQL against
//! the session's login role, which is a member of every tenant role, so a transaction that
//! itself issued `SET ROLE other` would become `other`. Only the adapter switches roles, with
//! the role name read from the registry and bound as a parameter; no request text ever
//! becomes SQL. Data statements, whatever their text, cannot cross.

use chrono::Utc;
use cloacina_domain::ports::TenantStore;
use cloacina_domain::{NewTenant, Secret, TenantName};
use sqlx::AssertSqlSafe;

use crate::db::{ident, sqlstate};
use crate::{PgDb, PgSettings};

async fn fresh() -> PgDb {
    let db = cloacina_testpg::TestPg::shared().database().await;
    let pg = PgDb::connect(&Secret::new(db.url), &PgSettings::default()).await.unwrap();
    pg.migrate().await.unwrap();
    pg
}

fn tenant(name: &str) -> NewTenant {
    NewTenant {
        name: TenantName::parse(name).unwrap(),
        description: None,
        db_password: Secret::new(format!("Probe-{name}-0123456789abcdef")),
        created_at: Utc::now(),
    }
}

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
        pg.create_tenant(&tenant(t)).await.unwrap();
    }
    let tenants = pg.list_tenants().await.unwrap();
    assert_eq!(tenants.len(), 3, "public, acme, globex");
    let mut refused = 0;
    for me in &tenants {
        // The tenant's own schema works.
        let mut tx = pg.begin_tenant(&me.name).await.unwrap().unwrap();
        sqlx::query("INSERT INTO audit_log (at, action) VALUES (now(), 'probe')").execute(&mut *tx).await.unwrap();
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
    let acme = pg.create_tenant(&tenant("acme")).await.unwrap();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_tenant_create_leaves_nothing_behind() {
    let pg = fresh().await;
    pg.create_tenant(&tenant("acme")).await.unwrap();
    // The name is taken: the second create fails after nothing of its own was kept.
    assert!(pg.create_tenant(&tenant("acme")).await.is_err());
    // A password we would never generate is refused before any DDL.
    let mut bad = tenant("globex");
    bad.db_password = Secret::new("it's");
    assert!(pg.create_tenant(&bad).await.is_err());
    let schemas: Vec<String> =
        sqlx::query_scalar("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'tenant_%' ORDER BY 1")
            .fetch_all(pg.pool())
            .await
            .unwrap();
    assert_eq!(schemas, ["tenant_acme", "tenant_public"]);
    assert!(pg.get_tenant(&TenantName::parse("globex").unwrap()).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_stay_within_the_pool_whatever_the_tenant_count() {
    let db = cloacina_testpg::TestPg::shared().database().await;
    let settings = PgSettings { max_connections: 3, ..PgSettings::default() };
    let pg = PgDb::connect(&Secret::new(db.url.clone()), &settings).await.unwrap();
    pg.migrate().await.unwrap();
    for i in 0..30 {
        pg.create_tenant(&tenant(&format!("t{i}"))).await.unwrap();
    }
    let work = (0..30).map(|i| {
        let pg = pg.clone();
        tokio::spawn(async move {
            let mut tx = pg.begin_tenant(&TenantName::parse(&format!("t{i}")).unwrap()).await.unwrap().unwrap();
            sqlx::query("SELECT count(*) FROM audit_log").execute(&mut *tx).await.unwrap();
            tx.commit().await.unwrap();
        })
    });
    futures::future::join_all(work).await.into_iter().for_each(|r| r.unwrap());
    let mut admin = cloacina_testpg::TestPg::shared().admin().await;
    let held: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = $1")
        .bind(&db.name)
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert!(held <= 3, "{held} connections for 30 tenants with a pool of 3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_deleted_through_another_handle_is_gone_not_an_error() {
    let db = cloacina_testpg::TestPg::shared().database().await;
    let one = PgDb::connect(&Secret::new(db.url.clone()), &PgSettings::default()).await.unwrap();
    one.migrate().await.unwrap();
    let other = PgDb::connect(&Secret::new(db.url), &PgSettings::default()).await.unwrap();
    one.create_tenant(&tenant("acme")).await.unwrap();
    let acme = TenantName::parse("acme").unwrap();
    one.begin_tenant(&acme).await.unwrap().unwrap().rollback().await.unwrap();
    // `one` now has acme's place cached and hears no notification.
    other.delete_tenant(&acme, Utc::now()).await.unwrap();
    assert!(one.begin_tenant(&acme).await.unwrap().is_none());
    assert!(one.begin_tenant(&acme).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_workflows_read_back_in_its_own_schema_only() {
    use chrono::TimeZone;
    use cloacina_domain::ports::WorkflowStore;
    let pg = fresh().await;
    pg.create_tenant(&tenant("acme")).await.unwrap();
    let acme = TenantName::parse("acme").unwrap();
    let mut tx = pg.begin_tenant(&acme).await.unwrap().unwrap();
    sqlx::query(
        "INSERT INTO workflows (name, package_name, version, description, tasks, paused, updated_at)
         VALUES ('nightly-etl', 'acme-etl', '1.2.0', 'Nightly ETL', '[\"extract\", \"load\"]', true, $1)",
    )
    .bind(Utc.with_ymd_and_hms(2026, 5, 1, 2, 0, 0).unwrap())
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let listed = pg.list_workflows(&acme).await.unwrap().unwrap();
    assert_eq!(listed.len(), 1);
    let w = &listed[0];
    assert_eq!((w.name.as_str(), w.package_name.as_str(), w.version.as_str()), ("nightly-etl", "acme-etl", "1.2.0"));
    assert_eq!(
        (w.description.as_deref(), w.tasks.clone(), w.paused),
        (Some("Nightly ETL"), vec!["extract".into(), "load".into()], true)
    );
    assert_eq!(w.updated_at, Utc.with_ymd_and_hms(2026, 5, 1, 2, 0, 0).unwrap());
    assert_eq!(pg.list_workflows(&TenantName::public()).await.unwrap(), Some(Vec::new()), "public sees none of it");
}
