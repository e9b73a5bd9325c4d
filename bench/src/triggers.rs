//! B11: 10,000 minutely cron triggers over 1,000 tenants on PostgreSQL (one server, workers
//! off, so only scheduling is measured). Fire lateness (scheduled time → the pass that created
//! the execution committed) comes from the server's own histogram over several whole minutes;
//! the idle cost (database transactions per second, server CPU) is measured between the
//! minute's fires, and compared with the same 1,000 tenants before any trigger existed; once
//! before the triggers and once after the last minute measured, autovacuum is paused for the
//! window, which leaves the servers' own transactions.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use cloacina_testpg::TestPg;
use serde_json::json;

use crate::Options;
use crate::procs::{Running, start_server};

const TENANTS: usize = 1000;
const PER_TENANT: usize = 10;

/// The cluster's buffer pool, sized as docs/postgres.md advises for 1,000 tenants whose
/// triggers fire every minute (their passes revisit some 300-500 MB of pages a minute). The
/// test suite's 32 MB would have every pass read and write its pages through the kernel: a
/// tenth more database CPU a pass in the runs of 2026-12-07 (docs/benchmarks.md).
pub(crate) const SETTINGS: &str = "-c shared_buffers=1GB";

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

/// CPU seconds of PostgreSQL's processes by kind.
#[derive(Default, Clone, Copy)]
pub(crate) struct PgCpu {
    /// Clients' backends: the server's lanes and pool, the bench's own queries.
    connections: f64,
    /// The autovacuum launcher and its workers.
    autovacuum: f64,
    /// The postmaster, checkpointer, background and WAL writers and the rest.
    background: f64,
}

impl PgCpu {
    pub(crate) fn total(&self) -> f64 {
        self.connections + self.autovacuum + self.background
    }

    pub(crate) fn since(&self, earlier: &Self) -> Self {
        Self {
            connections: self.connections - earlier.connections,
            autovacuum: self.autovacuum - earlier.autovacuum,
            background: self.background - earlier.background,
        }
    }
}

/// The user + system CPU seconds so far of every PostgreSQL process on the machine (the bench's
/// own cluster is the only one while it runs), from /proc, by kind (the title a process sets
/// in its command line). A process that exited takes its share with it: the server's
/// connections live through the measured minutes, an autovacuum worker may not.
pub(crate) fn postgres_cpu() -> PgCpu {
    let mut cpu = PgCpu::default();
    let Ok(entries) = std::fs::read_dir("/proc") else { return cpu };
    for entry in entries.flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        if !stat.rsplit_once(')').is_some_and(|(head, _)| head.ends_with("(postgres")) {
            continue;
        }
        let seconds = crate::procs::cpu_seconds_of(&stat);
        let title = std::fs::read_to_string(entry.path().join("cmdline")).unwrap_or_default();
        let kind = if title.starts_with("postgres: autovacuum") {
            &mut cpu.autovacuum
        } else if title.starts_with("postgres: ") && title.contains('(') {
            // "postgres: user database host(port) state"
            &mut cpu.connections
        } else {
            &mut cpu.background
        };
        *kind += seconds;
    }
    cpu
}

/// The time this machine takes for a fixed amount of single-threaded arithmetic, in ms: runs
/// of the bench on one machine differ by what else shares its CPUs, and this shows by how much.
fn machine_speed() -> f64 {
    let started = Instant::now();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..200_000_000u32 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x = std::hint::black_box(x);
    }
    std::hint::black_box(x);
    started.elapsed().as_secs_f64() * 1000.0
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

/// [`idle`] with autovacuum paused for the window (off in the configuration, reloaded, its
/// workers stopped; back on after): after a burst of writes the database's own upkeep runs
/// whatever the scheduler does, and its transactions are most of what the database counts
/// while nothing is due. What is left is the servers' own work.
async fn quiet(pg: &TestPg, db: &str, server: &Running, window: Duration) -> anyhow::Result<(f64, f64)> {
    let mut c = pg.admin().await;
    for sql in [
        "ALTER SYSTEM SET autovacuum = off",
        "SELECT pg_reload_conf()",
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'",
    ] {
        sqlx::query(sql).execute(&mut c).await?;
    }
    let measured = idle(pg, db, server, window).await;
    for sql in ["ALTER SYSTEM RESET autovacuum", "SELECT pg_reload_conf()"] {
        sqlx::query(sql).execute(&mut c).await?;
    }
    measured
}

/// From the database, each measured fire's scheduled time to the start of the pass that
/// created it (`executions.created_at` is the pass's time): a lower bound of its lateness,
/// taken without the server's histogram. Fires scheduled at or after `from` (Unix seconds).
/// Returns the median, the 99th percentile and the largest, in seconds.
async fn pass_starts(pg: &TestPg, db: &str, from: f64) -> anyhow::Result<(f64, f64, f64)> {
    let mut c = pg.admin_of(db).await;
    let schemas: Vec<String> = sqlx::query_scalar("SELECT schema_name FROM public.tenants").fetch_all(&mut c).await?;
    let each: Vec<String> = schemas
        .iter()
        .map(|s| {
            format!(
                "SELECT extract(epoch FROM created_at - scheduled_at)::float8 AS late FROM \"{s}\".executions \
                 WHERE scheduled_at >= to_timestamp($1)"
            )
        })
        .collect();
    let sql = format!(
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY late), percentile_cont(0.99) WITHIN GROUP (ORDER BY late), \
         max(late) FROM ({}) fires",
        each.join(" UNION ALL ")
    );
    let row: (Option<f64>, Option<f64>, Option<f64>) =
        sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(from).fetch_one(&mut c).await?;
    Ok((row.0.unwrap_or(f64::NAN), row.1.unwrap_or(f64::NAN), row.2.unwrap_or(f64::NAN)))
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

/// What one minute's burst took, from the minute's start.
struct Minute {
    /// When the `/metrics` scrape that first counted every fire was sent: each had committed
    /// by then.
    counted_by: f64,
    /// When that scrape's answer arrived.
    answered: f64,
    /// CPU seconds PostgreSQL and the server spent until then.
    pg_cpu: PgCpu,
    server_cpu: f64,
}

/// From the next whole minute until the fires counted reach `expected`.
async fn minute(client: &reqwest::Client, server: &Running, expected: f64) -> anyhow::Result<Minute> {
    at_second(0).await;
    let t = Instant::now();
    let (pg0, server0) = (postgres_cpu(), server.cpu_seconds());
    let start = expected - (TENANTS * PER_TENANT) as f64;
    // Each scrape's time and the minute's fires it counted: lateness seen from outside.
    let mut seen = Vec::new();
    loop {
        let sent = t.elapsed().as_secs_f64();
        let (_, n) = lateness(client, server).await?;
        seen.push(format!("{sent:.1}s:{}", n - start));
        if n >= expected {
            println!("B11: counted by scrape: {}", seen.join(" "));
            return Ok(Minute {
                counted_by: sent,
                answered: t.elapsed().as_secs_f64(),
                pg_cpu: postgres_cpu().since(&pg0),
                server_cpu: server.cpu_seconds() - server0,
            });
        }
        anyhow::ensure!(
            t.elapsed() < Duration::from_secs(58),
            "the minute's fires did not all happen: {n} of {expected}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn b11(binary: &Path, o: &Options) -> anyhow::Result<String> {
    let pg = TestPg::private_with(SETTINGS);
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
    let (quiet_before, _) = quiet(&pg, &db.name, &server, Duration::from_secs(20)).await?;

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
    // The first burst after the start makes every statement's plan on its lane and opens each
    // tenant's relations: it is timed on its own, and the minutes measured come after it.
    at_second(50).await;
    let (_, before_first) = lateness(&client, &server).await?;
    let first = minute(&client, &server, before_first + (TENANTS * PER_TENANT) as f64).await?;
    println!(
        "B11: the first minute: fires counted by {:.2} s (answered {:.2} s); CPU PostgreSQL {:.2} s, server {:.2} s",
        first.counted_by,
        first.answered,
        first.pg_cpu.total(),
        first.server_cpu
    );
    at_second(50).await;
    let (earlier, skipped) = lateness(&client, &server).await?;
    let statements = crate::statements::enable(&pg, &db.name).await?;
    let mut idle_after = Vec::new();
    let mut quiet_after = f64::NAN;
    let mut burst = Vec::new();
    // CPU seconds each minute's fires took: PostgreSQL's, the server's.
    let mut burst_cpu = Vec::new();
    // The measured minutes' fires are those scheduled from the next whole minute on.
    let unix = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    let measured_from = ((unix / 60 + 1) * 60) as f64;
    // The machine's speed before each measured minute (`machine_speed`).
    let mut speed = Vec::new();
    let mut last_vacuums = None;
    for _ in 0..o.minutes {
        let expected = skipped + ((burst.len() + 1) * TENANTS * PER_TENANT) as f64;
        speed.push(tokio::task::spawn_blocking(machine_speed).await?);
        if statements {
            crate::statements::reset(&pg, &db.name).await?;
        }
        let before = crate::statements::vacuums(&pg, &db.name).await?;
        let m = minute(&client, &server, expected).await?;
        let after = crate::statements::vacuums(&pg, &db.name).await?;
        // An autovacuum or autoanalyze of a table a pass reads or writes makes its lane plan the
        // pass's statements again at the next burst.
        if let Some(last) = last_vacuums {
            println!(
                "B11: autovacuum and autoanalyze runs finished between the last burst and this minute's reset: {}",
                before - last
            );
        }
        println!(
            "B11: autovacuum and autoanalyze runs finished from the minute's reset to its last fire: {}; machine speed before it: {:.0} ms",
            after - before,
            speed.last().copied().unwrap_or(f64::NAN)
        );
        last_vacuums = Some(after);
        if statements {
            println!(
                "B11: the statements that took PostgreSQL's time from the minute's start to its last fire (tenants' schemas as T):"
            );
            for line in crate::statements::top(&pg, &db.name, 8).await? {
                println!("  {line}");
            }
        }
        burst.push(m.counted_by);
        burst_cpu.push((m.pg_cpu, m.server_cpu));
        println!(
            "B11: minute {}: fires counted by {:.2} s (answered {:.2} s); CPU PostgreSQL {:.2} s (connections {:.2}, \
             autovacuum {:.2}, background {:.2}), server {:.2} s",
            burst.len(),
            m.counted_by,
            m.answered,
            m.pg_cpu.total(),
            m.pg_cpu.connections,
            m.pg_cpu.autovacuum,
            m.pg_cpu.background,
            m.server_cpu
        );
        // Nothing is due until the next minute: the idle window is what is left of it.
        let left = 60.0 - (m.answered + 12.0 + 2.0);
        // After the last minute's burst, the window is a quiet one (autovacuum paused).
        if left >= 5.0 {
            let window = Duration::from_secs_f64(left);
            if burst.len() == o.minutes {
                quiet_after = quiet(&pg, &db.name, &server, window).await?.0;
            } else {
                idle_after.push(idle(&pg, &db.name, &server, window).await?);
            }
        }
    }
    let (buckets, total) = lateness(&client, &server).await?;
    let (start_p50, start_p99, start_max) = pass_starts(&pg, &db.name, measured_from).await?;
    // The histogram is cumulative: take out the fires before the measured minutes.
    let measured: Vec<(f64, f64)> = buckets
        .iter()
        .map(|&(le, c)| (le, c - earlier.iter().find(|(l, _)| *l == le).map_or(0.0, |(_, e)| *e)))
        .collect();
    let count = total - skipped;
    let p50 = quantile(&measured, count, 0.50);
    let p99 = quantile(&measured, count, 0.99);
    let within_1s = measured.iter().find(|(le, _)| *le >= 1.0).map_or(f64::NAN, |(_, c)| c / count * 100.0);
    // The latest fire lies in the first bucket that holds them all.
    let latest = measured.iter().find(|(_, c)| *c >= count).map_or(f64::NAN, |(le, _)| *le);
    let burst_max = burst.iter().copied().fold(0.0, f64::max);
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    };
    let (speed_min, speed_max) =
        (speed.iter().copied().fold(f64::INFINITY, f64::min), speed.iter().copied().fold(0.0, f64::max));
    let pg_cpu = median(burst_cpu.iter().map(|c| c.0.total()).collect());
    let pg_autovacuum = median(burst_cpu.iter().map(|c| c.0.autovacuum).collect());
    let server_cpu = median(burst_cpu.iter().map(|c| c.1).collect());
    let (tps_idle, cpu_idle) = if idle_after.is_empty() {
        (f64::NAN, f64::NAN)
    } else {
        let n = idle_after.len() as f64;
        (idle_after.iter().map(|x| x.0).sum::<f64>() / n, idle_after.iter().map(|x| x.1).sum::<f64>() / n)
    };
    Ok([
        format!(
            "### B11 — {} minutely triggers over {TENANTS} tenants on PostgreSQL (one server, workers off, pool {}, {} minutes, `{SETTINGS}`)",
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
        format!("| the latest fire (the lateness histogram's bucket) | ≤ {latest} s | — |"),
        format!(
            "| from the database: scheduled time → start of the pass that created it, p50, p99, max | {:.0} ms, {:.0} ms, {:.0} ms | — |",
            start_p50 * 1000.0,
            start_p99 * 1000.0,
            start_max * 1000.0
        ),
        format!(
            "| one minute's {} fires all counted by a `/metrics` scrape (every 100 ms) sent after | {burst_max:.1} s (slowest minute) | — |",
            TENANTS * PER_TENANT
        ),
        format!(
            "| the first minute after the start (every plan made afresh): fires counted by; CPU PostgreSQL, the server | {:.1} s; {:.2} s, {:.2} s | — |",
            first.counted_by,
            first.pg_cpu.total(),
            first.server_cpu
        ),
        format!(
            "| CPU a minute's fires took (median minute): PostgreSQL (of which autovacuum), the server | {pg_cpu:.2} s ({pg_autovacuum:.2} s; {:.2} ms a tenant pass), {server_cpu:.2} s | — |",
            pg_cpu * 1000.0 / TENANTS as f64
        ),
        format!(
            "| the machine: 200 million xorshift steps on one thread, before each measured minute (slower when its CPUs are shared) | {speed_min:.0}-{speed_max:.0} ms | — |"
        ),
        format!("| database transactions/s while nothing is due: 0 triggers → {} | {tps_before:.2} → {tps_idle:.2} | independent of the trigger count |", TENANTS * PER_TENANT),
        format!("| the same with autovacuum paused for the window (the servers' own transactions): 0 triggers → {} | {quiet_before:.2} → {quiet_after:.2} | independent of the trigger count |", TENANTS * PER_TENANT),
        format!("| server CPU while nothing is due: 0 triggers → {} | {cpu_before:.2} % → {cpu_idle:.2} % | independent of the trigger count |", TENANTS * PER_TENANT),
    ]
    .join("\n"))
}
