//! Trigger passes on their lanes (`lanes`): one lane serving tenants in turn fires each only
//! its own triggers, as each tenant's role, and keeps each statement's generic plan; a tenant
//! deleted elsewhere is gone for the lane's next pass, and a lane whose connection died
//! connects again.

use cloacina_contract::executions::{secs, t0};
use cloacina_contract::noted;
use cloacina_contract::triggers::package;
use cloacina_domain::ports::{PackageStore, TenantStore, TriggerStore};
use cloacina_domain::{Secret, TenantName};

use crate::tests::tenant;
use crate::{PgDb, PgSettings};

const EVERY_10S: &str = "name = \"every\"\ncron = \"*/10 * * * * *\"\noverlap = \"allow\"";

/// A server of 4 connections: its one trigger lane serves every tenant.
async fn one_lane(url: &str) -> PgDb {
    let settings = PgSettings { max_connections: 4, ..PgSettings::default() };
    let pg = PgDb::connect(&Secret::new(url), &settings).await.unwrap();
    assert_eq!(pg.trigger_lanes(), 1);
    pg
}

pub(crate) fn name(n: &str) -> TenantName {
    TenantName::parse(n).unwrap()
}

pub(crate) async fn with_trigger(pg: &PgDb, t: &str) {
    pg.create_tenant(&tenant(t), &noted()).await.unwrap();
    pg.store_package(&name(t), &package(&format!("p-{t}"), "1.0.0", &[EVERY_10S]), &noted()).await.unwrap().unwrap();
}

/// Executions of `tenant` by the trigger, as its own role sees them.
async fn fired(pg: &PgDb, tenant: &str) -> i64 {
    let mut tx = pg.begin_tenant(&name(tenant)).await.unwrap().unwrap();
    let n = sqlx::query_scalar("SELECT count(*) FROM executions WHERE trigger = 'every'")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_lane_serving_tenants_in_turn_fires_each_its_own_as_its_role_on_kept_generic_plans() {
    let db = cloacina_testpg::TestPg::shared().database().await;
    let pg = one_lane(&db.url).await;
    pg.migrate().await.unwrap();
    for t in ["acme", "globex"] {
        with_trigger(&pg, t).await;
    }
    for (t, s) in [("acme", 10), ("globex", 10), ("acme", 20), ("globex", 20), ("acme", 30)] {
        let at = t0() + secs(s);
        let pass = pg.fire_due(&name(t), at, 100).await.unwrap().unwrap();
        assert_eq!(pass.started.len(), 1, "{t} at {at}");
    }
    assert_eq!((fired(&pg, "acme").await, fired(&pg, "globex").await), (3, 2));

    let mut lane = pg.lanes.acquire(&name("acme")).await.unwrap();
    // Between passes the lane is the login role with no schema on its path.
    let (user, path): (String, String) = sqlx::query_as("SELECT current_user::text, current_setting('search_path')")
        .fetch_one(lane.conn())
        .await
        .unwrap();
    assert_eq!((user.as_str(), path.as_str()), (db.name.as_str(), ""));
    // Each tenant's statements were prepared once and ran on their generic plan every time.
    let plans: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements
         WHERE statement LIKE '%\"tenant_acme\".triggers%' AND statement NOT LIKE '%pg_prepared_statements%'",
    )
    .fetch_all(lane.conn())
    .await
    .unwrap();
    assert_eq!(plans.len(), 2, "acme's read and write: {plans:?}");
    assert!(plans.iter().all(|(_, generic, custom)| *generic == 3 && *custom == 0), "{plans:?}");
    // Those plans scan none of the tables that grow with every fire: a pass costs the same
    // whatever the tenant's history.
    let role: String = sqlx::query_scalar("SELECT db_role FROM public.tenants WHERE name = 'acme'")
        .fetch_one(lane.conn())
        .await
        .unwrap();
    // The write is prepared by the driver, over the extended protocol: the test prepares a
    // copy of its text by name, and explains that with every parameter null.
    let write: String = sqlx::query_scalar(
        "SELECT statement FROM pg_prepared_statements WHERE statement LIKE 'WITH stored AS%\"tenant_acme\".executions%'",
    )
    .fetch_one(lane.conn())
    .await
    .unwrap();
    let params = (1..100).take_while(|i| write.contains(&format!("${i}::"))).count();
    assert_eq!(params, 34, "{write}");
    let explain = format!(
        "BEGIN; SELECT set_config('role', '{role}', true);
         PREPARE test_write AS {write};
         EXPLAIN (COSTS OFF) EXECUTE cloacina_read_0(now(), 100, ARRAY['skip']);
         EXPLAIN (COSTS OFF) EXECUTE test_write({});
         ROLLBACK; DEALLOCATE test_write",
        vec!["NULL"; params].join(", ")
    );
    let lines: Vec<String> = sqlx::raw_sql(sqlx::AssertSqlSafe(explain))
        .fetch_all(lane.conn())
        .await
        .unwrap()
        .iter()
        .filter_map(|r| sqlx::Row::try_get::<String, _>(r, 0).ok())
        .collect();
    assert!(lines.iter().any(|l| l.contains("Insert on executions")), "{lines:#?}");
    for table in ["executions", "execution_tasks", "execution_events"] {
        assert!(!lines.iter().any(|l| l.contains(&format!("Seq Scan on {table}"))), "{table}: {lines:#?}");
    }
    lane.keep();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lane_naming_one_tenant_at_a_time_deallocates_the_others_statements_and_every_pass_still_fires() {
    let db = cloacina_testpg::TestPg::shared().database().await;
    let pg = one_lane(&db.url).await;
    pg.migrate().await.unwrap();
    pg.lanes.name_at_most(1);
    for t in ["acme", "globex"] {
        with_trigger(&pg, t).await;
    }
    for (t, s) in [("acme", 10), ("globex", 10), ("acme", 20), ("globex", 20), ("acme", 30)] {
        let pass = pg.fire_due(&name(t), t0() + secs(s), 100).await.unwrap().unwrap();
        assert_eq!(pass.started.len(), 1, "{t} at {s} s");
    }
    assert_eq!((fired(&pg, "acme").await, fired(&pg, "globex").await), (3, 2));
    let mut lane = pg.lanes.acquire(&name("acme")).await.unwrap();
    let named: Vec<String> =
        sqlx::query_scalar("SELECT name FROM pg_prepared_statements WHERE name LIKE 'cloacina_%' ORDER BY name")
            .fetch_all(lane.conn())
            .await
            .unwrap();
    assert_eq!(
        named,
        ["cloacina_enter", "cloacina_read_4", "cloacina_settle"],
        "the session's own, and only the last tenant's read, under its fifth number"
    );
    lane.keep();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_deleted_elsewhere_is_gone_for_its_lane_and_the_lane_serves_the_next() {
    let db = cloacina_testpg::TestPg::shared().database().await;
    let pg = one_lane(&db.url).await;
    pg.migrate().await.unwrap();
    let other = one_lane(&db.url).await;
    for t in ["acme", "globex"] {
        with_trigger(&pg, t).await;
    }
    assert_eq!(pg.fire_due(&name("acme"), t0() + secs(10), 100).await.unwrap().unwrap().started.len(), 1);
    other.delete_tenant(&name("acme"), chrono::Utc::now(), &noted()).await.unwrap();
    // This handle still has acme's place cached: the role is gone, and so is the tenant.
    assert!(pg.fire_due(&name("acme"), t0() + secs(20), 100).await.unwrap().is_none());
    assert_eq!(pg.fire_due(&name("globex"), t0() + secs(20), 100).await.unwrap().unwrap().started.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lane_whose_connection_died_connects_again() {
    let db = cloacina_testpg::TestPg::shared().database().await;
    let pg = one_lane(&db.url).await;
    pg.migrate().await.unwrap();
    with_trigger(&pg, "acme").await;
    assert_eq!(pg.fire_due(&name("acme"), t0() + secs(10), 100).await.unwrap().unwrap().started.len(), 1);
    let pid: i32 = {
        let mut lane = pg.lanes.acquire(&name("acme")).await.unwrap();
        let pid = sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(lane.conn()).await.unwrap();
        lane.keep();
        pid
    };
    let mut admin = cloacina_testpg::TestPg::shared().admin().await;
    let killed: bool =
        sqlx::query_scalar("SELECT pg_terminate_backend($1)").bind(pid).fetch_one(&mut admin).await.unwrap();
    assert!(killed);
    // Idle past the ping threshold: the dead connection is found before the pass, not by it.
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    assert_eq!(pg.fire_due(&name("acme"), t0() + secs(20), 100).await.unwrap().unwrap().started.len(), 1);
    assert_eq!(fired(&pg, "acme").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_work_takes_a_lane_only_while_no_pass_holds_one_or_waits_for_one() {
    let db = cloacina_testpg::TestPg::shared().database().await;
    let pg = one_lane(&db.url).await;
    // A lane prepares its session's statements on the registry's tables as it connects.
    pg.migrate().await.unwrap();
    let acme = name("acme");
    let pass = pg.lanes.acquire(&acme).await.unwrap();
    let mut census = Box::pin(pg.lanes.acquire_when_quiet(&acme));
    assert!(futures::poll!(census.as_mut()).is_pending(), "a pass holds the lane");
    let mut next = Box::pin(pg.lanes.acquire(&acme));
    assert!(futures::poll!(next.as_mut()).is_pending(), "the lane is held");
    drop(pass);
    // The waiting pass has the lane next, and the census still waits for it.
    let next = next.await.unwrap();
    assert!(futures::poll!(census.as_mut()).is_pending(), "a pass holds the lane again");
    next.keep();
    let mut lane = census.await.unwrap();
    let one: i32 = sqlx::query_scalar("SELECT 1").fetch_one(lane.conn()).await.unwrap();
    assert_eq!(one, 1);
    lane.keep();
    // With no pass about, background work has the lane without waiting for one.
    pg.lanes.acquire_when_quiet(&acme).await.unwrap().keep();
}
