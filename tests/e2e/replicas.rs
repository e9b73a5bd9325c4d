//! More than one server on one database, and servers that die: two replicas sharing the work
//! without running a task twice, `kill -9` at random points losing no execution, an API-only
//! server beside a worker server, and a shutdown giving back its running attempt.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;

use crate::executions::{NAP_SH, execute, finished, pack, processes_left, tasks, upload};
use crate::harness::{Server, bootstrap_key};
use cloacina_testpg::tools::processes_with;

fn counted_package(home: &Path, nap: &str, marker: &str) -> PathBuf {
    let workflows = format!(
        r#"
[[workflow]]
name = "counted"
[[workflow.task]]
id = "one"
command = ["sh", "step.sh", "one"]
env = {{ NAP = "{nap}" }}
[[workflow.task]]
id = "two"
command = ["sh", "step.sh", "two"]
depends_on = ["one"]
env = {{ NAP = "{nap}" }}
[[workflow.task]]
id = "three"
command = ["sh", "step.sh", "three"]
depends_on = ["two"]
env = {{ NAP = "{nap}" }}

[[workflow]]
name = "hold"
[[workflow.task]]
id = "hold"
command = ["sh", "-c", "sleep 600 & sleep 600; : {marker}"]
timeout = "15m"
"#
    );
    let step =
        "n=$(sed -n 's/.*\"n\": *\\([0-9]*\\).*/\\1/p' \"$CLOACINA_CONTEXT_FILE\")\nsleep \"$NAP\"\necho \"$n $1\"\n";
    pack(home, "counted", "1.0.0", &workflows, &[("step.sh", step)])
}

/// (execution, task) → how many times it was started, from the executions' events.
async fn runs(server: &Server, key: &str, ids: &[String]) -> BTreeMap<(String, String), usize> {
    let mut m = BTreeMap::new();
    for id in ids {
        let (status, events) =
            server.get(&format!("/v1/tenants/public/executions/{id}/events?limit=1000"), Some(key)).await;
        assert_eq!(status, 200, "{events}");
        for e in events["events"].as_array().unwrap() {
            if e["event_type"] == "task_started" {
                *m.entry((id.clone(), e["task_name"].as_str().unwrap_or_default().to_owned())).or_insert(0) += 1;
            }
        }
    }
    m
}

#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_share_the_work_and_never_run_a_task_twice_while_both_live() {
    let db = cloacina_testpg::TestPg::shared().database().await;
    let (home_a, home_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let flags = ["--database-url", db.url.as_str(), "--db-max-connections", "6", "--workers", "3"];
    let a = Server::start(home_a.path(), &flags, &[]);
    let god = bootstrap_key(home_a.path());
    let b = Server::start(home_b.path(), &flags, &[]);
    let file = counted_package(home_a.path(), "0.05", "replicas");
    assert_eq!(upload(&a, "public", &god, &file).await.0, 201);
    let mut ids = Vec::new();
    for n in 0..30 {
        let via = if n % 2 == 0 { &a } else { &b };
        let (status, body, _) = execute(via, "public", &god, "counted", json!({"context": {"n": n}}), None).await;
        assert_eq!(status, 202, "{body}");
        ids.push(body["execution_id"].as_str().unwrap().to_owned());
    }
    for id in &ids {
        let e = finished(&a, "public", &god, id, Duration::from_secs(60)).await;
        assert_eq!(e["status"], "Completed", "{e}");
    }
    let counts = runs(&a, &god, &ids).await;
    assert_eq!(counts.len(), 90, "every task of every execution ran");
    let twice: Vec<_> = counts.iter().filter(|(_, c)| **c > 1).collect();
    assert!(twice.is_empty(), "tasks ran twice with both replicas alive: {twice:?}");
    let mut workers = BTreeSet::new();
    for id in &ids {
        let (_, events) = a.get(&format!("/v1/tenants/public/executions/{id}/events"), Some(&god)).await;
        for e in events["events"].as_array().unwrap() {
            if e["event_type"] == "task_started" {
                workers.insert(e["detail"]["worker"].as_str().unwrap().to_owned());
            }
        }
    }
    assert_eq!(workers.len(), 2, "both replicas ran tasks: {workers:?}");
    a.stop();
    b.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_at_random_points_loses_no_execution() {
    let db = cloacina_testpg::TestPg::shared().database().await;
    let home = tempfile::tempdir().unwrap();
    let flags = ["--database-url", db.url.as_str(), "--db-max-connections", "6", "--workers", "4", "--task-lease", "2"];
    let mut server = Server::start(home.path(), &flags, &[]);
    let god = bootstrap_key(home.path());
    // A task that is always running when the server is killed, with a marker to find its
    // processes by: none may survive a kill.
    let marker = format!("kill9-{}", std::time::UNIX_EPOCH.elapsed().unwrap().as_nanos());
    let file = counted_package(home.path(), "0", &marker);
    assert_eq!(upload(&server, "public", &god, &file).await.0, 201);
    let (status, held, _) = execute(&server, "public", &god, "hold", json!({}), None).await;
    assert_eq!(status, 202, "{held}");
    // The scoreboard's figure: 1,000 executions (3,000 task processes).
    let total = 1000u64;
    let mut ids = Vec::new();
    for n in 0..total {
        let (status, body, _) = execute(&server, "public", &god, "counted", json!({"context": {"n": n}}), None).await;
        assert_eq!(status, 202, "{body}");
        ids.push(body["execution_id"].as_str().unwrap().to_owned());
    }
    // Kill at pseudo-random points (seeded by the clock, printed for a re-run), restarting each time.
    let seed = std::time::UNIX_EPOCH.elapsed().unwrap().subsec_nanos();
    let mut x = u64::from(seed) | 1;
    let mut kills = 0;
    let mut live_at_kill = Vec::new();
    for _ in 0..4 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let after = Duration::from_millis(200 + x % 1200);
        // The held task runs again once its lost lease runs out (2 s after a kill).
        for _ in 0..200 {
            if !processes_with(&marker).is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(after).await;
        let running = processes_with(&marker).len();
        server.signal("KILL");
        let status = server.wait();
        assert!(!status.success());
        kills += 1;
        let orphans = processes_left(&marker).await;
        assert!(
            orphans.is_empty(),
            "task processes outlived the killed server ({running} before the kill): {orphans:?}"
        );
        live_at_kill.push(running);
        server = Server::start(home.path(), &flags, &[]);
    }
    let mut statuses = BTreeMap::new();
    for id in &ids {
        let e = finished(&server, "public", &god, id, Duration::from_secs(300)).await;
        *statuses.entry(e["status"].as_str().unwrap().to_owned()).or_insert(0) += 1;
    }
    let counts = runs(&server, &god, &ids).await;
    let duplicates: usize = counts.values().map(|c| c - 1).sum();
    println!(
        "kill -9: {kills} kills (seed {seed}), marked task processes running at each kill {live_at_kill:?}, none after"
    );
    println!(
        "kill -9: {kills} kills (seed {seed}), {total} executions: {statuses:?}; {} task runs for {} tasks, {duplicates} duplicated",
        counts.values().sum::<usize>(),
        counts.len()
    );
    assert_eq!(statuses.get("Completed"), Some(&(total as usize)), "every execution finished and none was lost");
    assert_eq!(counts.len(), (total * 3) as usize, "every task ran at least once");
    let held = held["execution_id"].as_str().unwrap();
    let (status, body) =
        server.call(Method::POST, &format!("/v1/tenants/public/executions/{held}/cancel"), Some(&god), None).await;
    assert_eq!(status, 200, "{body}");
    assert!(processes_left(&marker).await.is_empty(), "a cancelled attempt's processes are gone");
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_api_only_server_runs_nothing_and_a_worker_server_on_the_same_database_runs_it() {
    let db = cloacina_testpg::TestPg::shared().database().await;
    let (home_api, home_worker) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let api = Server::start(
        home_api.path(),
        &["--database-url", &db.url, "--db-max-connections", "4", "--workers", "0"],
        &[],
    );
    let god = bootstrap_key(home_api.path());
    let file = counted_package(home_api.path(), "0", "api-only");
    assert_eq!(upload(&api, "public", &god, &file).await.0, 201);
    let (_, accepted, _) = execute(&api, "public", &god, "counted", json!({"context": {"n": 7}}), None).await;
    let id = accepted["execution_id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, e) = api.get(&format!("/v1/tenants/public/executions/{id}"), Some(&god)).await;
    assert_eq!(e["status"], "Pending", "an API-only server claims nothing: {e}");
    let worker = Server::start(
        home_worker.path(),
        &["--database-url", &db.url, "--db-max-connections", "4", "--workers", "2"],
        &[],
    );
    let e = finished(&api, "public", &god, &id, Duration::from_secs(30)).await;
    assert_eq!(e["status"], "Completed", "{e}");
    assert_eq!(runs(&api, &god, std::slice::from_ref(&id)).await.len(), 3);
    worker.stop();
    api.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_gives_back_a_running_attempt_and_the_next_server_runs_it_again() {
    let home = tempfile::tempdir().unwrap();
    let server = Server::start(home.path(), &["--shutdown-timeout", "1"], &[]);
    let god = bootstrap_key(home.path());
    let workflows = "[[workflow]]\nname = \"slow\"\n[[workflow.task]]\nid = \"wait\"\ncommand = [\"sh\", \"nap.sh\"]\ntimeout = \"1m\"\n";
    let file = pack(home.path(), "slow", "1.0.0", workflows, &[("nap.sh", NAP_SH)]);
    assert_eq!(upload(&server, "public", &god, &file).await.0, 201);
    let (_, accepted, _) = execute(&server, "public", &god, "slow", json!({}), None).await;
    let id = accepted["execution_id"].as_str().unwrap().to_owned();
    let start = Instant::now();
    while tasks(&server, "public", &god, &id).await["wait"]["status"] != "Running" {
        assert!(start.elapsed() < Duration::from_secs(10), "never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stopping = Instant::now();
    server.stop();
    assert!(stopping.elapsed() < Duration::from_secs(10), "drained within the shutdown timeout, not the task's 30 s");
    let server = Server::start(home.path(), &[], &[]);
    let (_, events) = server.get(&format!("/v1/tenants/public/executions/{id}/events"), Some(&god)).await;
    let kinds: Vec<&str> =
        events["events"].as_array().unwrap().iter().map(|e| e["event_type"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"task_released"), "{kinds:?}");
    let start = Instant::now();
    loop {
        let t = tasks(&server, "public", &god, &id).await;
        if t["wait"]["status"] == "Running" {
            assert_eq!(t["wait"]["attempt"], 1, "the given-back attempt did not count: {t:?}");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "the restarted server did not run it: {t:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, _) =
        server.call(Method::POST, &format!("/v1/tenants/public/executions/{id}/cancel"), Some(&god), None).await;
    assert_eq!(status, 200);
    server.stop();
}
