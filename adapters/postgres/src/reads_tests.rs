//! Tenant reads on their bound connections (`reads`): each tenant sees its own rows whichever
//! tenant a connection served before, a tenant deleted or re-created elsewhere reads as it is
//! now, a cancelled read leaves no connection in a bad state, and the connections stay within
//! their share of `--db-max-connections`.

use chrono::Utc;
use cloacina_contract::noted;
use cloacina_domain::ports::{TenantStore, WorkflowStore};
use cloacina_domain::{Secret, TenantName};
use sqlx::Row;

use crate::tests::{connections_held, tenant};
use crate::{PgDb, PgSettings};

async fn with_max(url: &str, max_connections: u32) -> PgDb {
    let settings = PgSettings { max_connections, ..PgSettings::default() };
    PgDb::connect(&Secret::new(url), &settings).await.unwrap()
}

fn name(n: &str) -> TenantName {
    TenantName::parse(n).unwrap()
}

async fn add_workflow(pg: &PgDb, tenant: &TenantName, workflow: &str) {
    let mut tx = pg.begin_tenant(tenant).await.unwrap().unwrap();
    sqlx::query(
        "INSERT INTO packages (id, name, version, content_hash, size_bytes, manifest, workflows, archive, uploaded_at)
         VALUES ($1, 'p', '1.0.0', 'ab', 2, '', '[]', '', now())",
    )
    .bind(uuid::Uuid::new_v4())
    .execute(&mut *tx)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO workflows (name, package_name, version, description, tasks, paused, updated_at)
         VALUES ($1, 'p', '1.0.0', NULL, '[]', false, now())",
    )
    .bind(workflow)
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

async fn workflows(pg: &PgDb, tenant: &TenantName) -> Option<Vec<String>> {
    pg.list_workflows(tenant).await.unwrap().map(|ws| ws.into_iter().map(|w| w.name).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_read_connection_serving_tenants_in_turn_shows_each_only_its_own_rows() {
    let db = cloacina_testpg::TestPg::shared().database().await;
    // 4 connections: 2 pooled, 1 for tenant reads, 1 trigger lane, so every read below shares one.
    let pg = with_max(&db.url, 4).await;
    pg.migrate().await.unwrap();
    for t in ["acme", "globex"] {
        pg.create_tenant(&tenant(t), &noted()).await.unwrap();
    }
    add_workflow(&pg, &name("acme"), "acme-only").await;
    for _ in 0..5 {
        assert_eq!(workflows(&pg, &name("acme")).await, Some(vec!["acme-only".to_owned()]));
        assert_eq!(workflows(&pg, &name("globex")).await, Some(vec![]));
        assert_eq!(workflows(&pg, &TenantName::public()).await, Some(vec![]));
    }
    let who = pg.tenant_read(&name("globex"), "SELECT current_user::text").await.unwrap().unwrap();
    let role: String = who[0].get(0);
    assert!(role.ends_with("_globex"), "a read runs as the tenant's role, not {role}");
    // The shared pool's connections never took on a tenant's role.
    let me: String = sqlx::query_scalar("SELECT current_user::text").fetch_one(pg.pool()).await.unwrap();
    assert_eq!(me, db.name);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_deleted_or_created_again_through_another_handle_reads_as_it_is_now() {
    let db = cloacina_testpg::TestPg::shared().database().await;
    let one = with_max(&db.url, 4).await;
    one.migrate().await.unwrap();
    let other = with_max(&db.url, 4).await;
    one.create_tenant(&tenant("acme"), &noted()).await.unwrap();
    add_workflow(&one, &name("acme"), "first").await;
    assert_eq!(workflows(&one, &name("acme")).await, Some(vec!["first".to_owned()]));
    // `one` holds a connection bound to acme's role and hears no notification.
    other.delete_tenant(&name("acme"), Utc::now(), &noted()).await.unwrap();
    assert_eq!(workflows(&one, &name("acme")).await, None, "a deleted tenant is gone, not an error");
    assert_eq!(workflows(&one, &name("acme")).await, None);

    assert_eq!(workflows(&one, &TenantName::public()).await, Some(vec![]));
    assert_eq!(workflows(&one, &TenantName::public()).await, Some(vec![]));
    let mut again = tenant("acme");
    again.created_at = Utc::now();
    other.create_tenant(&again, &noted()).await.unwrap();
    add_workflow(&other, &name("acme"), "second").await;
    assert_eq!(workflows(&one, &name("acme")).await, Some(vec!["second".to_owned()]));
    // Bound to the new acme while the first acme is deleted again: the same, both ways.
    assert_eq!(workflows(&one, &name("acme")).await, Some(vec!["second".to_owned()]));
    other.delete_tenant(&name("acme"), Utc::now(), &noted()).await.unwrap();
    other.create_tenant(&tenant("acme"), &noted()).await.unwrap();
    assert_eq!(workflows(&one, &name("acme")).await, Some(vec![]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_cancelled_midway_leaves_its_connection_closed_and_the_next_read_right() {
    let db = cloacina_testpg::TestPg::shared().database().await;
    let pg = with_max(&db.url, 4).await;
    pg.migrate().await.unwrap();
    pg.create_tenant(&tenant("acme"), &noted()).await.unwrap();
    add_workflow(&pg, &name("acme"), "w").await;
    let acme = name("acme");
    let slow = pg.tenant_read(&acme, "SELECT pg_sleep(2)::text");
    assert!(tokio::time::timeout(std::time::Duration::from_millis(300), slow).await.is_err());
    // The only read connection was closed midway; the next read opens and binds another.
    for t in ["acme", "public", "acme"] {
        let expected = if t == "acme" { vec!["w".to_owned()] } else { vec![] };
        assert_eq!(workflows(&pg, &name(t)).await, Some(expected));
    }
    let rows = pg.tenant_read(&name("acme"), "SELECT 'after'::text").await.unwrap().unwrap();
    assert_eq!(rows[0].get::<String, _>(0), "after");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reads_of_many_tenants_stay_within_the_connection_limit() {
    let db = cloacina_testpg::TestPg::shared().database().await;
    let pg = with_max(&db.url, 5).await;
    pg.migrate().await.unwrap();
    for i in 0..12 {
        pg.create_tenant(&tenant(&format!("t{i}")), &noted()).await.unwrap();
    }
    let reads = (0..120).map(|i| {
        let pg = pg.clone();
        tokio::spawn(async move { workflows(&pg, &name(&format!("t{}", i % 12))).await })
    });
    for r in futures::future::join_all(reads).await {
        assert_eq!(r.unwrap(), Some(vec![]));
    }
    let held = connections_held(&db.name).await;
    assert!(held <= 5, "{held} connections with --db-max-connections 5");
    let (open, idle) = pg.connections();
    assert!(open <= 5 && idle <= open, "open {open}, idle {idle}");
}
