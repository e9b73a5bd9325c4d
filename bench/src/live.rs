//! B12, the live sockets: event committed → frame received, on the replica that wrote it and
//! on another (PostgreSQL, two servers), and 1,000 sockets on one server (SQLite): memory and
//! CPU while events flow to all of them.
//!
//! Events come from `POST …/execute` on servers without workers: each execution is one
//! `execution_created` event, whose `created_at` is taken in the writing transaction just before
//! it commits; a frame's latency is its arrival time minus that (same machine, same clock), so
//! it slightly overstates commit → frame.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use futures::StreamExt as _;
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::Options;
use crate::procs::{Running, start_replica, start_server};

const WORKFLOW: &str = "[package]\nname = \"live\"\nversion = \"1.0.0\"\n[[workflow]]\nname = \"tick\"\n[[workflow.task]]\nid = \"a\"\ncommand = [\"true\"]\n";

fn package(binary: &Path, dir: &Path) -> anyhow::Result<Vec<u8>> {
    let src = dir.join("live");
    std::fs::create_dir_all(&src)?;
    std::fs::write(src.join("package.toml"), WORKFLOW)?;
    let out = dir.join("live-1.0.0.cloacina");
    let status =
        std::process::Command::new(binary).args(["package", "pack"]).arg(&src).arg("--file").arg(&out).status()?;
    anyhow::ensure!(status.success(), "package pack failed");
    Ok(std::fs::read(out)?)
}

async fn upload(server: &Running, key: &str, bytes: Vec<u8>) -> anyhow::Result<()> {
    let form =
        reqwest::multipart::Form::new().part("file", reqwest::multipart::Part::bytes(bytes).file_name("l.cloacina"));
    let res = reqwest::Client::new()
        .post(format!("{}/v1/tenants/public/workflows", server.url))
        .bearer_auth(key)
        .multipart(form)
        .send()
        .await?;
    anyhow::ensure!(res.status().as_u16() == 201, "upload answered {}", res.status());
    Ok(())
}

async fn post(url: &str, key: &str, body: Value) -> anyhow::Result<Value> {
    let res = reqwest::Client::new().post(url).bearer_auth(key).json(&body).send().await?;
    let status = res.status();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    anyhow::ensure!(status.is_success(), "POST {url}: {status} {body}");
    Ok(body)
}

/// What the sockets saw: each frame's latency in ms, and how many frames in all.
#[derive(Default)]
struct Seen {
    latencies_ms: Mutex<Vec<f64>>,
    frames: AtomicU64,
}

/// Opens the tenant feed on `server` with `key`; every frame's latency goes to `seen` if
/// `timed`, and is counted either way. Returns once the socket is open.
async fn feed(
    server: &Running,
    key: &str,
    seen: Arc<Seen>,
    timed: bool,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let url = format!("{}/v1/ws/tenants/public/executions", server.url.replacen("http://", "ws://", 1));
    let mut request = url.into_client_request()?;
    request.headers_mut().insert("authorization", format!("Bearer {key}").parse()?);
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.context("opening a socket")?;
    Ok(tokio::spawn(async move {
        while let Some(Ok(msg)) = ws.next().await {
            let Message::Text(text) = msg else { continue };
            let arrived = Utc::now();
            seen.frames.fetch_add(1, Ordering::Relaxed);
            if !timed {
                continue;
            }
            let Ok(frame) = serde_json::from_str::<Value>(text.as_str()) else { continue };
            if let Some(at) = frame["created_at"].as_str().and_then(|s| DateTime::parse_from_rfc3339(s).ok()) {
                let ms = (arrived - at.with_timezone(&Utc)).num_microseconds().unwrap_or(0) as f64 / 1000.0;
                seen.latencies_ms.lock().await.push(ms);
            }
        }
    }))
}

/// `n` executions through `server`, `per_second` of them a second.
async fn drive(server: &Running, key: &str, n: usize, per_second: u64) -> anyhow::Result<()> {
    let url = format!("{}/v1/tenants/public/workflows/tick/execute", server.url);
    let client = reqwest::Client::new();
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / per_second.max(1)));
    for _ in 0..n {
        tick.tick().await;
        let res = client.post(&url).bearer_auth(key).json(&json!({})).send().await?;
        anyhow::ensure!(res.status().as_u16() == 202, "execute answered {}", res.status());
    }
    Ok(())
}

fn quantile(values: &[f64], q: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    v[((v.len() - 1) as f64 * q).round() as usize]
}

async fn settle(seen: &Seen, want: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen.frames.load(Ordering::Relaxed) < want && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// B12.
pub async fn b12(binary: &Path, o: &Options) -> anyhow::Result<String> {
    let work = tempfile::tempdir()?;
    let bytes = package(binary, work.path())?;
    let events = (o.seconds.max(2) * 50) as usize;

    // Latency: two replicas on one PostgreSQL, writes through A, sockets on both.
    let pg = cloacina_testpg::TestPg::private();
    let db = pg.database().await;
    let flags = ["--database-url", db.url.as_str(), "--workers", "0"];
    let (a, god) = start_server(binary, None, &flags)?;
    let b = start_replica(binary, &flags)?;
    upload(&a, &god, bytes.clone()).await?;
    let (same, across) = (Arc::new(Seen::default()), Arc::new(Seen::default()));
    let mut readers = Vec::new();
    for _ in 0..4 {
        readers.push(feed(&a, &god, same.clone(), true).await?);
        readers.push(feed(&b, &god, across.clone(), true).await?);
    }
    drive(&a, &god, events, 50).await?;
    settle(&same, 4 * events as u64).await;
    settle(&across, 4 * events as u64).await;
    for r in &readers {
        r.abort();
    }
    let (same_ms, across_ms) = (same.latencies_ms.lock().await.clone(), across.latencies_ms.lock().await.clone());
    drop((a, b));

    // 1,000 sockets on one SQLite server, 50 events a second to all of them.
    let (server, god) = start_server(binary, None, &["--workers", "0"])?;
    upload(&server, &god, bytes).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle = server.rss_mib();
    let seen = Arc::new(Seen::default());
    let mut keys = Vec::new();
    for n in 0..20 {
        let body =
            post(&format!("{}/v1/tenants/public/keys", server.url), &god, json!({"name": format!("feed{n}")})).await?;
        keys.push(body["key"].as_str().context("key")?.to_owned());
    }
    let sockets = 1000;
    let mut held = Vec::new();
    for n in 0..sockets {
        held.push(feed(&server, &keys[n % keys.len()], seen.clone(), false).await?);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let open = server.rss_mib();
    let (cpu0, t0) = (server.cpu_seconds(), Instant::now());
    drive(&server, &god, events, 50).await?;
    settle(&seen, (sockets * events) as u64).await;
    let cpu = (server.cpu_seconds() - cpu0) / t0.elapsed().as_secs_f64() * 100.0;
    let flowing = server.peak_rss_mib();
    let delivered = seen.frames.load(Ordering::Relaxed);
    for h in held {
        h.abort();
    }

    let row = |what: &str, ms: &[f64]| {
        format!(
            "| {what} | {} | {:.1} | {:.1} | {:.1} | p99 < 50 ms |",
            ms.len(),
            quantile(ms, 0.5),
            quantile(ms, 0.99),
            quantile(ms, 1.0)
        )
    };
    Ok([
        format!("### B12 — live sockets ({events} executions at 50 a second)"),
        String::new(),
        "| event committed → frame received (PostgreSQL, 4 sockets each) | frames | p50 ms | p99 ms | max ms | goal |"
            .into(),
        "|---|---|---|---|---|---|".into(),
        row("socket on the replica that wrote it", &same_ms),
        row("socket on another replica (NOTIFY)", &across_ms),
        String::new(),
        format!("| {sockets} sockets on one server (SQLite) | value | goal |"),
        "|---|---|---|".into(),
        format!("| RSS idle → {sockets} sockets open | {idle:.1} → {open:.1} MiB (+{:.1}) | < +100 MB |", open - idle),
        format!("| peak RSS while events flow | {flowing:.1} MiB (+{:.1} over idle) | < +100 MB |", flowing - idle),
        format!("| server CPU while events flow to all | {cpu:.0} % of one core | — |"),
        format!(
            "| frames delivered | {delivered} of {} ({:.0} a second) | all |",
            sockets * events,
            delivered as f64 / t0.elapsed().as_secs_f64()
        ),
    ]
    .join("\n"))
}
