//! Cron triggers through the real binary (docs/triggers.md): a trigger fires on its own, once
//! per scheduled time, on SQLite and with three replicas on one PostgreSQL database, one of
//! them killed with SIGKILL halfway.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::executions::{pack, upload};
use crate::harness::{Server, bootstrap_key};

fn every_second(home: &Path) -> PathBuf {
    let workflows = r#"
[[workflow]]
name = "tick"
[[workflow.task]]
id = "one"
command = ["true"]
[[workflow.trigger]]
name = "every-second"
cron = "* * * * * *"
overlap = "allow"
context = { from = "trigger" }
"#;
    pack(home, "ticker", "1.0.0", workflows, &[])
}

/// The trigger's executions: scheduled time → how many. (Lateness is the scheduler's
/// metric: the wire's times are whole seconds.)
async fn fired(server: &Server, key: &str) -> BTreeMap<String, usize> {
    let (status, page) = server.get("/v1/tenants/public/executions?limit=1000", Some(key)).await;
    assert_eq!(status, 200, "{page}");
    let mut per_time = BTreeMap::new();
    for e in page["items"].as_array().unwrap() {
        assert_eq!(e["trigger_origin"], "trigger:every-second", "{e}");
        assert_eq!(e["trigger"], "every-second", "{e}");
        assert_eq!(e["context"]["from"], "trigger", "the trigger's context reaches the execution: {e}");
        let at = e["scheduled_time"].as_str().unwrap().to_owned();
        *per_time.entry(at).or_insert(0) += 1;
    }
    per_time
}

/// Every scheduled time from the first to the last, one second apart, exactly once.
fn assert_once_each_second(per_time: &BTreeMap<String, usize>) {
    let times: Vec<_> = per_time.keys().map(|t| chrono::DateTime::parse_from_rfc3339(t).unwrap().timestamp()).collect();
    assert!(times.len() >= 3, "too few fires to judge: {per_time:?}");
    let twice: Vec<_> = per_time.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "scheduled times fired more than once: {twice:?}");
    let gaps: Vec<_> = times.windows(2).filter(|w| w[1] - w[0] != 1).collect();
    assert!(gaps.is_empty(), "scheduled times skipped: {gaps:?} in {times:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn on_sqlite_a_trigger_fires_by_itself_once_per_scheduled_time() {
    let home = tempfile::tempdir().unwrap();
    let server = Server::start(home.path(), &["--workers", "0"], &[]);
    let god = bootstrap_key(home.path());
    let file = every_second(home.path());
    assert_eq!(upload(&server, "public", &god, &file).await.0, 201);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let per_time = fired(&server, &god).await;
    println!(
        "SQLite: {} scheduled times, each fired {:?} time(s)",
        per_time.len(),
        per_time.values().collect::<std::collections::BTreeSet<_>>()
    );
    assert_once_each_second(&per_time);
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn three_postgres_replicas_fire_each_scheduled_time_once_even_when_one_is_killed() {
    let db = cloacina_testpg::TestPg::shared().database().await;
    let homes: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let flags = ["--database-url", db.url.as_str(), "--db-max-connections", "4", "--workers", "0"];
    let first = Server::start(homes[0].path(), &flags, &[]);
    let god = bootstrap_key(homes[0].path());
    let second = Server::start(homes[1].path(), &flags, &[]);
    let third = Server::start(homes[2].path(), &flags, &[]);
    let file = every_second(homes[0].path());
    assert_eq!(upload(&second, "public", &god, &file).await.0, 201);
    tokio::time::sleep(Duration::from_secs(5)).await;
    first.signal("KILL");
    let _ = first.wait();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let per_time = fired(&second, &god).await;
    println!(
        "PostgreSQL, 3 replicas, one killed at 5 s: {} scheduled times, each fired {:?} time(s)",
        per_time.len(),
        per_time.values().collect::<std::collections::BTreeSet<_>>()
    );
    assert_once_each_second(&per_time);
    second.stop();
    third.stop();
}
