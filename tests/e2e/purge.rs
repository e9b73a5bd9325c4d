//! A deleted tenant leaves nothing behind: with two replicas that both unpacked its package,
//! `tenant delete` through one removes the unpacked folders on both (each sweeps on the
//! deletion notice), the database holds nothing of it, and the control chain of the audit
//! trail keeps one row saying it happened.

use std::path::Path;
use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::executions::{execute, finished, pack, upload};
use crate::harness::{Server, bootstrap_key};

/// Files under `dir` holding `marker`.
fn holding(dir: &Path, marker: &str) -> Vec<String> {
    let out = std::process::Command::new("grep").args(["-rl", marker]).arg(dir).output().unwrap();
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_tenants_packages_are_gone_from_every_replica_and_the_database() {
    let db = cloacina_testpg::TestPg::shared().database().await;
    let (home_a, home_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let flags = ["--database-url", db.url.as_str(), "--db-max-connections", "6", "--workers", "2"];
    let a = Server::start(home_a.path(), &flags, &[]);
    let god = bootstrap_key(home_a.path());
    let b = Server::start(home_b.path(), &flags, &[]);
    let (status, body) = a.call(Method::POST, "/v1/tenants", Some(&god), Some(json!({"name": "doomed"}))).await;
    assert_eq!(status, 201, "{body}");
    let marker = format!("purge-marker-{}", uuid::Uuid::new_v4().simple());
    let file = pack(
        home_a.path(),
        "doomed-pkg",
        "1.0.0",
        "[[workflow]]\nname = \"w\"\n[[workflow.task]]\nid = \"t\"\ncommand = [\"sh\", \"task.sh\"]\n",
        &[("task.sh", "sleep 0.2\n"), ("data.txt", &format!("{marker}\n"))],
    );
    std::fs::remove_dir_all(home_a.path().join("src-doomed-pkg-1.0.0")).unwrap();
    assert_eq!(upload(&a, "doomed", &god, &file).await.0, 201);
    std::fs::remove_file(&file).unwrap();
    // Runs until both replicas have unpacked the package.
    for round in 0..40 {
        let via = if round % 2 == 0 { &a } else { &b };
        let (status, body, _) = execute(via, "doomed", &god, "w", json!({}), None).await;
        assert_eq!(status, 202, "{body}");
        let id = body["execution_id"].as_str().unwrap();
        assert_eq!(finished(&a, "doomed", &god, id, Duration::from_secs(60)).await["status"], "Completed");
        if !holding(home_a.path(), &marker).is_empty() && !holding(home_b.path(), &marker).is_empty() {
            break;
        }
    }
    let (on_a, on_b) = (holding(home_a.path(), &marker), holding(home_b.path(), &marker));
    println!("before the delete: {} file(s) on A, {} on B hold the package's content", on_a.len(), on_b.len());
    assert!(!on_a.is_empty() && !on_b.is_empty(), "both replicas unpacked the package");

    let (status, body) = a.call(Method::DELETE, "/v1/tenants/doomed", Some(&god), None).await;
    assert_eq!(status, 200, "{body}");
    let mut left = (on_a.len(), on_b.len());
    for _ in 0..50 {
        left = (holding(home_a.path(), &marker).len(), holding(home_b.path(), &marker).len());
        if left == (0, 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("after the delete: {} file(s) on A, {} on B", left.0, left.1);
    assert_eq!(left, (0, 0), "every replica removed the tenant's unpacked packages");

    // The database: no schema, role or registry row; nothing in any remaining table names the
    // tenant's content; the control chain says what happened.
    let mut admin = cloacina_testpg::TestPg::shared().admin_of(&db.name).await;
    let schemas: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_namespace WHERE nspname = 'tenant_doomed'")
        .fetch_one(&mut admin)
        .await
        .unwrap();
    let roles: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_roles WHERE rolname LIKE '%\\_doomed'")
        .fetch_one(&mut admin)
        .await
        .unwrap();
    let tables: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_schema::text, table_name::text FROM information_schema.tables
         WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')",
    )
    .fetch_all(&mut admin)
    .await
    .unwrap();
    let mut hits = 0i64;
    for (schema, table) in &tables {
        let sql = format!("SELECT count(*) FROM \"{schema}\".\"{table}\" t WHERE t::text LIKE $1");
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(format!("%{marker}%"))
            .fetch_one(&mut admin)
            .await
            .unwrap();
        hits += n;
    }
    println!(
        "database: {schemas} schema(s), {roles} role(s), {hits} row(s) holding the content, in {} tables searched",
        tables.len()
    );
    assert_eq!((schemas, roles, hits), (0, 0, 0));
    let (_, audit) = a.get("/v1/audit?action=tenant.delete", Some(&god)).await;
    assert_eq!(audit["total"], 1, "{audit}");
    assert_eq!(audit["items"][0]["target"], "doomed");
    a.stop();
    b.stop();
}
