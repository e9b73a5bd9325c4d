//! Cloacina's benchmarks (docs/benchmarks.md). Run on demand, never in CI:
//!
//! ```text
//! cargo run --release -p cloacina-bench -- [b1] [b2] [b3] [b4] [b5] [b6] [b7] [b8] [b9] [b10] [b11] [b11p] [b12] [b13] [b1pg] [--seconds N] [--runs N] [--connections N] [--pool N] [--minutes N]
//! ```
//!
//! The bench builds the release `cloacinactl`, starts it on a free port in a throwaway home,
//! and drives it from this process. Ratios are taken against references measured in the same
//! invocation (a bare axum JSON route this bench serves from a child process of its own), so
//! drift of a shared machine cancels out. Each result table is printed and appended, with the
//! machine and the command, to `docs/benchmarks.md`.
//!
//! # Layout
//! - [`load`]: the closed-loop load generator and its statistics.
//! - [`procs`]: starting `cloacinactl` and the bare ceiling server, reading RSS.
//! - [`report`]: the machine description and the Markdown output.
//! - [`cases`]: B1, B2, B6, B7, B8 on SQLite.
//! - [`postgres`]: B1 on PostgreSQL (`b1pg`), B4 with B6 on PostgreSQL (`b4`).
//! - [`engine`]: B3 (engine on PostgreSQL against pgbench), B5 (noisy neighbour), B9 (engine on SQLite).
//! - [`sandbox`]: B10, what the task sandbox adds to an attempt.
//! - [`triggers`]: B11, 10,000 minutely cron triggers over 1,000 tenants on PostgreSQL.
//! - [`trigger_passes`]: B11p, what one trigger pass costs on PostgreSQL, pass after pass.
//! - [`live`]: B12, live sockets: latency on one replica and across two, 1,000 sockets.
//! - [`limits`]: B13, request rate limits: one key's flood against another key's reads.

mod cases;
mod engine;
mod limits;
mod live;
mod load;
mod postgres;
mod procs;
mod report;
mod sandbox;
mod statements;
mod trigger_passes;
mod triggers;

use std::time::Duration;

use anyhow::{Context as _, bail};

/// What a run measures, from the command line.
#[derive(Debug, Clone)]
pub struct Options {
    pub cases: Vec<String>,
    pub seconds: u64,
    pub runs: usize,
    pub connections: usize,
    /// `--db-max-connections` of the PostgreSQL cases.
    pub pool: u32,
    /// Whole minutes of fires B11 measures.
    pub minutes: usize,
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("ceiling") {
        return procs::serve_ceiling();
    }
    let options = parse(&args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(run(options, args))
}

fn parse(args: &[String]) -> anyhow::Result<Options> {
    let mut o = Options { cases: Vec::new(), seconds: 2, runs: 9, connections: 64, pool: 16, minutes: 3 };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut number = |name: &str| -> anyhow::Result<u64> {
            it.next()
                .with_context(|| format!("{name} needs a number"))?
                .parse()
                .with_context(|| format!("{name} is not a number"))
        };
        match a.as_str() {
            "--seconds" => o.seconds = number("--seconds")?,
            "--runs" => o.runs = usize::try_from(number("--runs")?)?,
            "--connections" => o.connections = usize::try_from(number("--connections")?)?,
            "--pool" => o.pool = u32::try_from(number("--pool")?)?,
            "--minutes" => o.minutes = usize::try_from(number("--minutes")?)?,
            "b1" | "b2" | "b6" | "b8" | "b1pg" | "b4" | "b3" | "b5" | "b7" | "b9" | "b10" | "b11" | "b11p" | "b12"
            | "b13" => o.cases.push(a.clone()),
            other => {
                bail!(
                    "unknown argument {other}: expected b1 b2 b3 b4 b5 b6 b7 b8 b9 b10 b11 b11p b12 b13 b1pg --seconds N --runs N --connections N --pool N --minutes N"
                )
            }
        }
    }
    if o.cases.is_empty() {
        o.cases = ["b1", "b2", "b6", "b8", "b1pg", "b4"].map(String::from).to_vec();
    }
    Ok(o)
}

async fn run(options: Options, args: Vec<String>) -> anyhow::Result<()> {
    let binary = procs::build_release()?;
    let mut sections = Vec::new();
    for case in &options.cases {
        let produced = match case.as_str() {
            "b1" => vec![cases::b1(&binary, &options).await?],
            "b2" => vec![cases::b2(&binary, &options).await?],
            "b6" => vec![cases::b6(&binary, &options).await?],
            "b8" => vec![cases::b8(&binary, &options).await?],
            "b1pg" => vec![postgres::b1pg(&binary, &options).await?],
            "b4" => postgres::b4_b6(&binary, &options).await?,
            "b3" => vec![engine::b3(&options).await?],
            "b5" => vec![engine::b5(&options).await?],
            "b9" => vec![engine::b9(&options).await?],
            "b7" => vec![cases::b7(&binary, &options).await?],
            "b10" => vec![sandbox::b10(&options).await?],
            "b11" => vec![triggers::b11(&binary, &options).await?],
            "b11p" => vec![trigger_passes::b11p(&options).await?],
            "b12" => vec![live::b12(&binary, &options).await?],
            "b13" => vec![limits::b13(&binary, &options).await?],
            _ => unreachable!("parse accepts only known cases"),
        };
        for section in produced {
            println!("{section}\n");
            sections.push(section);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // The throwaway cluster's extra settings are part of what was measured.
    let settings = std::env::var("CLOACINA_TEST_PG_OPTIONS")
        .ok()
        .filter(|o| !o.trim().is_empty())
        .map_or_else(String::new, |o| format!("CLOACINA_TEST_PG_OPTIONS=\"{}\" ", o.trim()));
    let command = format!("{settings}cargo run --release -p cloacina-bench -- {}", args.join(" "));
    report::append(&command, &sections)?;
    Ok(())
}
