//! The adapter's own behaviours on a real server: pool bounds, tenant transactions, deleted
//! tenants, statement timeouts, connection errors, all-or-nothing tenant creation.

use chrono::Utc;
use cloacina_contract::noted;
use cloacina_domain::ports::{TenantCreated, TenantStore};
use cloacina_domain::{NewTenant, Secret, TenantName};

use crate::db::sqlstate;
use crate::{PgDb, PgSettings};

pub(crate) async fn fresh() -> PgDb {
    let db = cloacina_testpg::TestPg::shared().database().await;
    let pg = PgDb::connect(&Secret::new(db.url), &PgSettings::default()).await.unwrap();
    pg.migrate().await.unwrap();
    pg
}

/// How many connections the test database has open now (`pg_stat_activity`).
pub(crate) async fn connections_held(database: &str) -> i64 {
    let mut admin = cloacina_testpg::TestPg::shared().admin().await;
    sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = $1")
        .bind(database)
        .fetch_one(&mut admin)
        .await
        .unwrap()
}

pub(crate) fn tenant(name: &str) -> NewTenant {
    NewTenant {
        name: TenantName::parse(name).unwrap(),
        description: None,
        db_password: Secret::new(format!("Probe-{name}-0123456789abcdef")),
        created_at: Utc::now(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chosen_password_with_quotes_and_backslashes_is_the_one_the_role_logs_in_with() {
    use sqlx::ConnectOptions as _;
    let db = cloacina_testpg::TestPg::shared().database().await;
    let pg = PgDb::connect(&Secret::new(db.url.clone()), &PgSettings::default()).await.unwrap();
    pg.migrate().await.unwrap();
    let chosen = r#"O'Brien\x27;--"$$-pw"#;
    let mut new = tenant("chosen");
    new.db_password = Secret::new(chosen);
    let TenantCreated::Created(record) = pg.create_tenant(&new, &noted()).await.unwrap() else { panic!("not created") };
    let role = record.db_role.unwrap();
    let base: sqlx::postgres::PgConnectOptions = db.url.parse().unwrap();
    let mut conn = base.clone().username(&role).password(chosen).connect().await.unwrap();
    let me: String = sqlx::query_scalar("SELECT current_user::text").fetch_one(&mut conn).await.unwrap();
    assert_eq!(me, role);
    let wrong = base.username(&role).password("O'Brien\\x27;--").connect().await;
    assert!(wrong.is_err(), "only the exact password logs in");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_tenant_create_leaves_nothing_behind() {
    let pg = fresh().await;
    pg.create_tenant(&tenant("acme"), &noted()).await.unwrap();
    // The name is taken: the second create fails after nothing of its own was kept.
    assert_eq!(pg.create_tenant(&tenant("acme"), &noted()).await, Ok(TenantCreated::NameTaken));
    // A password the domain would never admit is refused before any DDL.
    let mut bad = tenant("globex");
    bad.db_password = Secret::new("it's a\npassword");
    assert!(pg.create_tenant(&bad, &noted()).await.is_err());
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
    let settings = PgSettings { max_connections: 4, ..PgSettings::default() };
    let pg = PgDb::connect(&Secret::new(db.url.clone()), &settings).await.unwrap();
    pg.migrate().await.unwrap();
    for i in 0..30 {
        pg.create_tenant(&tenant(&format!("t{i}")), &noted()).await.unwrap();
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
    let held = connections_held(&db.name).await;
    assert!(held <= 4, "{held} connections for 30 tenants with at most 4");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_deleted_through_another_handle_is_gone_not_an_error() {
    let db = cloacina_testpg::TestPg::shared().database().await;
    let one = PgDb::connect(&Secret::new(db.url.clone()), &PgSettings::default()).await.unwrap();
    one.migrate().await.unwrap();
    let other = PgDb::connect(&Secret::new(db.url), &PgSettings::default()).await.unwrap();
    one.create_tenant(&tenant("acme"), &noted()).await.unwrap();
    let acme = TenantName::parse("acme").unwrap();
    one.begin_tenant(&acme).await.unwrap().unwrap().rollback().await.unwrap();
    // `one` now has acme's place cached and hears no notification.
    other.delete_tenant(&acme, Utc::now(), &noted()).await.unwrap();
    assert!(one.begin_tenant(&acme).await.unwrap().is_none());
    assert!(one.begin_tenant(&acme).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_workflows_read_back_in_its_own_schema_only() {
    use chrono::TimeZone;
    use cloacina_domain::ports::WorkflowStore;
    let pg = fresh().await;
    pg.create_tenant(&tenant("acme"), &noted()).await.unwrap();
    let acme = TenantName::parse("acme").unwrap();
    let mut tx = pg.begin_tenant(&acme).await.unwrap().unwrap();
    let package = uuid::Uuid::new_v4();
    sqlx::query(
        "INSERT INTO packages (id, name, version, content_hash, size_bytes, manifest, workflows, archive, uploaded_at)
         VALUES ($1, 'acme-etl', '1.2.0', 'ab', 2, '', '[\"nightly-etl\"]', '', $2)",
    )
    .bind(package)
    .bind(Utc.with_ymd_and_hms(2026, 4, 30, 0, 0, 0).unwrap())
    .execute(&mut *tx)
    .await
    .unwrap();
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
    assert_eq!((w.package_id, w.created_at), (package, Utc.with_ymd_and_hms(2026, 4, 30, 0, 0, 0).unwrap()));
    assert_eq!(pg.list_workflows(&TenantName::public()).await.unwrap(), Some(Vec::new()), "public sees none of it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_over_the_timeout_is_cancelled_and_reported_unavailable() {
    let db = cloacina_testpg::TestPg::shared().database().await;
    let settings = PgSettings { statement_timeout: std::time::Duration::from_millis(200), ..PgSettings::default() };
    let pg = PgDb::connect(&Secret::new(db.url), &settings).await.unwrap();
    let err = sqlx::query("SELECT pg_sleep(2)").execute(pg.pool()).await.unwrap_err();
    assert_eq!(sqlstate(&err).as_deref(), Some("57014"), "{err}");
    assert!(matches!(crate::db::translate(err), cloacina_domain::ports::StoreError::Unavailable(_)));
    sqlx::query("SELECT pg_sleep(0.05)").execute(pg.pool()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_url_or_an_absent_server_is_a_clear_error_without_the_password() {
    let settings = PgSettings { connect_timeout: std::time::Duration::from_secs(1), ..PgSettings::default() };
    let absent = PgDb::connect(&Secret::new("postgres://u:hunter2pw@127.0.0.1:1/db"), &settings).await.unwrap_err();
    let text = absent.to_string();
    assert!(text.contains("127.0.0.1:1/db") && !text.contains("hunter2pw"), "{text}");
    let bad = PgDb::connect(&Secret::new("postgres://u:hunter2pw@host:notaport/db"), &settings).await.unwrap_err();
    assert!(!bad.to_string().contains("hunter2pw"), "{bad}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_of_one_name_make_one_tenant_and_of_many_names_make_them_all() {
    let pg = fresh().await;
    let same: Vec<_> = (0..6)
        .map(|_| {
            let pg = pg.clone();
            tokio::spawn(async move { pg.create_tenant(&tenant("acme"), &noted()).await })
        })
        .collect();
    let mut created = 0;
    for r in futures::future::join_all(same).await {
        match r.unwrap() {
            Ok(TenantCreated::Created(_)) => created += 1,
            Ok(TenantCreated::NameTaken) => {}
            Err(e) => panic!("a racing create failed otherwise: {e}"),
        }
    }
    assert_eq!(created, 1);
    let many: Vec<_> = (0..8)
        .map(|i| {
            let pg = pg.clone();
            tokio::spawn(async move { pg.create_tenant(&tenant(&format!("t{i}")), &noted()).await })
        })
        .collect();
    for r in futures::future::join_all(many).await {
        r.unwrap().unwrap();
    }
    assert_eq!(pg.list_tenants().await.unwrap().len(), 10, "public, acme and eight more");
}

/// The smallest pool (`--db-max-connections 4`: two pooled) serves a request while another
/// holds a pooled connection: the notification listener sits outside the pool, and making a
/// tenant's key never wants a second connection while its transaction holds one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_smallest_pool_makes_a_tenant_key_while_one_connection_is_taken() {
    use cloacina_domain::ports::KeyStore;
    use cloacina_domain::{ApiKeyId, Authority, KeyDigest, KeyName, NewKey, Role, StoredSecret};
    let db = cloacina_testpg::TestPg::shared().database().await;
    let settings =
        PgSettings { max_connections: 4, connect_timeout: std::time::Duration::from_secs(2), ..PgSettings::default() };
    let pg = PgDb::connect(&Secret::new(db.url), &settings).await.unwrap();
    pg.migrate().await.unwrap();
    let (_stop, stop) = tokio::sync::watch::channel(false);
    let listening = pg.listen(std::sync::Arc::new(|_| {}), stop).await.unwrap();
    pg.forget_tenants();
    let _taken = pg.pool.acquire().await.unwrap();
    let key = NewKey {
        id: ApiKeyId::from_uuid(uuid::Uuid::from_bytes([7; 16])),
        name: KeyName::parse("small-pool").unwrap(),
        authority: Authority::Tenant { tenant: TenantName::public(), role: Role::Read },
        secret: StoredSecret::Sha256(KeyDigest::from_bytes([7; 32])),
        created_at: Utc::now(),
        created_by: None,
        expires_at: None,
    };
    pg.insert(&key, &noted()).await.expect("one free pooled connection is enough for a tenant's key");
    listening.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruning_deletes_an_executions_task_rows_though_no_key_ties_them_to_it() {
    use cloacina_contract::executions::{secs, t0};
    use cloacina_domain::ports::{ExecutionStore, TriggerStore};

    use crate::lanes_tests::{name, with_trigger};

    let db = cloacina_testpg::TestPg::shared().database().await;
    let pg = PgDb::connect(&Secret::new(db.url.clone()), &PgSettings::default()).await.unwrap();
    pg.migrate().await.unwrap();
    with_trigger(&pg, "acme").await;
    let acme = name("acme");
    let pass = pg.fire_due(&acme, t0() + secs(10), 100).await.unwrap().unwrap();
    let id = pass.started[0].execution;
    pg.cancel_execution(&acme, id, t0() + secs(11), &noted()).await.unwrap();
    let mut admin = cloacina_testpg::TestPg::shared().admin_of(&db.name).await;
    let rows = "SELECT (SELECT count(*) FROM tenant_acme.execution_tasks), (SELECT count(*) FROM tenant_acme.execution_events)";
    let (tasks, events): (i64, i64) = sqlx::query_as(rows).fetch_one(&mut admin).await.unwrap();
    assert!(tasks > 0 && events > 0, "{tasks} tasks, {events} events");
    assert_eq!(pg.prune_executions(&acme, t0() + secs(100)).await.unwrap(), 1);
    let left: (i64, i64) = sqlx::query_as(rows).fetch_one(&mut admin).await.unwrap();
    assert_eq!(left, (0, 0));
}
