//! The benchmark cases. Each returns a Markdown section.

use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::Options;
use crate::load::{Auth, Stats, drive, median};
use crate::procs::{start_ceiling, start_server};

fn secs(o: &Options) -> Duration {
    Duration::from_secs(o.seconds)
}

fn row(name: &str, rps: f64, p50: f64, p99: f64, ratio: &str, target: &str) -> String {
    format!("| {name} | {rps:.0} | {p50:.2} | {p99:.2} | {ratio} | {target} |")
}

/// The medians of several runs of one target.
struct Summary {
    rps: f64,
    p50: f64,
    p99: f64,
    errors: u64,
}

fn summarise(runs: &[Stats]) -> Summary {
    Summary {
        rps: median(runs.iter().map(Stats::rps).collect()),
        p50: median(runs.iter().map(|s| s.quantile_ms(0.5)).collect()),
        p99: median(runs.iter().map(|s| s.quantile_ms(0.99)).collect()),
        errors: runs.iter().map(|s| s.errors).sum(),
    }
}

/// One load target: a name, a URL, what each request carries.
pub type Target = (String, String, Auth);

/// Drives every target `o.runs` times in short rounds, each round visiting every target in a
/// rotated order, so a slow spell of the shared machine lands on all targets alike; ratios to
/// the first target (the ceiling) are taken within a round. Returns the Markdown rows.
pub async fn against_ceiling(targets: &[Target], o: &Options, goals: &[&str]) -> (Vec<String>, u64) {
    for (_, url, auth) in targets {
        drive(url, auth.clone(), o.connections, Duration::from_secs(1), None, 200).await;
    }
    let mut results: Vec<Vec<Stats>> = vec![Vec::new(); targets.len()];
    let mut ratios: Vec<Vec<f64>> = vec![Vec::new(); targets.len()];
    for round in 0..o.runs {
        let mut this_run = vec![0.0; targets.len()];
        for k in 0..targets.len() {
            let i = (round + k) % targets.len();
            let (_, url, auth) = &targets[i];
            let s = drive(url, auth.clone(), o.connections, secs(o), None, 200).await;
            this_run[i] = s.rps();
            results[i].push(s);
        }
        for (i, rps) in this_run.iter().enumerate() {
            ratios[i].push(rps / this_run[0]);
        }
    }
    let mut rows = Vec::new();
    let mut errors = 0;
    for (i, (name, _, _)) in targets.iter().enumerate() {
        let s = summarise(&results[i]);
        errors += s.errors;
        let ratio = median(ratios[i].clone());
        rows.push(row(name, s.rps, s.p50, s.p99, &format!("{ratio:.2}"), goals.get(i).copied().unwrap_or("—")));
    }
    (rows, errors)
}

/// A `read` key of `public`, made with the admin key, for the workflows read.
async fn public_reader(url: &str, god: &str) -> anyhow::Result<String> {
    let created: serde_json::Value = reqwest::Client::new()
        .post(format!("{url}/v1/tenants/public/keys"))
        .bearer_auth(god)
        .json(&serde_json::json!({"name": "bench-reader"}))
        .send()
        .await?
        .json()
        .await?;
    created["key"].as_str().map(str::to_owned).context("no key in the create answer")
}

/// B1 on SQLite: `/health` and `/v1/auth/whoami` with a cached key (no database work), and
/// the workflows listing (one indexed query), against the bare axum ceiling, run after run in
/// the same invocation.
pub async fn b1(binary: &Path, o: &Options) -> anyhow::Result<String> {
    let ceiling = start_ceiling()?;
    let (server, key) = start_server(binary, None, &[])?;
    let reader = public_reader(&server.url, &key).await?;
    let targets = [
        ("bare axum route (ceiling)".to_owned(), format!("{}/", ceiling.url), Auth::None),
        ("GET /health".to_owned(), format!("{}/health", server.url), Auth::None),
        ("GET /v1/auth/whoami".to_owned(), format!("{}/v1/auth/whoami", server.url), Auth::Key(key.clone())),
        (
            "GET /v1/tenants/public/workflows".to_owned(),
            format!("{}/v1/tenants/public/workflows", server.url),
            Auth::Key(reader),
        ),
    ];
    let (rows, errors) =
        against_ceiling(&targets, o, &["—", "≥ 0.9", "≥ 0.9", "≥ 0.10 (goal set for PostgreSQL)"]).await;
    let mut out = vec![
        format!(
            "### B1 on SQLite — authenticated reads ({} connections, {} × {} s, medians)",
            o.connections, o.runs, o.seconds
        ),
        String::new(),
        "| target | req/s | p50 ms | p99 ms | ratio to ceiling | goal |".into(),
        "|---|---|---|---|---|---|".into(),
    ];
    out.extend(rows);
    out.push(String::new());
    out.push(format!("Errors (non-200 answers or transport failures): {errors}."));
    Ok(out.join("\n"))
}

async fn argon2_runs(url: &str) -> anyhow::Result<u64> {
    let text = reqwest::get(format!("{url}/metrics")).await?.text().await?;
    Ok(text
        .lines()
        .find_map(|l| l.strip_prefix("cloacina_auth_argon2_verifications_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64))
}

/// B2: the legitimate read while another client floods well-formed keys that exist nowhere.
/// The flood comes from 127.0.0.2, the legitimate client from 127.0.0.1.
pub async fn b2(binary: &Path, o: &Options) -> anyhow::Result<String> {
    let legit_from: IpAddr = "127.0.0.1".parse()?;
    let flood_from: IpAddr = "127.0.0.2".parse()?;
    let mut out = vec![
        format!(
            "### B2 — legitimate reads under a flood of unknown well-formed keys ({} legit + {} flood connections, {} × {} s, medians)",
            o.connections,
            o.connections / 2,
            o.runs,
            o.seconds
        ),
        String::new(),
        "The legitimate read is B1's workflows listing, `GET /v1/tenants/public/workflows` with a cached `read` key, on SQLite; every flood request carries a fresh, checksum-valid key whose id exists nowhere.".into(),
        String::new(),
        "| throttle | legit req/s alone | legit req/s with flood | ratio | flood req/s | flood answers | argon2 runs | goal |".into(),
        "|---|---|---|---|---|---|---|---|".into(),
    ];
    for (label, extra) in [
        ("off (`--auth-failures-per-minute 0`)", vec!["--auth-failures-per-minute", "0"]),
        ("default (60/min/address)", vec![]),
    ] {
        let (server, god) = start_server(binary, None, &extra)?;
        let key = public_reader(&server.url, &god).await?;
        let url = format!("{}/v1/tenants/public/workflows", server.url);
        drive(&url, Auth::Key(key.clone()), o.connections, Duration::from_secs(1), Some(legit_from), 200).await;
        let before = argon2_runs(&server.url).await?;
        let (mut alone, mut with, mut ratios, mut flood_rps) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut flood_statuses = (0u64, 0u64);
        for _ in 0..o.runs {
            let a = drive(&url, Auth::Key(key.clone()), o.connections, secs(o), Some(legit_from), 200).await;
            let flood_url = url.clone();
            let (c, d) = (o.connections / 2, secs(o));
            let flood_401 =
                tokio::spawn(async move { drive(&flood_url, Auth::Forged, c, d, Some(flood_from), 401).await });
            let w = drive(&url, Auth::Key(key.clone()), o.connections, secs(o), Some(legit_from), 200).await;
            let f = flood_401.await?;
            flood_statuses.0 += f.requests;
            flood_statuses.1 += f.errors;
            flood_rps.push((f.requests + f.errors) as f64 / f.seconds);
            ratios.push(w.rps() / a.rps());
            alone.push(a.rps());
            with.push(w.rps());
        }
        let argon = argon2_runs(&server.url).await? - before;
        out.push(format!(
            "| {label} | {:.0} | {:.0} | {:.2} | {:.0} | {} × 401, {} other (429 when throttled) | {argon} | ≥ 0.8, 0 argon2 |",
            median(alone),
            median(with),
            median(ratios),
            median(flood_rps),
            flood_statuses.0,
            flood_statuses.1
        ));
    }
    Ok(out.join("\n"))
}

/// B6: process start to `/ready` on SQLite, on an empty database and on an existing one.
pub async fn b6(binary: &Path, o: &Options) -> anyhow::Result<String> {
    let client = reqwest::Client::new();
    let starts = 10.max(o.runs);
    let mut fresh = Vec::new();
    let mut again = Vec::new();
    for _ in 0..starts {
        let (server, _) = start_server(binary, None, &[])?;
        fresh.push(wait_ready(&client, &server.url, server.started).await?);
        // Restart on the same home: migrations applied, bootstrap skipped.
        let home = server.into_home().context("the server's home")?;
        let (server, _) = start_server(binary, Some(home), &[])?;
        again.push(wait_ready(&client, &server.url, server.started).await?);
    }
    let max = |v: &[f64]| v.iter().copied().fold(f64::MIN, f64::max);
    Ok([
        format!("### B6 — start-up to `/ready` on SQLite ({starts} starts each, release build)"),
        String::new(),
        "| database | median ms | max ms | goal |".into(),
        "|---|---|---|---|".into(),
        format!(
            "| empty (migrations + bootstrap key) | {:.1} | {:.1} | ≤ 100 ms |",
            median(fresh.clone()),
            max(&fresh)
        ),
        format!("| existing (restart) | {:.1} | {:.1} | ≤ 100 ms |", median(again.clone()), max(&again)),
    ]
    .join("\n"))
}

async fn wait_ready(client: &reqwest::Client, url: &str, started: Instant) -> anyhow::Result<f64> {
    loop {
        if let Ok(r) = client.get(format!("{url}/ready")).send().await
            && r.status().as_u16() == 200
        {
            return Ok(started.elapsed().as_secs_f64() * 1000.0);
        }
        if started.elapsed() > Duration::from_secs(30) {
            anyhow::bail!("server never became ready");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// B8: resident memory idle and under B1's whoami load.
pub async fn b8(binary: &Path, o: &Options) -> anyhow::Result<String> {
    let (server, key) = start_server(binary, None, &[])?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = server.rss_mib();
    let url = format!("{}/v1/auth/whoami", server.url);
    let load = tokio::spawn({
        let (c, d) = (o.connections, secs(o));
        async move { drive(&url, Auth::Key(key), c, d, None, 200).await }
    });
    let mut peak = idle;
    while !load.is_finished() {
        peak = peak.max(server.rss_mib());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stats = load.await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = server.rss_mib();
    Ok([
        format!("### B8 — server memory (RSS), SQLite, {} connections of whoami for {} s", o.connections, o.seconds),
        String::new(),
        "| state | RSS MiB | goal |".into(),
        "|---|---|---|".into(),
        format!("| idle, 2 s after start | {idle:.1} | < 60 MB |"),
        format!("| peak under load ({:.0} req/s) | {peak:.1} | < 200 MB |", stats.rps()),
        format!("| 1 s after the load | {after:.1} | — |"),
    ]
    .join("\n"))
}

/// A package whose one extra file is `mib` MiB of incompressible bytes, packed by the CLI.
fn big_package(binary: &Path, dir: &Path, mib: usize) -> anyhow::Result<std::path::PathBuf> {
    let src = dir.join("big");
    std::fs::create_dir_all(&src)?;
    std::fs::write(
        src.join("package.toml"),
        "[package]\nname = \"big\"\nversion = \"1.0.0\"\n[[workflow]]\nname = \"big\"\n[[workflow.task]]\nid = \"a\"\ncommand = [\"true\"]\n",
    )?;
    // xorshift bytes: incompressible, so the archive is as large as the data.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut data = Vec::with_capacity(mib << 20);
    while data.len() < mib << 20 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.extend_from_slice(&x.to_le_bytes());
    }
    std::fs::write(src.join("data.bin"), &data)?;
    let out = dir.join("big-1.0.0.cloacina");
    let status =
        std::process::Command::new(binary).args(["package", "pack"]).arg(&src).arg("--file").arg(&out).status()?;
    anyhow::ensure!(status.success(), "package pack failed");
    Ok(out)
}

/// B7: a 50 MiB package uploaded; seconds, and how much the server's peak RSS grew.
pub async fn b7(binary: &Path, o: &Options) -> anyhow::Result<String> {
    let work = tempfile::tempdir()?;
    let file = big_package(binary, work.path(), 50)?;
    let size_mib = std::fs::metadata(&file)?.len() as f64 / 1024.0 / 1024.0;
    let bytes = std::fs::read(&file)?;
    let mut rows = Vec::new();
    let mut growth = Vec::new();
    let mut seconds = Vec::new();
    for _ in 0..o.runs.clamp(1, 5) {
        let (server, god) = start_server(binary, None, &[])?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let before = server.rss_mib();
        let form = reqwest::multipart::Form::new()
            .part("file", reqwest::multipart::Part::bytes(bytes.clone()).file_name("big-1.0.0.cloacina"));
        let started = Instant::now();
        let res = reqwest::Client::new()
            .post(format!("{}/v1/tenants/public/workflows", server.url))
            .bearer_auth(&god)
            .multipart(form)
            .send()
            .await?;
        let status = res.status();
        let _ = res.bytes().await?;
        let took = started.elapsed().as_secs_f64();
        anyhow::ensure!(status.as_u16() == 201, "upload answered {status}");
        let peak = server.peak_rss_mib();
        growth.push(peak - before);
        seconds.push(took);
    }
    let g = median(growth);
    rows.push(format!(
        "| {size_mib:.1} MiB package, SQLite | {:.2} s | {g:.1} MiB ({:.2}× the package) | < 2× |",
        median(seconds),
        g / size_mib
    ));
    let mut out = vec![
        format!("### B7 — upload of a 50 MiB package (release build, {} runs, medians)", o.runs.clamp(1, 5)),
        String::new(),
        "| upload | time | peak RSS growth (VmHWM − RSS before) | goal |".into(),
        "|---|---|---|---|".into(),
    ];
    out.extend(rows);
    Ok(out.join("\n"))
}
