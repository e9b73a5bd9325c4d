//! The trigger policies through the real binary (docs/triggers.md): `catchup` after every
//! server was down across several due times, and `overlap` against a task that outlives its
//! trigger's interval, on both backends.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::executions::{pack, upload};
use crate::harness::{Server, bootstrap_key};

/// A trigger's executions, oldest scheduled time first.
async fn executions_of(server: &Server, key: &str, trigger: &str) -> Vec<Value> {
    let (status, page) =
        server.get(&format!("/v1/tenants/public/executions?trigger={trigger}&limit=1000"), Some(key)).await;
    assert_eq!(status, 200, "{page}");
    let mut items = page["items"].as_array().unwrap().clone();
    items.sort_by_key(|e| time(&e["scheduled_time"]));
    items
}

async fn counts_of(server: &Server, key: &str, trigger: &str) -> Value {
    let (status, t) = server.get(&format!("/v1/tenants/public/triggers/{trigger}"), Some(key)).await;
    assert_eq!(status, 200, "{t}");
    t["schedule"]["counts"].clone()
}

fn time(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("not a time: {v}"))).unwrap().to_utc()
}

/// Sleeps until the wall clock is `offset` past a multiple of `period`.
async fn sleep_until_phase(period: u32, offset: Duration) {
    let now = Utc::now();
    let into =
        Duration::from_millis(u64::try_from(now.timestamp_millis().rem_euclid(i64::from(period) * 1000)).unwrap());
    let period = Duration::from_secs(u64::from(period));
    let wait = if into <= offset { offset - into } else { period - into + offset };
    tokio::time::sleep(wait).await;
}

const CATCHUP: &str = r#"
[[workflow]]
name = "nightly"
[[workflow.task]]
id = "one"
command = ["true"]
[[workflow.trigger]]
name = "cu-skip"
cron = "*/5 * * * * *"
catchup = "skip"
overlap = "allow"
[[workflow.trigger]]
name = "cu-latest"
cron = "*/5 * * * * *"
catchup = "latest"
overlap = "allow"
[[workflow.trigger]]
name = "cu-all"
cron = "*/5 * * * * *"
catchup = "all"
overlap = "allow"
[[workflow.trigger]]
name = "cu-window"
cron = "*/5 * * * * *"
catchup = "all"
catchup_window = "20s"
overlap = "allow"
"#;

/// Every server stopped across 8 due times (every 5 s, down for 40 s), then started: at the
/// first pass the newest 2 are on time (within the 10 s grace) and the older 6 were missed
/// while no server ran. Stop and start fall 1.5 s past a due time, so start-up may take up to
/// 3.5 s without moving any time across a boundary.
#[tokio::test(flavor = "multi_thread")]
async fn after_every_server_was_down_across_8_due_times_each_catchup_policy_runs_what_it_says() {
    let home = tempfile::tempdir().unwrap();
    let server = Server::start(home.path(), &["--workers", "0"], &[]);
    let god = bootstrap_key(home.path());
    let file = pack(home.path(), "catchup", "1.0.0", CATCHUP, &[]);
    assert_eq!(upload(&server, "public", &god, &file).await.0, 201);
    sleep_until_phase(5, Duration::from_millis(1500)).await;
    let fired_before: BTreeMap<&str, usize> = {
        let mut m = BTreeMap::new();
        for t in ["cu-skip", "cu-latest", "cu-all", "cu-window"] {
            m.insert(t, executions_of(&server, &god, t).await.len());
        }
        m
    };
    let down_at = Utc::now();
    server.stop();
    tokio::time::sleep(Duration::from_secs(40).saturating_sub((Utc::now() - down_at).to_std().unwrap())).await;
    let up_at = Utc::now();
    let server = Server::start(home.path(), &["--workers", "0"], &[]);
    // The first pass runs at start-up; the next due time is 3.5 s after `up_at`.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    println!("all servers down from {down_at} to {up_at}; executions before: {fired_before:?}");

    let mut in_gap = BTreeMap::new();
    for t in ["cu-skip", "cu-latest", "cu-all", "cu-window"] {
        let times: Vec<DateTime<Utc>> = executions_of(&server, &god, t)
            .await
            .iter()
            .map(|e| time(&e["scheduled_time"]))
            .filter(|at| *at > down_at && *at < up_at)
            .collect();
        let c = counts_of(&server, &god, t).await;
        println!(
            "{t}: {} execution(s) for the down time, at {:?}; caught_up {}, skipped_catchup {}, missed {}",
            times.len(),
            times.iter().map(|d| d.format("%H:%M:%S").to_string()).collect::<Vec<_>>(),
            c["caught_up"],
            c["skipped_catchup"],
            c["missed"]
        );
        in_gap.insert(t, (times, c));
    }
    let all = &in_gap["cu-all"].0;
    let expected: Vec<DateTime<Utc>> =
        (0..8).map(|k| up_at - chrono::Duration::milliseconds(1500 + 5000 * k)).rev().collect();
    let expected: Vec<DateTime<Utc>> = expected
        .iter()
        .map(|d| DateTime::from_timestamp(d.timestamp() - d.timestamp().rem_euclid(5), 0).unwrap())
        .collect();
    assert_eq!(all, &expected, "catchup all: each of the 8 due times ran, oldest first");
    let newest = |n: usize| all[all.len() - n..].to_vec();
    let (skip, latest, window) = (&in_gap["cu-skip"], &in_gap["cu-latest"], &in_gap["cu-window"]);
    assert_eq!(skip.0, newest(2), "catchup skip: only the 2 on-time fires ran");
    assert_eq!(latest.0, newest(3), "catchup latest: the newest missed fire ran, and the 2 on time");
    assert_eq!(window.0, newest(4), "a 20 s window: the 2 missed within it ran, the 4 older did not");
    let count = |c: &Value, k: &str| c[k].as_u64().unwrap();
    assert_eq!((count(&in_gap["cu-all"].1, "caught_up"), count(&in_gap["cu-all"].1, "missed")), (6, 0));
    assert_eq!((count(&skip.1, "caught_up"), count(&skip.1, "skipped_catchup")), (0, 6));
    assert_eq!((count(&latest.1, "caught_up"), count(&latest.1, "skipped_catchup")), (1, 5));
    assert_eq!(
        (count(&window.1, "caught_up"), count(&window.1, "missed"), count(&window.1, "skipped_catchup")),
        (2, 4, 0),
        "older than the window is counted as missed, not run"
    );
    let metrics = reqwest::get(format!("{}/metrics", server.url)).await.unwrap().text().await.unwrap();
    for line in [
        r#"cloacina_trigger_fires_total{outcome="caught_up"} 9"#,
        r#"cloacina_trigger_fires_total{outcome="skipped_catchup"} 11"#,
        r#"cloacina_trigger_fires_total{outcome="missed"} 4"#,
    ] {
        assert!(metrics.contains(line), "{line} missing from /metrics:\n{metrics}");
    }
    server.stop();
}

const OVERLAP_TASK: &str = r#"
[[workflow.task]]
id = "nap"
command = ["sleep", "2.5"]
"#;

fn overlap_package(home: &Path) -> std::path::PathBuf {
    let mut workflows = String::new();
    for policy in ["skip", "allow", "buffer_one", "cancel_other"] {
        workflows.push_str(&format!(
            "\n[[workflow]]\nname = \"wf-{policy}\"\n{OVERLAP_TASK}[[workflow.trigger]]\nname = \"ov-{policy}\"\ncron = \"* * * * * *\"\noverlap = \"{policy}\"\n"
        ));
    }
    pack(home, "overlap", "1.0.0", &workflows, &[])
}

/// Whether any two executions ran at the same time (whole-second times: an execution that
/// starts after another finished never reads as earlier).
fn overlapping(runs: &[Value]) -> bool {
    let mut spans: Vec<(DateTime<Utc>, DateTime<Utc>)> = runs
        .iter()
        .filter(|e| e["status"] == "Completed")
        .map(|e| (time(&e["started_at"]), time(&e["completed_at"])))
        .collect();
    spans.sort();
    spans.windows(2).any(|w| w[1].0 < w[0].1)
}

/// A trigger every second against a task of 2.5 s, for 7 s, under each overlap policy.
async fn each_overlap_policy(server: &Server, god: &str, home: &Path, backend: &str) {
    let file = overlap_package(home);
    assert_eq!(upload(server, "public", god, &file).await.0, 201);
    tokio::time::sleep(Duration::from_secs(7)).await;
    for policy in ["skip", "allow", "buffer_one", "cancel_other"] {
        let (status, _) = server
            .call(reqwest::Method::POST, &format!("/v1/tenants/public/triggers/ov-{policy}/pause"), Some(god), None)
            .await;
        assert_eq!(status, 200);
    }
    // Let the last executions finish.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut runs = BTreeMap::new();
    loop {
        let mut unfinished = 0;
        for policy in ["skip", "allow", "buffer_one", "cancel_other"] {
            let es = executions_of(server, god, &format!("ov-{policy}")).await;
            unfinished += es.iter().filter(|e| e["completed_at"].is_null()).count();
            runs.insert(policy, es);
        }
        if unfinished == 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "executions still unfinished: {runs:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let mut counts = BTreeMap::new();
    for policy in ["skip", "allow", "buffer_one", "cancel_other"] {
        let c = counts_of(server, god, &format!("ov-{policy}")).await;
        let statuses = runs[policy].iter().fold(BTreeMap::<String, usize>::new(), |mut m, e| {
            *m.entry(e["status"].as_str().unwrap().to_owned()).or_default() += 1;
            m
        });
        println!(
            "{backend}, overlap {policy}: {} executions {statuses:?}; fired {}, skipped_overlap {}; overlapping runs: {}",
            runs[policy].len(),
            c["fired"],
            c["skipped_overlap"],
            overlapping(&runs[policy])
        );
        counts.insert(policy, c);
    }
    let n = |p: &str, k: &str| counts[p][k].as_u64().unwrap();
    for p in ["skip", "allow", "buffer_one", "cancel_other"] {
        assert_eq!(n(p, "fired"), runs[p].len() as u64, "{p}: every fire is one execution");
    }

    assert!(n("allow", "fired") >= 5 && n("allow", "skipped_overlap") == 0, "allow: {}", counts["allow"]);
    assert!(overlapping(&runs["allow"]), "allow: executions run alongside each other");
    assert!(runs["allow"].iter().all(|e| e["status"] == "Completed"));

    assert!(n("skip", "fired") >= 2 && n("skip", "skipped_overlap") >= 3, "skip: {}", counts["skip"]);
    assert!(!overlapping(&runs["skip"]), "skip: never two at once");

    assert!(
        n("buffer_one", "fired") >= 2 && n("buffer_one", "skipped_overlap") >= 1,
        "buffer_one: {}",
        counts["buffer_one"]
    );
    assert!(!overlapping(&runs["buffer_one"]), "buffer_one: never two at once");
    let waited =
        runs["buffer_one"].iter().map(|e| (time(&e["created_at"]) - time(&e["scheduled_time"])).num_seconds()).max();
    assert!(waited >= Some(1), "buffer_one: a fire waited for the one before it ({waited:?} s at most)");

    let cancelled = runs["cancel_other"].iter().filter(|e| e["status"] == "Cancelled").count();
    assert!(cancelled >= 3, "cancel_other: each fire cancels the unfinished one: {:?}", runs["cancel_other"]);
    assert_eq!(runs["cancel_other"].last().unwrap()["status"], "Completed", "the newest ran to its end");
    assert!(!overlapping(&runs["cancel_other"]));
}

#[tokio::test(flavor = "multi_thread")]
async fn each_overlap_policy_on_sqlite() {
    let home = tempfile::tempdir().unwrap();
    let server = Server::start(home.path(), &["--workers", "8"], &[]);
    let god = bootstrap_key(home.path());
    each_overlap_policy(&server, &god, home.path(), "SQLite").await;
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn each_overlap_policy_on_postgres() {
    let db = cloacina_testpg::TestPg::shared().database().await;
    let home = tempfile::tempdir().unwrap();
    let server = Server::start(home.path(), &["--database-url", db.url.as_str(), "--workers", "8"], &[]);
    let god = bootstrap_key(home.path());
    each_overlap_policy(&server, &god, home.path(), "PostgreSQL").await;
    server.stop();
}
