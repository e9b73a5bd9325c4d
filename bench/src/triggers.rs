//! B11: 10,000 minutely cron triggers over 1,000 tenants on PostgreSQL (one server, workers
//! off, so only scheduling is measured). Fire lateness (scheduled time → the pass that created
//! the execution committed) comes from the server's own histogram over several whole minutes;
//! the idle cost (database transactions per second, server CPU) is measured between the
//! minute's fires, and compared with the same 1,000 tenants before any trigger existed.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use cloacina_testpg::TestPg;
use serde_json::json;

use crate::Options;
use crate::procs::{Running, start_server};

const TENANTS: usize = 1000;
const PER_TENANT: usize = 10;

fn package(binary: &Path, dir: &Path) -> anyhow::Result<Vec<u8>> {
    let src = dir.join("src");
    std::fs::create_dir_all(&src)?;
    let mut toml = String::from(
        "[package]\nname = \"minutely\"\nversion = \"1.0.0\"\n[[workflow]]\nname = \"tick\"\n[[workflow.task]]\nid = \"one\"\ncommand = [\"true\"]\n",
    );
    for i in 0..PER_TENANT {
        toml.push_str(&format!(
            "[[workflow.trigger]]\nname = \"every-minute-{i}\"\ncron = \"* * * * *\"\noverlap = \"allow\"\n"
        ));
    }
    std::fs::write(src.join("package.toml"), toml)?;
    let out = dir.join("minutely.cloacina");
    let status =
        std::process::Command::new(binary).args(["package", "pack"]).arg(&src).arg("--file").arg(&out).status()?;
    anyhow::ensure!(status.success(), "package pack failed");
    Ok(std::fs::read(out)?)
}

/// The user + system CPU seconds so far of every PostgreSQL process on the machine (the bench's
/// own cluster is the only one while it runs), from /proc. A backend that exited takes its
/// share with it; the server's pooled connections live through the measured minutes.
fn postgres_cpu_seconds() -> f64 {
    let Ok(entries) = std::fs::read_dir("/proc") else { return 0.0 };
    let mut ticks = 0.0;
    for entry in entries.flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        let Some((head, rest)) = stat.rsplit_once(')') else { continue };
        if !head.ends_with("(postgres") {
            continue;
        }
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        ticks += field(11) + field(12);
    }
    ticks / 100.0
}

async fn transactions(pg: &TestPg, db: &str) -> anyhow::Result<i64> {
    let mut c = pg.admin().await;
    sqlx::query("SELECT pg_stat_clear_snapshot()").execute(&mut c).await?;
    Ok(sqlx::query_scalar("SELECT (xact_commit + xact_rollback)::bigint FROM pg_stat_database WHERE datname = $1")
        .bind(db)
        .fetch_one(&mut c)
        .await?)
}

/// Transactions/s and server CPU % over `window`, starting 12 s from now (backends report
/// their counters up to 10 s late).
async fn idle(pg: &TestPg, db: &str, server: &Running, window: Duration) -> anyhow::Result<(f64, f64)> {
    tokio::time::sleep(Duration::from_secs(12)).await;
    let (t0, c0) = (transactions(pg, db).await?, server.cpu_seconds());
    tokio::time::sleep(window).await;
    let (t1, c1) = (transactions(pg, db).await?, server.cpu_seconds());
    let w = window.as_secs_f64();
    Ok(((t1 - t0) as f64 / w, (c1 - c0) / w * 100.0))
}

/// The lateness histogram: (upper bound, cumulative count) and the count.
async fn lateness(client: &reqwest::Client, server: &Running) -> anyhow::Result<(Vec<(f64, f64)>, f64)> {
    let text = client.get(format!("{}/metrics", server.url)).send().await?.text().await?;
    let mut buckets = Vec::new();
    let mut count = 0.0;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("cloacina_trigger_fire_lateness_seconds_bucket{le=\"") {
            let (le, value) = rest.split_once("\"}").context("bucket")?;
            let le = if le == "+Inf" { f64::INFINITY } else { le.parse()? };
            buckets.push((le, value.trim().parse()?));
        } else if let Some(v) = line.strip_prefix("cloacina_trigger_fire_lateness_seconds_count ") {
            count = v.trim().parse()?;
        }
    }
    Ok((buckets, count))
}

/// A quantile from cumulative buckets, interpolated linearly inside its bucket.
fn quantile(buckets: &[(f64, f64)], count: f64, q: f64) -> f64 {
    let rank = q * count;
    let mut lower = (0.0, 0.0);
    for &(le, cum) in buckets {
        if cum >= rank {
            if le.is_infinite() {
                return lower.0;
            }
            let inside = (rank - lower.1) / (cum - lower.1).max(1.0);
            return lower.0 + (le - lower.0) * inside;
        }
        lower = (le, cum);
    }
    f64::NAN
}

/// Sleeps until `second` past the wall clock's minute.
async fn at_second(second: u64) {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let into = Duration::from_millis((now.as_millis() % 60_000) as u64);
    let target = Duration::from_secs(second);
    let wait = if into < target { target - into } else { Duration::from_secs(60) - into + target };
    tokio::time::sleep(wait).await;
}

pub async fn b11(binary: &Path, o: &Options) -> anyhow::Result<String> {
    let pg = TestPg::private();
    let db = pg.database().await;
    let dir = tempfile::tempdir()?;
    let bytes = package(binary, dir.path())?;
    let pool = o.pool.to_string();
    let (server, god) =
        start_server(binary, None, &["--database-url", &db.url, "--db-max-connections", &pool, "--workers", "0"])?;
    // The server closes a keep-alive connection idle for its header timeout (10 s): a client
    // that reuses one just then sees it closed, so this one forgets its idle connections first.
    let client = reqwest::Client::builder().pool_idle_timeout(Duration::from_secs(5)).build()?;
    let started = Instant::now();
    for i in 0..TENANTS {
        let res = client
            .post(format!("{}/v1/tenants", server.url))
            .bearer_auth(&god)
            .json(&json!({"name": format!("t{i:04}")}))
            .send()
            .await?;
        anyhow::ensure!(res.status().is_success(), "tenant t{i:04}: {}", res.status());
    }
    println!("B11: {TENANTS} tenants in {:.1} s", started.elapsed().as_secs_f64());
    let (tps_before, cpu_before) = idle(&pg, &db.name, &server, Duration::from_secs(20)).await?;

    let started = Instant::now();
    for i in 0..TENANTS {
        let form = reqwest::multipart::Form::new()
            .part("file", reqwest::multipart::Part::bytes(bytes.clone()).file_name("minutely-1.0.0.cloacina"));
        let res = client
            .post(format!("{}/v1/tenants/t{i:04}/workflows", server.url))
            .bearer_auth(&god)
            .multipart(form)
            .send()
            .await?;
        anyhow::ensure!(res.status().is_success(), "upload to t{i:04}: {}", res.status());
    }
    println!("B11: {} triggers in force in {:.1} s", TENANTS * PER_TENANT, started.elapsed().as_secs_f64());

    // The first minute after the uploads may be partial: measure from the next whole one.
    at_second(50).await;
    let (earlier, skipped) = lateness(&client, &server).await?;
    let mut idle_after = Vec::new();
    let mut burst = Vec::new();
    // CPU seconds each minute's fires took: PostgreSQL's, the server's.
    let mut burst_cpu = Vec::new();
    for _ in 0..o.minutes {
        at_second(0).await;
        let t = Instant::now();
        let (pg0, server0) = (postgres_cpu_seconds(), server.cpu_seconds());
        // Wait for the minute's fires: every trigger once.
        let expected = skipped + ((burst.len() + 1) * TENANTS * PER_TENANT) as f64;
        loop {
            let (_, n) = lateness(&client, &server).await?;
            if n >= expected {
                break;
            }
            anyhow::ensure!(
                t.elapsed() < Duration::from_secs(58),
                "the minute's fires did not all happen: {n} of {expected}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        burst.push(t.elapsed().as_secs_f64());
        burst_cpu.push((postgres_cpu_seconds() - pg0, server.cpu_seconds() - server0));
        if let (Some(b), Some((pg, sv))) = (burst.last(), burst_cpu.last()) {
            println!(
                "B11: minute {}: fires committed after {b:.2} s; CPU PostgreSQL {pg:.2} s, server {sv:.2} s",
                burst.len()
            );
        }
        // Nothing is due until the next minute: the idle window is what is left of it.
        let left = 60.0 - (t.elapsed().as_secs_f64() + 12.0 + 2.0);
        if left >= 5.0 {
            idle_after.push(idle(&pg, &db.name, &server, Duration::from_secs_f64(left)).await?);
        }
    }
    let (buckets, total) = lateness(&client, &server).await?;
    // The histogram is cumulative: take out the fires before the measured minutes.
    let measured: Vec<(f64, f64)> = buckets
        .iter()
        .map(|&(le, c)| (le, c - earlier.iter().find(|(l, _)| *l == le).map_or(0.0, |(_, e)| *e)))
        .collect();
    let count = total - skipped;
    let p50 = quantile(&measured, count, 0.50);
    let p99 = quantile(&measured, count, 0.99);
    let within_1s = measured.iter().find(|(le, _)| *le >= 1.0).map_or(f64::NAN, |(_, c)| c / count * 100.0);
    let burst_max = burst.iter().copied().fold(0.0, f64::max);
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    };
    let pg_cpu = median(burst_cpu.iter().map(|c| c.0).collect());
    let server_cpu = median(burst_cpu.iter().map(|c| c.1).collect());
    let (tps_idle, cpu_idle) = if idle_after.is_empty() {
        (f64::NAN, f64::NAN)
    } else {
        let n = idle_after.len() as f64;
        (idle_after.iter().map(|x| x.0).sum::<f64>() / n, idle_after.iter().map(|x| x.1).sum::<f64>() / n)
    };
    Ok([
        format!(
            "### B11 — {} minutely triggers over {TENANTS} tenants on PostgreSQL (one server, workers off, pool {}, {} minutes)",
            TENANTS * PER_TENANT,
            o.pool,
            o.minutes
        ),
        String::new(),
        "| figure | value | goal |".into(),
        "|---|---|---|".into(),
        format!("| fires measured (every trigger once a minute) | {count:.0} | {} |", o.minutes * TENANTS * PER_TENANT),
        format!("| fire lateness p50 (scheduled time → the pass creating its execution committed) | {:.0} ms | — |", p50 * 1000.0),
        format!("| fire lateness p99 | {:.0} ms | < 1 s |", p99 * 1000.0),
        format!("| fires within 1 s | {within_1s:.1} % | ≥ 99 % |"),
        format!("| one minute's {} fires all committed after | {burst_max:.1} s (slowest minute) | — |", TENANTS * PER_TENANT),
        format!(
            "| CPU a minute's fires took (median minute): PostgreSQL, the server | {pg_cpu:.2} s ({:.2} ms a tenant pass), {server_cpu:.2} s | — |",
            pg_cpu * 1000.0 / TENANTS as f64
        ),
        format!("| database transactions/s while nothing is due: 0 triggers → {} | {tps_before:.2} → {tps_idle:.2} | independent of the trigger count |", TENANTS * PER_TENANT),
        format!("| server CPU while nothing is due: 0 triggers → {} | {cpu_before:.2} % → {cpu_idle:.2} % | independent of the trigger count |", TENANTS * PER_TENANT),
    ]
    .join("\n"))
}
