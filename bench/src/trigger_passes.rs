//! B11p: what one trigger pass costs on PostgreSQL, measured without a server in between:
//! the PostgreSQL adapter in this process, one lane, tenants of ten triggers each passed in
//! turn, every pass firing all ten. It prints the CPU a pass takes in PostgreSQL and in this
//! process, round by round, so that two versions of a pass can be compared on a shared
//! machine within minutes (B11 itself moves by half between minutes of one run).

use std::time::Instant;

use anyhow::Context as _;

use chrono::Utc;
use cloacina_contract::executions::t0;
use cloacina_contract::noted;
use cloacina_contract::triggers::package;
use cloacina_domain::ports::{PackageStore, TenantStore, TriggerStore};
use cloacina_domain::tenant::NewTenant;
use cloacina_domain::{Secret, TenantName};
use cloacina_postgres::{PgDb, PgSettings};
use cloacina_testpg::TestPg;

use crate::Options;
use crate::triggers::{SETTINGS, postgres_cpu};

const TENANTS: usize = 200;
const PER_TENANT: usize = 10;
const ROUNDS: usize = 7;

/// Ten triggers every second, each starting the package's one-task workflow.
fn triggers() -> Vec<String> {
    (0..PER_TENANT)
        .map(|t| format!("name = \"every-second-{t}\"\ncron = \"* * * * * *\"\noverlap = \"allow\""))
        .collect()
}

/// This process's user + system CPU seconds so far.
fn own_cpu() -> f64 {
    crate::procs::cpu_seconds_of(&std::fs::read_to_string("/proc/self/stat").unwrap_or_default())
}

pub async fn b11p(_: &Options) -> anyhow::Result<String> {
    let pg = TestPg::private_with(SETTINGS);
    let db = pg.database().await;
    let store =
        PgDb::connect(&Secret::new(&db.url), &PgSettings { max_connections: 4, ..PgSettings::default() }).await?;
    store.migrate().await?;
    let triggers = triggers();
    let triggers: Vec<&str> = triggers.iter().map(String::as_str).collect();
    let mut names = Vec::new();
    for i in 0..TENANTS {
        let name = TenantName::parse(&format!("t{i:04}")).map_err(|e| anyhow::anyhow!("{e}"))?;
        let tenant = NewTenant {
            name: name.clone(),
            description: None,
            db_password: Secret::new(format!("Bench-{i}-0123456789abcdef")),
            created_at: Utc::now(),
        };
        store.create_tenant(&tenant, &noted()).await?;
        store
            .store_package(&name, &package("each", "1.0.0", &triggers), &noted())
            .await?
            .context("the tenant is gone")?;
        names.push(name);
    }
    let mut lines = vec![
        format!(
            "### B11p — one trigger pass on PostgreSQL ({TENANTS} tenants × {PER_TENANT} triggers, one lane, passes in turn, `{SETTINGS}`)"
        ),
        String::new(),
        "| round | passes | wall ms a pass | PostgreSQL CPU ms a pass | this process's CPU ms a pass |".into(),
        "|---|---|---|---|---|".into(),
    ];
    let mut pg_per_pass = Vec::new();
    let statements = crate::statements::enable(&pg, &db.name).await?;
    // Round 0 prepares every statement and opens every relation: shown, not counted.
    for round in 0..=ROUNDS {
        let now = t0() + chrono::Duration::seconds(i64::try_from(round)? + 1);
        let (pg0, own0, wall) = (postgres_cpu(), own_cpu(), Instant::now());
        for name in &names {
            let pass = store.fire_due(name, now, 100).await?.ok_or_else(|| anyhow::anyhow!("{name} gone"))?;
            anyhow::ensure!(pass.started.len() == PER_TENANT, "{name} at {now}: {} fires", pass.started.len());
        }
        let n = names.len() as f64;
        let (wall, pg_ms, own_ms) = (
            wall.elapsed().as_secs_f64() * 1000.0 / n,
            postgres_cpu().since(&pg0).total() * 1000.0 / n,
            (own_cpu() - own0) * 1000.0 / n,
        );
        println!("B11p: round {round}: {wall:.3} ms a pass, PostgreSQL {pg_ms:.3} ms, this process {own_ms:.3} ms");
        lines.push(format!(
            "| {round}{} | {} | {wall:.3} | {pg_ms:.3} | {own_ms:.3} |",
            if round == 0 { " (first)" } else { "" },
            names.len()
        ));
        if round > 0 {
            pg_per_pass.push(pg_ms);
        } else if statements {
            crate::statements::reset(&pg, &db.name).await?;
        }
    }
    if statements {
        for line in crate::statements::top(&pg, &db.name, 8).await? {
            println!("B11p: {line}");
        }
    }
    pg_per_pass.sort_by(f64::total_cmp);
    lines.push(String::new());
    lines.push(format!(
        "Median PostgreSQL CPU a pass over rounds 1–{ROUNDS}: {:.3} ms.",
        pg_per_pass[pg_per_pass.len() / 2]
    ));
    Ok(lines.join("\n"))
}
