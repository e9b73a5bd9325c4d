//! (A tool, not the product: one file per family of cases, read as one procedure.)
//!
//! The engine cases: B3 (PostgreSQL) and B9 (SQLite), 1,000 executions of a 10-task no-op DAG,
//! against pgbench running the equivalent claim + complete SQL on the same cluster in the same
//! invocation; and B5, a noisy neighbour.
//!
//! The engine runs in this process on the real storage adapters, with a runner that succeeds
//! at once: what is measured is the engine and its SQL, not process start-up (a process costs
//! a few milliseconds of its own whatever the engine does).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cloacina_domain::TenantName;
use cloacina_domain::execution::{
    EventKind, ExecutionCreated, ExecutionId, ExecutionQuery, ExecutionStatus, NewExecution, Plan,
};
use cloacina_domain::package::{Manifest, NewPackage, PackageStored};
use cloacina_domain::ports::{
    Clock, ExecutionStore, OutputSink, PackageFiles, PackageStore, StopSignal, TaskJob, TaskOutcome, TaskQueue,
    TaskRun, TaskRunner, TenantStore,
};
use cloacina_ports::{EngineConfig, EnginePorts, EngineRun};
use cloacina_postgres::{PgDb, PgSettings};
use cloacina_sqlite::{SqliteDb, SqliteLocation};
use cloacina_system::SystemClock;
use cloacina_testpg::TestPg;
use tokio::sync::watch;
use uuid::Uuid;

use crate::Options;
use crate::load::median;

/// Succeeds at once, or after `nap`.
#[derive(Debug)]
struct NoopRunner {
    nap: Duration,
}

#[async_trait]
impl TaskRunner for NoopRunner {
    async fn run(&self, _job: TaskJob, _output: Arc<dyn OutputSink>, _stop: StopSignal) -> TaskRun {
        if !self.nap.is_zero() {
            tokio::time::sleep(self.nap).await;
        }
        TaskRun { outcome: TaskOutcome::Succeeded { output: None }, stdout_cut: 0, stderr_cut: 0, duration: self.nap }
    }
}

#[derive(Debug)]
struct NoFiles;

#[async_trait]
impl PackageFiles for NoFiles {
    async fn workdir(&self, _: &TenantName, _: Uuid) -> Result<PathBuf, String> {
        Ok(std::env::temp_dir())
    }

    async fn forget_tenant(&self, _: &TenantName) -> usize {
        0
    }
}

/// A store both ports of which the engine and this bench drive.
trait Store: ExecutionStore + TaskQueue + PackageStore + 'static {}
impl<T: ExecutionStore + TaskQueue + PackageStore + 'static> Store for T {}

/// `t0 → t1 … t8 → t9`: one root, eight in parallel, one joining them.
fn dag_manifest() -> String {
    let mut text = String::from("[package]\nname = \"bench\"\nversion = \"1.0.0\"\n[[workflow]]\nname = \"dag\"\n");
    text.push_str("[[workflow.task]]\nid = \"t0\"\ncommand = [\"true\"]\n");
    for i in 1..=8 {
        text.push_str(&format!("[[workflow.task]]\nid = \"t{i}\"\ncommand = [\"true\"]\ndepends_on = [\"t0\"]\n"));
    }
    let all: Vec<String> = (1..=8).map(|i| format!("\"t{i}\"")).collect();
    text.push_str(&format!(
        "[[workflow.task]]\nid = \"t9\"\ncommand = [\"true\"]\ndepends_on = [{}]\n",
        all.join(", ")
    ));
    text
}

async fn install(store: &dyn Store, tenant: &TenantName) -> anyhow::Result<(Plan, Uuid)> {
    let text = dag_manifest();
    let archive = tempfile::NamedTempFile::new()?;
    std::fs::write(archive.path(), b"bench")?;
    let manifest = Manifest::parse(&text)?;
    let plan = Plan::of(&manifest.workflows[0]);
    let new = NewPackage {
        id: Uuid::new_v4(),
        manifest,
        manifest_text: text,
        archive: archive.path().to_owned(),
        size_bytes: 5,
        content_hash: format!("{:064x}", rand_u128()),
        uploaded_at: Utc::now(),
        uploaded_by: None,
        signature: None,
    };
    match store.store_package(tenant, &new, &noted()).await? {
        Some(PackageStored::Created(r)) => Ok((plan, r.id)),
        other => anyhow::bail!("package not stored: {other:?}"),
    }
}

fn rand_u128() -> u128 {
    Uuid::new_v4().as_u128()
}

async fn submit(store: &dyn Store, tenant: &TenantName, plan: &Plan, package: Uuid) -> anyhow::Result<ExecutionId> {
    let new = NewExecution {
        id: ExecutionId::from_uuid(Uuid::new_v4()),
        workflow: "dag".into(),
        package_id: package,
        package_version: "1.0.0".into(),
        plan: plan.clone(),
        context: serde_json::Map::new(),
        origin: "api".into(),
        idempotency_key: None,
        created_at: SystemClock.now(),
        created_by: None,
        fired: None,
    };
    match store.create_execution(tenant, &new, &noted()).await? {
        Some(ExecutionCreated::Created(_)) => Ok(new.id),
        other => anyhow::bail!("execution not created: {other:?}"),
    }
}

fn engine(store: Arc<dyn Store>, workers: usize, nap: Duration, poll: Duration) -> EngineRun {
    let queue: Arc<dyn TaskQueue> = store;
    let ports = EnginePorts {
        queue,
        runner: Arc::new(NoopRunner { nap }),
        files: Arc::new(NoFiles),
        secrets: Arc::new(cloacina_ports::NoSecrets),
        clock: Arc::new(SystemClock),
        metrics: Arc::new(cloacina_ports::NoMetrics),
    };
    EngineRun::new(
        ports,
        EngineConfig { workers, lease: Duration::from_secs(30), batch: 32, poll },
        format!("bench-{}", std::process::id()),
    )
}

async fn unfinished(store: &dyn Store, tenant: &TenantName) -> anyhow::Result<u64> {
    let mut n = 0;
    for status in [ExecutionStatus::Pending, ExecutionStatus::Running] {
        let q = ExecutionQuery { status: Some(status), limit: 1, ..Default::default() };
        n += store.list_executions(tenant, &q).await?.context("tenant")?.total;
    }
    Ok(n)
}

async fn wait_done(store: &dyn Store, tenant: &TenantName, within: Duration) -> anyhow::Result<()> {
    let start = Instant::now();
    while unfinished(store, tenant).await? > 0 {
        anyhow::ensure!(start.elapsed() < within, "executions still unfinished after {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Ready → claimed, per task, and finished → dependent claimed, from the events.
async fn latencies(
    store: &dyn Store,
    tenant: &TenantName,
    ids: &[ExecutionId],
) -> anyhow::Result<(Vec<f64>, Vec<f64>)> {
    let mut ready_to_claimed = Vec::new();
    let mut dependent = Vec::new();
    for id in ids {
        let events =
            store.execution_events(tenant, *id, 0, 1000).await?.into_found().context("no such tenant or execution")?;
        let mut ready: HashMap<String, DateTime<Utc>> = HashMap::new();
        let mut finished_at: HashMap<String, DateTime<Utc>> = HashMap::new();
        let created = events.first().map(|e| e.at).context("no events")?;
        ready.insert("t0".into(), created);
        for e in &events {
            let Some(task) = e.task.clone() else { continue };
            match e.kind {
                EventKind::TaskSucceeded => {
                    finished_at.insert(task, e.at);
                }
                EventKind::TaskReady => {
                    ready.insert(task, e.at);
                }
                EventKind::TaskStarted => {
                    if let Some(r) = ready.get(&task) {
                        ready_to_claimed.push(ms(e.at - *r));
                    }
                    let deps: Vec<&str> = match task.as_str() {
                        "t0" => Vec::new(),
                        "t9" => (1..=8).map(|i| ["t1", "t2", "t3", "t4", "t5", "t6", "t7", "t8"][i - 1]).collect(),
                        _ => vec!["t0"],
                    };
                    if let Some(last) = deps.iter().filter_map(|d| finished_at.get(*d)).max()
                        && deps.iter().all(|d| finished_at.contains_key(*d))
                    {
                        dependent.push(ms(e.at - *last));
                    }
                }
                _ => {}
            }
        }
    }
    Ok((ready_to_claimed, dependent))
}

fn ms(d: chrono::Duration) -> f64 {
    d.num_microseconds().unwrap_or(0) as f64 / 1000.0
}

fn quantile(mut v: Vec<f64>, q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let i = ((v.len() - 1) as f64 * q).round() as usize;
    v[i]
}

/// One measurement: `executions` queued at once, then the engine started; tasks/s until all
/// finished. Then a paced run for latencies.
async fn measure(
    store: Arc<dyn Store>,
    tenant: &TenantName,
    executions: usize,
    workers: usize,
) -> anyhow::Result<EngineFigures> {
    let (plan, package) = install(store.as_ref(), tenant).await?;
    for _ in 0..executions {
        submit(store.as_ref(), tenant, &plan, package).await?;
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let e = engine(store.clone(), workers, Duration::ZERO, Duration::from_secs(30));
    let started = Instant::now();
    let running = tokio::spawn(e.run(stop_rx, Duration::from_secs(5)));
    wait_done(store.as_ref(), tenant, Duration::from_secs(600)).await?;
    let elapsed = started.elapsed();
    let tasks_per_s = (executions * plan.tasks.len()) as f64 / elapsed.as_secs_f64();
    // Latencies: one execution at a time, each after the one before has finished, so no queue
    // stands between ready and claimed.
    let mut ids = Vec::new();
    for _ in 0..50 {
        let id = submit(store.as_ref(), tenant, &plan, package).await?;
        wait_done(store.as_ref(), tenant, Duration::from_secs(30)).await?;
        ids.push(id);
    }
    let (ready, dependent) = latencies(store.as_ref(), tenant, &ids).await?;
    let _ = stop_tx.send(true);
    let _ = running.await;
    Ok(EngineFigures {
        tasks_per_s,
        ready_p50: quantile(ready.clone(), 0.5),
        ready_p99: quantile(ready, 0.99),
        dependent_p50: quantile(dependent, 0.5),
    })
}

struct EngineFigures {
    tasks_per_s: f64,
    ready_p50: f64,
    ready_p99: f64,
    dependent_p50: f64,
}

const EXECUTIONS: usize = 1000;
const WORKERS: usize = 32;

/// pgbench's claim + complete on a queue table shaped like ours: tasks per second, `batch` rows
/// claimed per transaction.
fn pgbench(url: &str, batch: usize, seconds: u64) -> anyhow::Result<f64> {
    let dir = tempfile::tempdir()?;
    let script = dir.path().join("claim.sql");
    std::fs::write(
        &script,
        format!(
            "WITH picked AS (SELECT id FROM bench_queue WHERE status = 'ready' ORDER BY ready_at LIMIT {batch} FOR UPDATE SKIP LOCKED), \
             claimed AS (UPDATE bench_queue q SET status = 'running', lease_owner = 'pgbench', lease_until = now() + interval '30 s' \
             FROM picked WHERE q.id = picked.id RETURNING q.id) \
             SELECT coalesce(string_agg(id::text, ','), '') AS ids FROM claimed \\gset\n\
             UPDATE bench_queue SET status = 'done', lease_owner = NULL, lease_until = NULL, output = '{{}}' \
             WHERE id = ANY (string_to_array(':ids', ',')::bigint[]);\n"
        ),
    )?;
    let out = std::process::Command::new("pgbench")
        .args(["-n", "-c", "8", "-j", "2", "-T", &seconds.to_string(), "-f"])
        .arg(&script)
        .arg(url)
        .output()
        .context("pgbench (Debian: apt-get install -y postgresql-contrib, or postgresql-15)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(out.status.success(), "pgbench failed: {} {}", text, String::from_utf8_lossy(&out.stderr));
    let tps = text
        .lines()
        .find(|l| l.starts_with("tps = "))
        .and_then(|l| l.trim_start_matches("tps = ").split_whitespace().next())
        .and_then(|n| n.parse::<f64>().ok())
        .context("pgbench printed no tps")?;
    Ok(tps * batch as f64)
}

async fn prepare_pgbench(url: &str) -> anyhow::Result<()> {
    use sqlx::Connection as _;
    let mut c = sqlx::PgConnection::connect(url).await?;
    sqlx::raw_sql(
        "DROP TABLE IF EXISTS bench_queue;
         CREATE TABLE bench_queue (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, status text NOT NULL,
             ready_at timestamptz NOT NULL, lease_owner text, lease_until timestamptz, output jsonb);
         INSERT INTO bench_queue (status, ready_at) SELECT 'ready', now() FROM generate_series(1, 400000);
         CREATE INDEX bench_queue_ready ON bench_queue (ready_at) WHERE status = 'ready';",
    )
    .execute(&mut c)
    .await?;
    sqlx::raw_sql("VACUUM ANALYZE bench_queue").execute(&mut c).await?;
    Ok(())
}

/// B3: the engine on PostgreSQL against pgbench on the same cluster.
pub async fn b3(o: &Options) -> anyhow::Result<String> {
    let pg = TestPg::private();
    let db = pg.database().await;
    let mut rows = Vec::new();
    let mut refs = (Vec::new(), Vec::new());
    let mut figures = Vec::new();
    for _ in 0..o.runs.clamp(1, 5) {
        prepare_pgbench(&db.url).await?;
        refs.0.push(pgbench(&db.url, 1, o.seconds.max(3))?);
        prepare_pgbench(&db.url).await?;
        refs.1.push(pgbench(&db.url, 10, o.seconds.max(3))?);
        let store = PgDb::connect(
            &cloacina_domain::Secret::new(db.url.clone()),
            &PgSettings { max_connections: o.pool, ..PgSettings::default() },
        )
        .await?;
        store.migrate().await?;
        // A fresh tenant per run, so every run starts from an empty queue.
        let tenant = TenantName::parse(&format!("b3-{}", figures.len()))?;
        store
            .create_tenant(
                &cloacina_domain::NewTenant {
                    name: tenant.clone(),
                    description: None,
                    db_password: cloacina_domain::Secret::new(format!("pw{:032x}", rand_u128())),
                    created_at: Utc::now(),
                },
                &noted(),
            )
            .await?;
        let (stop_tx, stop_rx) = watch::channel(false);
        let listener = store.listen(Arc::new(|_| {}), stop_rx).await?;
        figures.push(measure(Arc::new(store.clone()), &tenant, EXECUTIONS, WORKERS).await?);
        let _ = stop_tx.send(true);
        listener.abort();
        store.close().await;
    }
    let one = median(refs.0);
    let ten = median(refs.1);
    let tps = median(figures.iter().map(|f| f.tasks_per_s).collect());
    rows.push(format!("| tasks/s end to end | {tps:.0} | pgbench claim+complete: {one:.0} one at a time, {ten:.0} by tens | {:.2} of one at a time | ≥ 0.5 |", tps / one));
    rows.push(format!(
        "| ready → claimed p50 | {:.2} ms | | | ≤ 2 ms |",
        median(figures.iter().map(|f| f.ready_p50).collect())
    ));
    rows.push(format!(
        "| ready → claimed p99 | {:.2} ms | | | ≤ 10 ms |",
        median(figures.iter().map(|f| f.ready_p99).collect())
    ));
    rows.push(format!(
        "| finished → dependent claimed p50 | {:.2} ms | | | ≤ 5 ms |",
        median(figures.iter().map(|f| f.dependent_p50).collect())
    ));
    let mut out = vec![
        format!(
            "### B3 — engine on PostgreSQL: {EXECUTIONS} executions of a 10-task no-op DAG ({WORKERS} worker slots, pool {}, {} runs, medians)",
            o.pool,
            figures.len()
        ),
        String::new(),
        "| figure | Cloacina | reference | ratio | goal |".into(),
        "|---|---|---|---|---|".into(),
    ];
    out.extend(rows);
    out.push(String::new());
    out.push(
        "The engine runs in the bench process on the real PostgreSQL adapter with a runner that succeeds at once; \
         pgbench runs 8 clients of claim (`FOR UPDATE SKIP LOCKED` over a partial index) + complete on a 400k-row \
         queue table in the same database, same invocation. Latencies come from the events of 50 executions run one \
         after another (the claim's start time against the time the task became ready)."
            .into(),
    );
    Ok(out.join("\n"))
}

/// B9: B3 on the embedded SQLite backend.
pub async fn b9(o: &Options) -> anyhow::Result<String> {
    let mut figures = Vec::new();
    for _ in 0..o.runs.clamp(1, 5) {
        let dir = tempfile::tempdir()?;
        let store = SqliteDb::open(&SqliteLocation::File(dir.path().join("bench.db")))?;
        store.migrate().await?;
        figures.push(measure(Arc::new(store), &TenantName::public(), EXECUTIONS, WORKERS).await?);
    }
    let tps = median(figures.iter().map(|f| f.tasks_per_s).collect());
    let out = [
        format!("### B9 — engine on SQLite: {EXECUTIONS} executions of a 10-task no-op DAG ({WORKERS} worker slots, {} runs, medians)", figures.len()),
        String::new(),
        "| figure | Cloacina | goal |".into(),
        "|---|---|---|".into(),
        format!("| tasks/s end to end | {tps:.0} | ≥ 2,000 one at a time |"),
        format!("| ready → claimed p50 / p99 | {:.2} / {:.2} ms | |", median(figures.iter().map(|f| f.ready_p50).collect()), median(figures.iter().map(|f| f.ready_p99).collect())),
        format!("| finished → dependent claimed p50 | {:.2} ms | |", median(figures.iter().map(|f| f.dependent_p50).collect())),
        String::new(),
        "A file database in WAL mode (synchronous = NORMAL), the engine in the bench process with a runner that succeeds at once.".into(),
    ];
    Ok(out.join("\n"))
}

/// B5: tenant A queues 10,000 tasks (tasks taking 20 ms, 8 worker slots); then tenant B runs one.
pub async fn b5(o: &Options) -> anyhow::Result<String> {
    let pg = TestPg::private();
    let db = pg.database().await;
    let store = PgDb::connect(
        &cloacina_domain::Secret::new(db.url.clone()),
        &PgSettings { max_connections: o.pool, ..PgSettings::default() },
    )
    .await?;
    store.migrate().await?;
    let (a, b) = (TenantName::parse("noisy")?, TenantName::parse("quiet")?);
    for t in [&a, &b] {
        store
            .create_tenant(
                &cloacina_domain::NewTenant {
                    name: t.clone(),
                    description: None,
                    db_password: cloacina_domain::Secret::new(format!("pw{:032x}", rand_u128())),
                    created_at: Utc::now(),
                },
                &noted(),
            )
            .await?;
    }
    let (plan_a, package_a) = install(&store, &a).await?;
    let (plan_b, package_b) = install(&store, &b).await?;
    for _ in 0..1000 {
        submit(&store, &a, &plan_a, package_a).await?;
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let listener = store.listen(Arc::new(|_| {}), stop_rx.clone()).await?;
    let e = engine(Arc::new(store.clone()), 8, Duration::from_millis(20), Duration::from_secs(30));
    let running = tokio::spawn(e.run(stop_rx, Duration::from_secs(1)));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut waits = Vec::new();
    for _ in 0..o.runs.clamp(3, 9) {
        let id = submit(&store, &b, &plan_b, package_b).await?;
        let start = Instant::now();
        loop {
            let tasks = store.execution_tasks(&b, id).await?.into_found().context("no such tenant or execution")?;
            if tasks[0].started_at.is_some() {
                break;
            }
            anyhow::ensure!(start.elapsed() < Duration::from_secs(60), "B's task never started");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let events =
            store.execution_events(&b, id, 0, 10).await?.into_found().context("no such tenant or execution")?;
        let created = events.iter().find(|e| e.kind == EventKind::ExecutionCreated).context("created")?.at;
        let started = events.iter().find(|e| e.kind == EventKind::TaskStarted).context("started")?.at;
        waits.push(ms(started - created));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let done = ExecutionQuery { status: Some(ExecutionStatus::Succeeded), limit: 1, ..Default::default() };
    let backlog = 1000 - store.list_executions(&a, &done).await?.context("tenant")?.total;
    let _ = stop_tx.send(true);
    let _ = running.await;
    listener.abort();
    let out = [
        "### B5 — noisy neighbour on PostgreSQL: tenant A queues 10,000 tasks (1,000 executions × 10, 20 ms each, 8 worker slots), then tenant B runs one".to_owned(),
        String::new(),
        "| figure | Cloacina | goal |".into(),
        "|---|---|---|".into(),
        format!("| B's wait (created → its task claimed), median of {} | {:.1} ms | < 1 s |", waits.len(), median(waits.clone())),
        format!("| B's wait, worst | {:.1} ms | < 1 s |", waits.iter().copied().fold(0.0, f64::max)),
        format!("| A's executions still unfinished when B's last ran | {backlog} of 1000 | (the backlog was there) |"),
    ];
    Ok(out.join("\n"))
}

/// The audit entry the bench's own changes record (no key acted).
fn noted() -> cloacina_domain::audit::AuditEntry {
    cloacina_domain::audit::AuditEntry::new(
        chrono::Utc::now(),
        None,
        None,
        cloacina_domain::audit::AuditAction::WorkflowExecute,
        "bench",
        cloacina_domain::audit::RequestOrigin::default(),
    )
}
