//! What an operator reads from `/metrics`: executions by state and the queue by state, per
//! tenant with the tenant label bounded (the largest 20 tenants named, the rest `other`),
//! task duration, claim latency and pool use; each read from the real server's exposition.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::executions::{execute, finished, pack, upload};
use crate::harness::{Server, bootstrap_key};

async fn scrape(server: &Server) -> String {
    reqwest::get(format!("{}/metrics", server.url)).await.unwrap().text().await.unwrap()
}

/// Scrapes until `line` shows (the census is taken in the background of a scrape).
async fn scrape_until(server: &Server, line: &str) -> String {
    for _ in 0..50 {
        let text = scrape(server).await;
        if text.contains(line) {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{line} never showed:\n{}", scrape(server).await);
}

const WORKFLOW: &str = "[[workflow]]\nname = \"counted\"\n[[workflow.task]]\nid = \"a\"\ncommand = [\"true\"]\n\
     [[workflow.task]]\nid = \"b\"\ncommand = [\"true\"]\ndepends_on = [\"a\"]\n";

#[tokio::test(flavor = "multi_thread")]
async fn executions_and_the_queue_by_state_task_duration_and_claim_latency_on_sqlite() {
    let home = tempfile::tempdir().unwrap();
    let server = Server::start(home.path(), &[], &[]);
    let god = bootstrap_key(home.path());
    let file = pack(home.path(), "counted", "1.0.0", WORKFLOW, &[]);
    assert_eq!(upload(&server, "public", &god, &file).await.0, 201);
    let (_, accepted, _) = execute(&server, "public", &god, "counted", json!({}), None).await;
    let id = accepted["execution_id"].as_str().unwrap().to_owned();
    assert_eq!(finished(&server, "public", &god, &id, Duration::from_secs(60)).await["status"], "Completed");
    let text = scrape_until(&server, r#"cloacina_executions{state="Completed",tenant="public"} 1"#).await;
    for series in ["cloacina_task_duration_seconds_bucket", "cloacina_claim_duration_seconds_bucket"] {
        assert!(text.contains(series), "{series} missing");
    }
    println!(
        "{}",
        text.lines()
            .filter(|l| l.starts_with("cloacina_executions{") || l.starts_with("cloacina_task_duration_seconds_count"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn per_tenant_series_stay_bounded_and_pool_use_shows_on_postgres() {
    let db = cloacina_testpg::TestPg::shared().database().await;
    let home = tempfile::tempdir().unwrap();
    let args = ["--database-url", &db.url, "--db-max-connections", "8", "--workers", "0"];
    let server = Server::start(home.path(), &args, &[]);
    let god = bootstrap_key(home.path());
    for n in 0..22 {
        let (status, body) =
            server.call(Method::POST, "/v1/tenants", Some(&god), Some(json!({"name": format!("t{n:02}")}))).await;
        assert_eq!(status, 201, "{body}");
    }
    let file = pack(home.path(), "counted", "1.0.0", WORKFLOW, &[]);
    assert_eq!(upload(&server, "t07", &god, &file).await.0, 201);
    for _ in 0..3 {
        assert_eq!(execute(&server, "t07", &god, "counted", json!({}), None).await.0, 202);
    }
    let text = scrape_until(&server, r#"cloacina_executions{state="Pending",tenant="t07"} 3"#).await;
    assert!(text.contains(r#"cloacina_queue_tasks{state="ready",tenant="t07"} 3"#), "the queue: one ready task each");
    let tenants: std::collections::BTreeSet<&str> = text
        .lines()
        .filter(|l| l.starts_with("cloacina_executions{") || l.starts_with("cloacina_queue_tasks{"))
        .filter_map(|l| l.split("tenant=\"").nth(1)?.split('"').next())
        .collect();
    println!("census tenants: {tenants:?}");
    assert!(tenants.len() <= 21, "at most 20 named and other: {tenants:?}");
    assert!(text.contains(r#"cloacina_db_pool_connections{state="in_use"}"#), "pool use");
    assert!(text.contains("cloacina_db_pool_max_connections"), "pool size");
    server.stop();
}
