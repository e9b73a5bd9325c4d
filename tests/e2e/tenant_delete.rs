//! Deleting tenants while their executions run, on PostgreSQL: every delete answers 200 (no
//! deadlock with the engine's claims, outcomes and renewals, whatever moment it lands at), and
//! the tenant's running attempt is stopped at once, not at its next lease renewal.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;

use crate::executions::{execute, pack, processes_left, upload};
use crate::harness::{Server, bootstrap_key};

const ROUNDS: usize = 50;

#[tokio::test(flavor = "multi_thread")]
async fn fifty_tenants_deleted_mid_run_are_fifty_clean_deletes_with_no_task_left_running() {
    let db = cloacina_testpg::TestPg::shared().database().await;
    let home = tempfile::tempdir().unwrap();
    let server =
        Server::start(home.path(), &["--database-url", &db.url, "--db-max-connections", "8", "--workers", "8"], &[]);
    let god = bootstrap_key(home.path());
    let marker = format!("606.{}", std::time::UNIX_EPOCH.elapsed().unwrap().subsec_nanos());
    // Quick tasks keep the engine claiming and recording while the delete lands; `hold` runs.
    let mut workflows = String::from("[[workflow]]\nname = \"busy\"\n");
    for i in 0..6 {
        workflows.push_str(&format!("[[workflow.task]]\nid = \"quick{i}\"\ncommand = [\"true\"]\n"));
    }
    workflows.push_str(&format!("[[workflow.task]]\nid = \"hold\"\ncommand = [\"sleep\", \"{marker}\"]\n"));
    let package = pack(home.path(), "busy", "1.0.0", &workflows, &[]);
    let mut slowest = Duration::ZERO;
    for round in 0..ROUNDS {
        let tenant = format!("doomed{round}");
        let (status, body) = server.call(Method::POST, "/v1/tenants", Some(&god), Some(json!({"name": tenant}))).await;
        assert_eq!(status, 201, "round {round}: {body}\n{}", server.stderr());
        assert_eq!(upload(&server, &tenant, &god, &package).await.0, 201);
        let (_, accepted, _) = execute(&server, &tenant, &god, "busy", json!({}), None).await;
        let id = accepted["execution_id"].as_str().unwrap().to_owned();
        // Delete at a different moment each round: before anything ran, while the quick tasks
        // are claimed, or once `hold` runs.
        if round % 3 != 0 {
            let started = Instant::now();
            loop {
                let (_, tasks) = server.get(&format!("/v1/tenants/{tenant}/executions/{id}/tasks"), Some(&god)).await;
                let running = tasks["tasks"].as_array().into_iter().flatten().any(|t| t["status"] == "Running");
                if (round % 3 == 1 && running) || (round % 3 == 2 && !processes_left_now(&marker).is_empty()) {
                    break;
                }
                assert!(started.elapsed() < Duration::from_secs(30), "round {round}: nothing started");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        let started = Instant::now();
        let (status, body) = server.call(Method::DELETE, &format!("/v1/tenants/{tenant}"), Some(&god), None).await;
        slowest = slowest.max(started.elapsed());
        assert_eq!(status, 200, "round {round}: {body}\n{}", server.stderr());
        assert_eq!(processes_left(&marker).await, Vec::<String>::new(), "round {round}: a task ran on");
        let (status, _) = server.get(&format!("/v1/tenants/{tenant}"), Some(&god)).await;
        assert_eq!(status, 404, "round {round}: the tenant is gone\n{}", server.stderr());
    }
    println!("{ROUNDS} tenants deleted mid-run; slowest delete {slowest:?}");
    assert_eq!(server.get("/ready", None).await.0, 200);
    server.stop();
}

fn processes_left_now(marker: &str) -> Vec<String> {
    cloacina_testpg::tools::processes_with(marker)
}
