//! B13, request rate limits: one key floods while another key of the same tenant reads, each
//! under the default per-key limit (1,000 requests a second) and from its own address; the
//! reading key's answered requests a second with the flood against without it.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::json;

use crate::Options;
use crate::load::{Auth, drive, median};
use crate::procs::start_server;

async fn reader(url: &str, god: &str, name: &str) -> anyhow::Result<String> {
    let created: serde_json::Value = reqwest::Client::new()
        .post(format!("{url}/v1/tenants/public/keys"))
        .bearer_auth(god)
        .json(&json!({ "name": name }))
        .send()
        .await?
        .json()
        .await?;
    created["key"].as_str().map(str::to_owned).context("no key in the create answer")
}

/// B13.
pub async fn b13(binary: &Path, o: &Options) -> anyhow::Result<String> {
    let (legit_from, flood_from): (IpAddr, IpAddr) = ("127.0.0.1".parse()?, "127.0.0.2".parse()?);
    let (server, god) =
        start_server(binary, None, &["--rate-limit-per-key", "1000", "--rate-limit-per-address", "2000"])?;
    let (legit, flood) = (reader(&server.url, &god, "legit").await?, reader(&server.url, &god, "flood").await?);
    let url = format!("{}/v1/tenants/public/workflows", server.url);
    let seconds = Duration::from_secs(o.seconds.max(2));
    let (mut alone, mut with, mut ratios, mut flood_rps, mut flood_refused) = (vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..o.runs {
        // Let both buckets fill again between runs.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let a = drive(&url, Auth::Key(legit.clone()), 4, seconds, Some(legit_from), 200).await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        let (flood_url, flood_key, connections) = (url.clone(), flood.clone(), o.connections);
        let flooding = tokio::spawn(async move {
            drive(&flood_url, Auth::Key(flood_key), connections, seconds, Some(flood_from), 429).await
        });
        let w = drive(&url, Auth::Key(legit.clone()), 4, seconds, Some(legit_from), 200).await;
        let f = flooding.await?;
        alone.push(a.rps());
        with.push(w.rps());
        ratios.push(w.rps() / a.rps());
        flood_rps.push((f.requests + f.errors) as f64 / f.seconds);
        flood_refused.push(f.requests as f64 / (f.requests + f.errors).max(1) as f64);
    }
    Ok([
        format!(
            "### B13 — one key floods, another key of the same tenant reads (default limits, 4 + {} connections, {} × {} s, medians)",
            o.connections,
            o.runs,
            seconds.as_secs()
        ),
        String::new(),
        "Both keys read `GET /v1/tenants/public/workflows` on SQLite, the reading key from 127.0.0.1, the flooding key from 127.0.0.2; the reading key asks faster than its own limit, so its figure is the answered (200) requests a second.".into(),
        String::new(),
        "| reading key alone, 200/s | with the flood, 200/s | ratio | flood requests/s | flood answered 429 | goal |".into(),
        "|---|---|---|---|---|---|".into(),
        format!(
            "| {:.0} | {:.0} | {:.2} | {:.0} | {:.1} % | ratio ≥ 0.8 |",
            median(alone),
            median(with),
            median(ratios),
            median(flood_rps),
            median(flood_refused) * 100.0
        ),
    ]
    .join("\n"))
}
