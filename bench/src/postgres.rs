//! The PostgreSQL cases: B1 with the tenant-scoped read, B4 (1,000 tenants) and B6 on
//! PostgreSQL. Each starts a throwaway cluster of its own (the tests' `cloacina-testpg`), and
//! the server logs in as an unprivileged role (CREATEROLE, NOINHERIT), as in production.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use cloacina_testpg::{TestDatabase, TestPg};
use serde_json::{Value, json};
use sqlx::Connection;

use crate::Options;
use crate::cases::{Target, against_ceiling};
use crate::load::{Auth, median};
use crate::procs::{Running, start_ceiling, start_server};

/// How many tenants B4 and B6 create.
const TENANTS: usize = 1000;
async fn post(client: &reqwest::Client, url: &str, key: &str, body: Value) -> anyhow::Result<Value> {
    let res = client.post(url).bearer_auth(key).json(&body).send().await?;
    let status = res.status();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    anyhow::ensure!(status.is_success(), "POST {url}: {status} {body}");
    Ok(body)
}

fn serve_pg(
    binary: &Path,
    db: &TestDatabase,
    home: Option<tempfile::TempDir>,
    o: &Options,
) -> anyhow::Result<(Running, String)> {
    let pool = o.pool.to_string();
    start_server(binary, home, &["--database-url", &db.url, "--db-max-connections", &pool])
}

/// B1 on PostgreSQL: `/health`, whoami and `GET /v1/tenants/acme/workflows` (one indexed query
/// in a transaction run as acme's role), keys cached, against the bare axum ceiling.
pub async fn b1pg(binary: &Path, o: &Options) -> anyhow::Result<String> {
    let pg = TestPg::private();
    let db = pg.database().await;
    let ceiling = start_ceiling()?;
    let (server, god) = serve_pg(binary, &db, None, o)?;
    let client = reqwest::Client::new();
    post(&client, &format!("{}/v1/tenants", server.url), &god, json!({"name": "acme"})).await?;
    let key = post(&client, &format!("{}/v1/tenants/acme/keys", server.url), &god, json!({"name": "reader"})).await?;
    let key = key["key"].as_str().context("key")?.to_owned();
    let targets: Vec<Target> = vec![
        ("bare axum route (ceiling)".into(), format!("{}/", ceiling.url), Auth::None),
        ("GET /health".into(), format!("{}/health", server.url), Auth::None),
        ("GET /v1/auth/whoami".into(), format!("{}/v1/auth/whoami", server.url), Auth::Key(key.clone())),
        (
            "GET /v1/tenants/acme/workflows (as acme's role)".into(),
            format!("{}/v1/tenants/acme/workflows", server.url),
            Auth::Key(key),
        ),
    ];
    let (rows, errors) = against_ceiling(&targets, o, &["—", "≥ 0.9", "≥ 0.9", "≥ 0.10, p99 < 10 ms"]).await;
    let mut out = vec![
        format!(
            "### B1 on PostgreSQL — authenticated reads ({} connections, pool {}, {} × {} s, medians)",
            o.connections, o.pool, o.runs, o.seconds
        ),
        String::new(),
        "| target | req/s | p50 ms | p99 ms | ratio to ceiling | goal |".into(),
        "|---|---|---|---|---|---|".into(),
    ];
    out.extend(rows);
    out.push(String::new());
    out.push(format!(
        "Errors (non-200 answers or transport failures): {errors}. PostgreSQL {}, same machine.",
        version(&pg).await
    ));
    Ok(out.join("\n"))
}

async fn version(pg: &TestPg) -> String {
    let mut c = pg.admin().await;
    sqlx::query_scalar::<_, String>("SHOW server_version").fetch_one(&mut c).await.unwrap_or_default()
}

/// What the database says about one database's sessions.
struct DbLoad {
    connections: i64,
    /// Private (anonymous) resident memory of those backends, MiB.
    backend_mib: f64,
    transactions: i64,
}

async fn db_load(pg: &TestPg, db: &str) -> anyhow::Result<DbLoad> {
    let mut c = pg.admin().await;
    let pids: Vec<i32> =
        sqlx::query_scalar("SELECT pid FROM pg_stat_activity WHERE datname = $1").bind(db).fetch_all(&mut c).await?;
    let backend_mib = pids
        .iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
        .filter_map(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("RssAnon:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .sum::<f64>()
        / 1024.0;
    // Counters are flushed by backends about once a second.
    sqlx::query("SELECT pg_stat_clear_snapshot()").execute(&mut c).await?;
    let transactions: i64 =
        sqlx::query_scalar("SELECT (xact_commit + xact_rollback)::bigint FROM pg_stat_database WHERE datname = $1")
            .bind(db)
            .fetch_one(&mut c)
            .await?;
    let _ = c.close().await;
    Ok(DbLoad { connections: i64::try_from(pids.len())?, backend_mib, transactions })
}

/// Transactions per second in `db` over `window`, while nothing calls the server. Backends
/// report their counters up to 10 s late (PostgreSQL 15), so the window opens 12 s after the
/// last call.
async fn idle_rate(pg: &TestPg, db: &str, window: Duration) -> anyhow::Result<f64> {
    tokio::time::sleep(Duration::from_secs(12)).await;
    let before = db_load(pg, db).await?.transactions;
    tokio::time::sleep(window).await;
    let after = db_load(pg, db).await?.transactions;
    Ok((after - before) as f64 / window.as_secs_f64())
}

/// B4: create 1,000 tenants through the API, one request in each, then idle; and B6 on the
/// same database: start-up to `/ready` with 1,000 tenants.
pub async fn b4_b6(binary: &Path, o: &Options) -> anyhow::Result<Vec<String>> {
    let pg = TestPg::private();
    let db = pg.database().await;
    let client = reqwest::Client::new();
    let (server, god) = serve_pg(binary, &db, None, o)?;
    let idle_before = idle_rate(&pg, &db.name, Duration::from_secs(10)).await?;
    let empty_starts = restart_times(binary, &db, server, o).await?;
    let (server, _) = serve_pg(binary, &db, Some(empty_starts.1), o)?;

    let mut creates = Vec::with_capacity(TENANTS);
    let started = Instant::now();
    for i in 0..TENANTS {
        let t = Instant::now();
        post(&client, &format!("{}/v1/tenants", server.url), &god, json!({"name": format!("t{i:04}")})).await?;
        creates.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let create_total = started.elapsed();
    let mut sorted = creates.clone();
    sorted.sort_by(f64::total_cmp);
    let p99 = sorted[(sorted.len() - 1) * 99 / 100];
    let mut reads = Vec::with_capacity(TENANTS);
    for i in 0..TENANTS {
        let t = Instant::now();
        let res = client.get(format!("{}/v1/tenants/t{i:04}/workflows", server.url)).bearer_auth(&god).send().await?;
        anyhow::ensure!(res.status().is_success(), "tenant t{i:04}: {}", res.status());
        reads.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let touched = db_load(&pg, &db.name).await?;
    let idle_after = idle_rate(&pg, &db.name, Duration::from_secs(10)).await?;
    let full_starts = restart_times(binary, &db, server, o).await?;

    let b4 = [
        format!("### B4 — tenants on PostgreSQL: {TENANTS} created through the API, then one request each, then idle (pool {})", o.pool),
        String::new(),
        "| figure | value | goal |".into(),
        "|---|---|---|".into(),
        format!("| create p50 (`POST /v1/tenants`: row, role, grant, schema, tenant migrations) | {:.1} ms | ≤ 50 ms |", median(creates.clone())),
        format!("| create p99 / total | {p99:.1} ms / {:.1} s | — |", create_total.as_secs_f64()),
        format!("| read p50, first request to each tenant (`GET …/workflows` as its role) | {:.2} ms | — |", median(reads)),
        format!("| connections held after touching every tenant (`pg_stat_activity`) | {} | ≤ pool + 2 = {} |", touched.connections, o.pool + 2),
        format!("| private memory of those backends (RssAnon) | {:.1} MiB | bounded by pool size × lifetime |", touched.backend_mib),
        format!("| transactions/s while idle: 1 tenant → {TENANTS} tenants | {idle_before:.2} → {idle_after:.2} | independent of tenant count |"),
    ]
    .join("\n");
    let b6 = [
        format!(
            "### B6 on PostgreSQL — start-up to `/ready` ({} starts each, release build, pool {})",
            full_starts.0.len(),
            o.pool
        ),
        String::new(),
        "| database | median ms | max ms | goal |".into(),
        "|---|---|---|---|".into(),
        format!("| 1 tenant (`public`) | {:.1} | {:.1} | — |", median(empty_starts.0.clone()), max(&empty_starts.0)),
        format!("| {TENANTS} tenants | {:.1} | {:.1} | ≤ 500 ms |", median(full_starts.0.clone()), max(&full_starts.0)),
    ]
    .join("\n");
    Ok(vec![b4, b6])
}

fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::MIN, f64::max)
}

/// Stops `server`, then starts it again on the same database and home `max(10, runs)` times,
/// timing process start to `/ready`. Returns the times and the home.
async fn restart_times(
    binary: &Path,
    db: &TestDatabase,
    server: Running,
    o: &Options,
) -> anyhow::Result<(Vec<f64>, tempfile::TempDir)> {
    let client = reqwest::Client::new();
    let mut home = server.into_home().context("home")?;
    let mut times = Vec::new();
    for _ in 0..10.max(o.runs) {
        let (server, _) = serve_pg(binary, db, Some(home), o)?;
        loop {
            if let Ok(r) = client.get(format!("{}/ready", server.url)).send().await
                && r.status().as_u16() == 200
            {
                times.push(server.started.elapsed().as_secs_f64() * 1000.0);
                break;
            }
            anyhow::ensure!(server.started.elapsed() < Duration::from_secs(60), "never ready");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        home = server.into_home().context("home")?;
    }
    Ok((times, home))
}
