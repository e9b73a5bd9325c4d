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

/// A series of this server's `/metrics` (0 when absent).
async fn metric(server: &Server, series: &str) -> f64 {
    let text = reqwest::get(format!("{}/metrics", server.url)).await.unwrap().text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

/// Which of the servers report `cloacina_leader 1`.
async fn leaders(servers: &[&Server]) -> Vec<usize> {
    let mut leading = Vec::new();
    for (i, s) in servers.iter().enumerate() {
        if metric(s, "cloacina_leader").await == 1.0 {
            leading.push(i);
        }
    }
    leading
}

/// The replicas still running.
fn live(replicas: &[Option<Server>]) -> Vec<&Server> {
    replicas.iter().flatten().collect()
}

/// Polls until exactly one server leads; returns it and how long that took.
async fn one_leader(servers: &[&Server], within: Duration) -> (usize, Duration) {
    let started = std::time::Instant::now();
    loop {
        let leading = leaders(servers).await;
        if let [one] = leading[..] {
            return (one, started.elapsed());
        }
        assert!(leading.len() < 2, "two leaders at once: {leading:?}");
        assert!(started.elapsed() < within, "no leader after {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn three_postgres_replicas_fire_each_second_once_for_30_s_and_a_new_leader_follows_a_killed_one() {
    let db = cloacina_testpg::TestPg::shared().database().await;
    let homes: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let flags =
        ["--database-url", db.url.as_str(), "--db-max-connections", "4", "--workers", "0", "--prune-every", "1s"];
    let first = Server::start(homes[0].path(), &flags, &[]);
    let god = bootstrap_key(homes[0].path());
    let mut replicas = vec![
        Some(first),
        Some(Server::start(homes[1].path(), &flags, &[])),
        Some(Server::start(homes[2].path(), &flags, &[])),
    ];
    let (leader, _) = one_leader(&live(&replicas), Duration::from_secs(10)).await;
    let file = every_second(homes[0].path());
    assert_eq!(upload(live(&replicas)[(leader + 1) % 3], "public", &god, &file).await.0, 201);
    let uploaded = std::time::Instant::now();

    // Only the leader prunes.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut prunes = Vec::new();
    for s in live(&replicas) {
        prunes.push(metric(s, "cloacina_retention_prunes_total").await);
    }
    println!("retention prunes per replica before the kill: {prunes:?} (leader {leader})");
    assert!(prunes[leader] >= 1.0, "the leader prunes: {prunes:?}");
    assert_eq!(prunes.iter().filter(|n| **n > 0.0).count(), 1, "exactly one replica prunes: {prunes:?}");

    tokio::time::sleep(Duration::from_secs(15).saturating_sub(uploaded.elapsed())).await;
    let killed = replicas[leader].take().unwrap();
    killed.signal("KILL");
    let _ = killed.wait();
    let remaining: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    let (new, failover) = one_leader(&live(&replicas), Duration::from_secs(10)).await;
    let new_leader = remaining[new];
    println!("leader {leader} killed: replica {new_leader} reported cloacina_leader 1 after {failover:?}");
    assert!(failover < Duration::from_secs(5), "failover took {failover:?}");
    let survivor = replicas[new_leader].as_ref().unwrap();
    assert_eq!(metric(survivor, "cloacina_leadership_changes_total").await, 1.0);
    let before = metric(survivor, "cloacina_retention_prunes_total").await;
    assert_eq!(before, 0.0, "a follower never pruned");
    tokio::time::sleep(Duration::from_secs(30).saturating_sub(uploaded.elapsed())).await;
    let after = metric(survivor, "cloacina_retention_prunes_total").await;
    let follower = replicas[remaining.iter().copied().find(|i| *i != new_leader).unwrap()].as_ref().unwrap();
    let follower_prunes = metric(follower, "cloacina_retention_prunes_total").await;
    println!("retention prunes after the kill: new leader {after}, follower {follower_prunes}");
    assert!(after >= 1.0 && follower_prunes == 0.0, "the new leader, and only it, prunes");

    let per_time = fired(survivor, &god).await;
    let counts: BTreeMap<usize, usize> = per_time.values().fold(BTreeMap::new(), |mut m, n| {
        *m.entry(*n).or_insert(0) += 1;
        m
    });
    let times: Vec<i64> =
        per_time.keys().map(|t| chrono::DateTime::parse_from_rfc3339(t).unwrap().timestamp()).collect();
    let gap = times.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
    println!(
        "PostgreSQL, 3 replicas, the leader killed at 15 s: {} scheduled times in {:?}; executions per time: {counts:?} \
         (count → times); longest gap between scheduled times {gap} s",
        per_time.len(),
        uploaded.elapsed()
    );
    for (at, n) in &per_time {
        println!("  {at} {n}");
    }
    assert!(per_time.len() >= 25, "a trigger every second for 30 s: {per_time:?}");
    assert_once_each_second(&per_time);
    let fired = metric(survivor, r#"cloacina_trigger_fires_total{outcome="fired"}"#).await
        + metric(follower, r#"cloacina_trigger_fires_total{outcome="fired"}"#).await;
    println!("fires counted by the two surviving replicas: {fired}");
    let lateness = metric(survivor, "cloacina_trigger_fire_lateness_seconds_count").await;
    assert!(lateness >= 1.0, "the lateness histogram counts the survivor's fires");
    for r in replicas.into_iter().flatten() {
        r.stop();
    }
}
