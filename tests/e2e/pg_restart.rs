//! PostgreSQL going away under a running server. Restarted while executions are submitted and
//! run and authenticated reads go on (the reliability scoreboard's restart row): `/health` answers 200 throughout; while the
//! database is away a request is refused with `503 database_unavailable` and nothing else;
//! once it is back, not one request fails; every execution submitted (retried with its
//! idempotency key) runs to completion exactly once. And stopped under an idle server: `/ready`
//! says so at once, and recovers by itself.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use cloacina_testpg::TestPg;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::executions::{pack, upload};
use crate::harness::{Server, bootstrap_key};

/// Executions submitted, one every 40 ms, from before the restart to after it.
const EXECUTIONS: usize = 60;

const BEFORE: u8 = 0;
const AWAY: u8 = 1;
const BACK: u8 = 2;

/// Answers by phase and status (`0` for a transport failure).
type Tally = Arc<Mutex<BTreeMap<(u8, u16), u64>>>;

async fn count(tally: &Tally, phase: &AtomicU8, status: u16) {
    *tally.lock().await.entry((phase.load(Ordering::SeqCst), status)).or_default() += 1;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_restarted_under_load_refuses_only_while_away_and_loses_no_execution() {
    let pg = Arc::new(TestPg::private());
    let db = pg.database().await;
    let home = tempfile::tempdir().unwrap();
    let args = ["--database-url", &db.url, "--db-max-connections", "8", "--db-connect-timeout", "1", "--workers", "8"];
    let server = Arc::new(Server::start(home.path(), &args, &[]));
    let god = bootstrap_key(home.path());
    let (status, body) = server.call(Method::POST, "/v1/tenants", Some(&god), Some(json!({"name": "acme"}))).await;
    assert_eq!(status, 201, "{body}");
    let (status, key) = server
        .call(Method::POST, "/v1/auth/keys", Some(&god), Some(json!({"name": "ci", "tenant": "acme", "role": "write"})))
        .await;
    assert_eq!(status, 201, "{key}");
    let key: Arc<str> = key["key"].as_str().unwrap().into();
    let workflows = "[[workflow]]\nname = \"steady\"\n\
        [[workflow.task]]\nid = \"a\"\ncommand = [\"true\"]\n\
        [[workflow.task]]\nid = \"b\"\ncommand = [\"sleep\", \"0.3\"]\ndepends_on = [\"a\"]\n\
        [[workflow.task]]\nid = \"c\"\ncommand = [\"true\"]\ndepends_on = [\"b\"]\n";
    let package = pack(home.path(), "steady", "1.0.0", workflows, &[]);
    assert_eq!(upload(&server, "acme", &key, &package).await.0, 201);

    let phase = Arc::new(AtomicU8::new(BEFORE));
    let done = Arc::new(AtomicBool::new(false));
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let reads: Tally = Arc::default();
    let submits: Tally = Arc::default();
    let health: Tally = Arc::default();
    let mut load = Vec::new();
    for reader in 0..4 {
        let (client, server, key, phase, done, reads) =
            (client.clone(), server.clone(), key.clone(), phase.clone(), done.clone(), reads.clone());
        load.push(tokio::spawn(async move {
            let path = if reader % 2 == 0 { "/v1/tenants/acme/workflows" } else { "/v1/tenants/acme/executions" };
            while !done.load(Ordering::SeqCst) {
                let res = client.get(format!("{}{path}", server.url)).bearer_auth(&*key).send().await;
                let status = match res {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        let body: Value = r.json().await.unwrap_or(Value::Null);
                        if status == 503 {
                            assert_eq!(body["code"], "database_unavailable", "{body}");
                        }
                        status
                    }
                    Err(_) => 0,
                };
                count(&reads, &phase, status).await;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }
    {
        let (client, server, phase, done, health) =
            (client.clone(), server.clone(), phase.clone(), done.clone(), health.clone());
        load.push(tokio::spawn(async move {
            while !done.load(Ordering::SeqCst) {
                let res = client.get(format!("{}/health", server.url)).send().await;
                count(&health, &phase, res.map_or(0, |r| r.status().as_u16())).await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }
    let submitter = {
        let (client, server, key, phase, submits) =
            (client.clone(), server.clone(), key.clone(), phase.clone(), submits.clone());
        tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..EXECUTIONS {
                let url = format!("{}/v1/tenants/acme/workflows/steady/execute", server.url);
                loop {
                    let res = client
                        .post(&url)
                        .bearer_auth(&*key)
                        .header("Idempotency-Key", format!("restart-{i}"))
                        .json(&json!({"context": {"i": i}}))
                        .send()
                        .await;
                    let (status, body) = match res {
                        Ok(r) => (r.status().as_u16(), r.json::<Value>().await.unwrap_or(Value::Null)),
                        Err(_) => (0, Value::Null),
                    };
                    count(&submits, &phase, status).await;
                    if status == 202 || status == 200 {
                        ids.push(body["execution_id"].as_str().unwrap().to_owned());
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
            ids
        })
    };

    tokio::time::sleep(Duration::from_millis(1200)).await;
    phase.store(AWAY, Ordering::SeqCst);
    let away = Instant::now();
    let stopper = pg.clone();
    tokio::task::spawn_blocking(move || stopper.stop()).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let starter = pg.clone();
    tokio::task::spawn_blocking(move || starter.start_again()).await.unwrap();
    let outage = away.elapsed();
    phase.store(BACK, Ordering::SeqCst);
    let ids = submitter.await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    done.store(true, Ordering::SeqCst);
    for task in load {
        task.await.unwrap();
    }

    let started = Instant::now();
    let mut statuses = BTreeMap::<String, usize>::new();
    for id in &ids {
        loop {
            let (status, e) = server.get(&format!("/v1/tenants/acme/executions/{id}"), Some(&key)).await;
            assert_eq!(status, 200, "{e}");
            let s = e["status"].as_str().unwrap_or("").to_owned();
            if ["Completed", "Failed", "Cancelled"].contains(&s.as_str()) {
                *statuses.entry(s).or_default() += 1;
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(90), "execution {id} stuck at {s}\n{}", server.stderr());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let (status, list) = server.get("/v1/tenants/acme/executions?limit=1000", Some(&key)).await;
    assert_eq!(status, 200, "{list}");

    let reads = reads.lock().await.clone();
    let submits = submits.lock().await.clone();
    let health = health.lock().await.clone();
    let sum = |t: &BTreeMap<(u8, u16), u64>, f: &dyn Fn(u8, u16) -> bool| -> u64 {
        t.iter().filter(|((p, s), _)| f(*p, *s)).map(|(_, n)| n).sum()
    };
    let ok = |s: u16| s == 200 || s == 202;
    println!(
        "PostgreSQL away for {outage:?}; reads {} ({} refused 503 while away, {} failed after); submits {} ({} refused \
         503 while away); /health {} checks, {} not 200; executions {} submitted, {:?}, {} stored",
        sum(&reads, &|_, _| true),
        sum(&reads, &|p, s| p == AWAY && s == 503),
        sum(&reads, &|p, s| p == BACK && !ok(s)),
        sum(&submits, &|_, _| true),
        sum(&submits, &|p, s| p == AWAY && s == 503),
        sum(&health, &|_, _| true),
        sum(&health, &|_, s| s != 200),
        ids.len(),
        statuses,
        list["total"],
    );
    assert_eq!(sum(&health, &|_, s| s != 200), 0, "/health failed: {health:?}");
    assert_eq!(sum(&reads, &|p, s| p != AWAY && !ok(s)), 0, "reads failed outside the outage: {reads:?}");
    assert_eq!(sum(&submits, &|p, s| p != AWAY && !ok(s)), 0, "submits failed outside the outage: {submits:?}");
    assert_eq!(sum(&reads, &|p, s| p == AWAY && !ok(s) && s != 503), 0, "only 503 while away: {reads:?}");
    assert_eq!(sum(&submits, &|p, s| p == AWAY && !ok(s) && s != 503), 0, "only 503 while away: {submits:?}");
    assert!(sum(&reads, &|p, s| p == AWAY && s == 503) > 0, "the outage was seen: {reads:?}");
    assert_eq!(ids.len(), EXECUTIONS);
    assert_eq!(statuses.get("Completed"), Some(&EXECUTIONS), "{statuses:?}\n{}", server.stderr());
    assert_eq!(list["total"], EXECUTIONS, "each submission stored once");
    assert_eq!(server.get("/ready", None).await.0, 200);
    drop(server);
    pg.stop();
}

/// PostgreSQL goes away under a running server: `/health` stays 200, `/ready` answers 503
/// promptly, and both come back without a restart or a stale connection once it returns.
#[tokio::test(flavor = "multi_thread")]
async fn ready_is_503_while_postgres_is_down_and_200_again_when_it_returns() {
    let pg = TestPg::private();
    let db = pg.database().await;
    let home = tempfile::tempdir().unwrap();
    let server = Server::start(
        home.path(),
        &["--database-url", &db.url, "--db-max-connections", "4", "--db-connect-timeout", "1"],
        &[],
    );
    let god = bootstrap_key(home.path());
    assert_eq!(server.get("/ready", None).await.0, 200);
    assert_eq!(server.get("/v1/tenants", Some(&god)).await.0, 200);
    pg.stop();
    let start = Instant::now();
    let (status, body) = server.get("/ready", None).await;
    assert_eq!(status, 503, "{body}");
    assert!(start.elapsed() < Duration::from_secs(3), "/ready answered in {:?}", start.elapsed());
    assert_eq!(server.get("/health", None).await.0, 200);
    let (status, body) = server.get("/v1/tenants", Some(&god)).await;
    assert_eq!(status, 503, "the database is unavailable: {body}");
    assert_eq!(body["code"], "database_unavailable");
    pg.start_again();
    let start = Instant::now();
    loop {
        if server.get("/ready", None).await.0 == 200 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(15), "/ready did not recover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for _ in 0..20 {
        let (status, body) = server.get("/v1/tenants", Some(&god)).await;
        assert_eq!(status, 200, "no stale connection after recovery: {body}");
    }
    server.stop();
}
