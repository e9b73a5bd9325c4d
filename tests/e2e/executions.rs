//! Running workflows end to end through the real binary, on SQLite and PostgreSQL: the
//! documented CLI flow (scaffold, pack, upload, run, read every task's logs), retries and
//! skips, timeouts, cancel, retry, idempotent execute, roles and tenant isolation, and a new
//! package version beside a running execution. Several servers and kills are `replicas.rs`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{Server, bootstrap_key, cli, command, stderr, stdout};
use cloacina_testpg::tools::processes_with;

/// Runs the CLI in `work` against `server` with `key`.
fn run_cli(home: &Path, work: &Path, server: &str, key: &str, args: &[&str]) -> std::process::Output {
    let mut c = command(home);
    c.current_dir(work).args(args).env("CLOACINA_SERVER", server).env("CLOACINA_API_KEY", key);
    c.output().unwrap()
}

/// The steps of docs/packages.md's quick start, with the CLI alone.
fn documented_flow(home: &Path, server: &Server, writer: &str, reader: &str) {
    let work = home.join("work");
    std::fs::create_dir_all(&work).unwrap();
    let ok = |key: &str, args: &[&str]| {
        let out = run_cli(home, &work, &server.url, key, args);
        assert!(out.status.success(), "{args:?}: {} {}", stdout(&out), stderr(&out));
        stdout(&out)
    };
    ok(writer, &["package", "new", "nightly"]);
    ok(writer, &["package", "pack", "nightly"]);
    ok(writer, &["package", "upload", "nightly-0.1.0.cloacina"]);
    let waited = ok(writer, &["workflow", "run", "pipeline", "--context", r#"{"source": "crm"}"#, "--wait"]);
    assert!(waited.contains("Completed"), "{waited}");
    let id = ok(reader, &["-o", "id", "execution", "list", "--workflow", "pipeline", "--limit", "1"]);
    assert_eq!(id.len(), 36, "{id}");
    let status = ok(reader, &["execution", "status", &id]);
    assert!(status.contains("status     Completed"), "{status}");
    let extract = ok(reader, &["execution", "logs", &id, "extract"]);
    assert!(extract.contains("extracting from"), "{extract}");
    let transform = ok(reader, &["execution", "logs", &id, "transform"]);
    assert!(transform.contains("transforming 3 rows"), "{transform}");
    let load = ok(reader, &["execution", "logs", &id, "load"]);
    assert!(load.contains(r#""doubled":6"#) && load.contains(r#""source":"demo""#), "data flowed downstream: {load}");
    let tasks: Value = serde_json::from_str(&ok(reader, &["-o", "json", "execution", "tasks", &id])).unwrap();
    let done: Vec<&str> = tasks["tasks"].as_array().unwrap().iter().map(|t| t["status"].as_str().unwrap()).collect();
    assert_eq!(done, ["Completed"; 3], "{tasks}");
    let events = ok(reader, &["execution", "events", &id]);
    assert!(events.contains("execution_succeeded"), "{events}");
    // A read key may look but not run.
    let out = run_cli(home, &work, &server.url, reader, &["workflow", "run", "pipeline"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_documented_flow_runs_a_three_task_workflow_on_sqlite() {
    let home = tempfile::tempdir().unwrap();
    let server = Server::start(home.path(), &[], &[]);
    let god = bootstrap_key(home.path());
    let env = [("CLOACINA_SERVER", server.url.as_str()), ("CLOACINA_API_KEY", god.as_str())];
    let writer = stdout(&cli(home.path(), &["key", "create", "ci", "--role", "write", "--tenant", "public"], &env));
    let reader = stdout(&cli(home.path(), &["key", "create", "dash", "--role", "read", "--tenant", "public"], &env));
    documented_flow(home.path(), &server, &writer, &reader);
    let metrics = reqwest::get(format!("{}/metrics", server.url)).await.unwrap().text().await.unwrap();
    for line in [r#"cloacina_task_attempts_total{outcome="succeeded"} 3"#, r#"cloacina_worker_slots{state="free"} 4"#] {
        assert!(metrics.contains(line), "{line} missing from /metrics:\n{metrics}");
    }
    assert!(metrics.contains("cloacina_tasks_claimed_total 3"), "{metrics}");
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_documented_flow_runs_a_three_task_workflow_on_postgres() {
    let db = cloacina_testpg::TestPg::shared().database().await;
    let home = tempfile::tempdir().unwrap();
    let server = Server::start(home.path(), &["--database-url", &db.url, "--db-max-connections", "4"], &[]);
    let god = bootstrap_key(home.path());
    let env = [("CLOACINA_SERVER", server.url.as_str()), ("CLOACINA_API_KEY", god.as_str())];
    assert!(cli(home.path(), &["tenant", "create", "acme"], &env).status.success());
    let writer = stdout(&cli(home.path(), &["key", "create", "ci", "--role", "write", "--tenant", "acme"], &env));
    let reader = stdout(&cli(home.path(), &["key", "create", "dash", "--role", "read", "--tenant", "acme"], &env));
    documented_flow(home.path(), &server, &writer, &reader);
    server.stop();
}

/// A package folder with these workflows (TOML) and scripts, packed with the CLI.
pub(crate) fn pack(home: &Path, name: &str, version: &str, workflows: &str, scripts: &[(&str, &str)]) -> PathBuf {
    let dir = home.join(format!("src-{name}-{version}"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("package.toml"),
        format!("[package]\nname = \"{name}\"\nversion = \"{version}\"\n{workflows}"),
    )
    .unwrap();
    for (file, body) in scripts {
        std::fs::write(dir.join(file), body).unwrap();
    }
    let file = home.join(format!("{name}-{version}.cloacina"));
    let out = cli(home, &["package", "pack", dir.to_str().unwrap(), "--file", file.to_str().unwrap()], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    file
}

pub(crate) async fn upload(server: &Server, tenant: &str, key: &str, file: &Path) -> (u16, Value) {
    let form = reqwest::multipart::Form::new()
        .part("file", reqwest::multipart::Part::bytes(std::fs::read(file).unwrap()).file_name("p.cloacina"));
    let res = reqwest::Client::new()
        .post(format!("{}/v1/tenants/{tenant}/workflows", server.url))
        .bearer_auth(key)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

pub(crate) async fn execute(
    server: &Server,
    tenant: &str,
    key: &str,
    workflow: &str,
    body: Value,
    idem: Option<&str>,
) -> (u16, Value, bool) {
    let mut req = reqwest::Client::new()
        .post(format!("{}/v1/tenants/{tenant}/workflows/{workflow}/execute", server.url))
        .bearer_auth(key)
        .json(&body);
    if let Some(k) = idem {
        req = req.header("Idempotency-Key", k);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let replayed = res.headers().get("idempotent-replayed").is_some();
    (status, res.json().await.unwrap_or(Value::Null), replayed)
}

/// Polls until the execution has finished; returns it.
pub(crate) async fn finished(server: &Server, tenant: &str, key: &str, id: &str, within: Duration) -> Value {
    let start = Instant::now();
    loop {
        let (status, e) = server.get(&format!("/v1/tenants/{tenant}/executions/{id}"), Some(key)).await;
        assert_eq!(status, 200, "{e}");
        if ["Completed", "Failed", "Cancelled"].contains(&e["status"].as_str().unwrap_or("")) {
            return e;
        }
        assert!(start.elapsed() < within, "execution {id} still {} after {within:?}", e["status"]);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) async fn tasks(server: &Server, tenant: &str, key: &str, id: &str) -> BTreeMap<String, Value> {
    let (status, body) = server.get(&format!("/v1/tenants/{tenant}/executions/{id}/tasks"), Some(key)).await;
    assert_eq!(status, 200, "{body}");
    body["tasks"].as_array().unwrap().iter().map(|t| (t["task_name"].as_str().unwrap().to_owned(), t.clone())).collect()
}

const BEHAVIOURS: &str = r#"
[[workflow]]
name = "flaky"
[[workflow.task]]
id = "fail"
command = ["sh", "fail.sh"]
retries = 1
backoff = "fixed"
retry_delay = "200ms"
env = { FLAG = "@FLAG@" }
[[workflow.task]]
id = "after"
command = ["sh", "-c", "echo after ran"]
depends_on = ["fail"]

[[workflow]]
name = "sleepy"
[[workflow.task]]
id = "nap"
command = ["sh", "nap.sh"]
timeout = "1s"

[[workflow]]
name = "slow"
[[workflow.task]]
id = "wait"
command = ["sh", "nap.sh"]
timeout = "1m"
[[workflow.task]]
id = "never"
command = ["true"]
depends_on = ["wait"]

[[workflow]]
name = "chatty"
[[workflow.task]]
id = "talk"
command = ["sh", "-c", "echo line one; echo to stderr >&2; sleep 30"]
timeout = "1m"

[[workflow]]
name = "late"
[[workflow.task]]
id = "late"
command = ["sh", "-c", "echo before the timeout; sleep 30"]
timeout = "1s"
"#;

const FAIL_SH: &str =
    "echo \"attempt on $(date +%s%N)\"\nif [ ! -f \"$FLAG\" ]; then echo 'no flag yet' >&2; exit 3; fi\necho fixed\n";
pub(crate) const NAP_SH: &str = "echo $$ > \"$CLOACINA_CONTEXT_FILE.pid\"\nsleep 30\n";

/// The engine's behaviours over HTTP, for a write and a read key of `tenant`; `outsider` is
/// a key of another tenant (on SQLite, a god key asking about ids that do not exist).
async fn behaviours(home: &Path, server: &Server, tenant: &str, writer: &str, reader: &str) {
    // The task sees its package at /package; the test "fixes the cause" as an operator on the
    // host would, by adding the file to the unpacked package folder.
    let workflows = BEHAVIOURS.replace("@FLAG@", "/package/flag");
    let file = pack(home, "behaviours", "1.0.0", &workflows, &[("fail.sh", FAIL_SH), ("nap.sh", NAP_SH)]);
    let (status, body) = upload(server, tenant, reader, &file).await;
    assert_eq!(status, 403, "a read key may not upload: {body}");
    let (status, body) = upload(server, tenant, writer, &file).await;
    assert_eq!(status, 201, "{body}");

    // A read key may not execute.
    let (status, body, _) = execute(server, tenant, reader, "flaky", json!({}), None).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["code"], "forbidden");

    // Retried once, then failed; what depends on it is skipped.
    let (status, accepted, _) = execute(server, tenant, writer, "flaky", json!({"context": {"n": 1}}), None).await;
    assert_eq!(status, 202, "{accepted}");
    assert_eq!((accepted["workflow_name"].as_str(), accepted["tenant_id"].as_str()), (Some("flaky"), Some(tenant)));
    let id = accepted["execution_id"].as_str().unwrap().to_owned();
    let e = finished(server, tenant, reader, &id, Duration::from_secs(30)).await;
    assert_eq!(e["status"], "Failed", "{e}");
    assert_eq!(e["error"], "task 'fail' failed after 2 attempt(s): exited with status 3", "{e}");
    let t = tasks(server, tenant, reader, &id).await;
    assert_eq!((t["fail"]["status"].as_str(), t["fail"]["attempt"].as_u64()), (Some("Failed"), Some(2)));
    assert_eq!(t["after"]["status"], "Skipped");
    let (_, logs) = server.get(&format!("/v1/tenants/{tenant}/executions/{id}/tasks/fail/logs"), Some(reader)).await;
    let attempts = logs["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{logs}");
    assert!(attempts.iter().all(|a| a["stderr"] == "no flag yet\n"), "{logs}");
    let (status, _) = server.get(&format!("/v1/tenants/{tenant}/executions/{id}/tasks/nope/logs"), Some(reader)).await;
    assert_eq!(status, 404);

    // Retry after fixing the cause: the failed task and the skipped one run again.
    let (status, body) =
        server.call(Method::POST, &format!("/v1/tenants/{tenant}/executions/{id}/retry"), Some(reader), None).await;
    assert_eq!(status, 403, "a read key may not retry: {body}");
    let unpacked = find_dir(&home.join("tasks/packages"), "behaviours-1.0.0").expect("the package was unpacked");
    std::fs::write(unpacked.join("flag"), "fixed").unwrap();
    let (status, body) =
        server.call(Method::POST, &format!("/v1/tenants/{tenant}/executions/{id}/retry"), Some(writer), None).await;
    assert_eq!(status, 202, "{body}");
    let e = finished(server, tenant, reader, &id, Duration::from_secs(30)).await;
    assert_eq!((e["status"].as_str(), &e["error"]), (Some("Completed"), &Value::Null), "{e}");
    let (status, body) =
        server.call(Method::POST, &format!("/v1/tenants/{tenant}/executions/{id}/retry"), Some(writer), None).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("invalid_state")), "{body}");

    // Killed at its timeout.
    let started = Instant::now();
    let (_, accepted, _) = execute(server, tenant, writer, "sleepy", json!({}), None).await;
    let id = accepted["execution_id"].as_str().unwrap().to_owned();
    let e = finished(server, tenant, reader, &id, Duration::from_secs(20)).await;
    assert!(started.elapsed() < Duration::from_secs(20), "the 30 s sleep was cut short");
    assert_eq!(e["error"], "task 'nap' failed after 1 attempt(s): timed out after 1s", "{e}");

    // Cancelled while running: the attempt is stopped and what follows never runs.
    let (_, accepted, _) = execute(server, tenant, writer, "slow", json!({}), None).await;
    let id = accepted["execution_id"].as_str().unwrap().to_owned();
    let start = Instant::now();
    while tasks(server, tenant, reader, &id).await["wait"]["status"] != "Running" {
        assert!(start.elapsed() < Duration::from_secs(10), "the slow task never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, body) =
        server.call(Method::POST, &format!("/v1/tenants/{tenant}/executions/{id}/cancel"), Some(reader), None).await;
    assert_eq!(status, 403, "{body}");
    let (status, body) =
        server.call(Method::POST, &format!("/v1/tenants/{tenant}/executions/{id}/cancel"), Some(writer), None).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("Cancelled")), "{body}");
    let t = tasks(server, tenant, reader, &id).await;
    assert_eq!((t["wait"]["status"].as_str(), t["never"]["status"].as_str()), (Some("Cancelled"), Some("Cancelled")));
    let (status, body) =
        server.call(Method::POST, &format!("/v1/tenants/{tenant}/executions/{id}/cancel"), Some(writer), None).await;
    assert_eq!(status, 409, "{body}");

    // A running attempt's output is readable while it runs; cancelled, it keeps it.
    let (_, accepted, _) = execute(server, tenant, writer, "chatty", json!({}), None).await;
    let id = accepted["execution_id"].as_str().unwrap().to_owned();
    let logs = format!("/v1/tenants/{tenant}/executions/{id}/tasks/talk/logs");
    let attempt = until_log(server, &logs, reader, |a| a["stdout"] == "line one\n").await;
    assert_eq!(
        (attempt["stderr"].as_str(), attempt["ended"].as_bool()),
        (Some("to stderr\n"), Some(false)),
        "{attempt}"
    );
    assert_eq!(tasks(server, tenant, reader, &id).await["talk"]["status"], "Running");
    let (status, _) =
        server.call(Method::POST, &format!("/v1/tenants/{tenant}/executions/{id}/cancel"), Some(writer), None).await;
    assert_eq!(status, 200);
    let attempt = until_log(server, &logs, reader, |a| a["ended"] == true).await;
    assert_eq!((attempt["stdout"].as_str(), attempt["stderr"].as_str()), (Some("line one\n"), Some("to stderr\n")));
    // Timed out, it keeps it too.
    let (_, accepted, _) = execute(server, tenant, writer, "late", json!({}), None).await;
    let id = accepted["execution_id"].as_str().unwrap().to_owned();
    let e = finished(server, tenant, reader, &id, Duration::from_secs(20)).await;
    assert_eq!(e["error"], "task 'late' failed after 1 attempt(s): timed out after 1s", "{e}");
    let (_, logs) = server.get(&format!("/v1/tenants/{tenant}/executions/{id}/tasks/late/logs"), Some(reader)).await;
    assert_eq!(logs["attempts"][0]["stdout"], "before the timeout\n", "{logs}");
    assert_eq!(logs["attempts"][0]["ended"], true, "{logs}");

    // Idempotent execute.
    let (s1, first, r1) = execute(server, tenant, writer, "flaky", json!({}), Some("deploy-42")).await;
    let (s2, second, r2) =
        execute(server, tenant, writer, "flaky", json!({"context": {"other": 1}}), Some("deploy-42")).await;
    assert_eq!((s1, s2, r1, r2), (202, 202, false, true), "{first} {second}");
    assert_eq!(first["execution_id"], second["execution_id"]);
    let (status, body, _) = execute(server, tenant, writer, "sleepy", json!({}), Some("deploy-42")).await;
    assert_eq!(
        (status, body["code"].as_str(), body["field"].as_str()),
        (409, Some("idempotency_key_reused"), Some("Idempotency-Key"))
    );
    let (status, body) =
        server.get(&format!("/v1/tenants/{tenant}/executions?workflow=flaky&limit=100"), Some(reader)).await;
    assert_eq!((status, body["total"].as_u64()), (200, Some(2)), "the repeat made no second execution: {body}");

    // Bad input names the field; a paused workflow refuses.
    let (status, body, _) = execute(server, tenant, writer, "flaky", json!({"context": [1]}), None).await;
    assert_eq!((status, body["field"].as_str()), (400, Some("context")), "{body}");
    let (status, body) = server.get(&format!("/v1/tenants/{tenant}/executions?status=bogus"), Some(reader)).await;
    assert_eq!((status, body["field"].as_str()), (400, Some("status")), "{body}");
    let (status, _, _) = execute(server, tenant, writer, "missing", json!({}), None).await;
    assert_eq!(status, 404);
    server.call(Method::POST, &format!("/v1/tenants/{tenant}/workflows/flaky/pause"), Some(writer), None).await;
    let (status, body, _) = execute(server, tenant, writer, "flaky", json!({}), None).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("workflow_paused")), "{body}");
    server.call(Method::POST, &format!("/v1/tenants/{tenant}/workflows/flaky/resume"), Some(writer), None).await;

    // Unknown or malformed ids answer 404.
    for id in ["6f9619ff-8b86-d011-b42d-00c04fc964ff", "not-a-uuid"] {
        let (status, body) = server.get(&format!("/v1/tenants/{tenant}/executions/{id}"), Some(reader)).await;
        assert_eq!((status, body["code"].as_str()), (404, Some("execution_not_found")), "{body}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn retries_timeouts_cancel_retry_and_idempotency_on_sqlite() {
    let home = tempfile::tempdir().unwrap();
    let server = Server::start(home.path(), &["--task-lease", "3"], &[]);
    let god = bootstrap_key(home.path());
    let env = [("CLOACINA_SERVER", server.url.as_str()), ("CLOACINA_API_KEY", god.as_str())];
    let writer = stdout(&cli(home.path(), &["key", "create", "ci", "--role", "write", "--tenant", "public"], &env));
    let reader = stdout(&cli(home.path(), &["key", "create", "dash", "--role", "read", "--tenant", "public"], &env));
    behaviours(home.path(), &server, "public", &writer, &reader).await;
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn retries_timeouts_cancel_retry_idempotency_and_isolation_on_postgres() {
    let db = cloacina_testpg::TestPg::shared().database().await;
    let home = tempfile::tempdir().unwrap();
    let server =
        Server::start(home.path(), &["--database-url", &db.url, "--db-max-connections", "6", "--task-lease", "3"], &[]);
    let god = bootstrap_key(home.path());
    let env = [("CLOACINA_SERVER", server.url.as_str()), ("CLOACINA_API_KEY", god.as_str())];
    for t in ["acme", "globex"] {
        assert!(cli(home.path(), &["tenant", "create", t], &env).status.success());
    }
    let writer = stdout(&cli(home.path(), &["key", "create", "ci", "--role", "write", "--tenant", "acme"], &env));
    let reader = stdout(&cli(home.path(), &["key", "create", "dash", "--role", "read", "--tenant", "acme"], &env));
    let globex = stdout(&cli(home.path(), &["key", "create", "g", "--role", "admin", "--tenant", "globex"], &env));
    behaviours(home.path(), &server, "acme", &writer, &reader).await;

    // Another tenant's execution ids: 404 in its own tenant's paths, 403 in acme's.
    let (_, page) = server.get("/v1/tenants/acme/executions?limit=500", Some(&reader)).await;
    let ids: Vec<String> =
        page["items"].as_array().unwrap().iter().map(|e| e["execution_id"].as_str().unwrap().to_owned()).collect();
    assert!(!ids.is_empty());
    for id in &ids {
        for path in [
            format!("/v1/tenants/globex/executions/{id}"),
            format!("/v1/tenants/globex/executions/{id}/tasks"),
            format!("/v1/tenants/globex/executions/{id}/events"),
        ] {
            let (status, body) = server.get(&path, Some(&globex)).await;
            assert_eq!(status, 404, "{path}: {body}");
        }
        let (status, _) =
            server.call(Method::POST, &format!("/v1/tenants/globex/executions/{id}/cancel"), Some(&globex), None).await;
        assert_eq!(status, 404);
        let (status, _) = server.get(&format!("/v1/tenants/acme/executions/{id}"), Some(&globex)).await;
        assert_eq!(status, 403);
        let (status, _) = server.get(&format!("/v1/tenants/globex/executions/{id}"), Some(&god)).await;
        assert_eq!(status, 404, "not even a god key finds acme's execution under globex");
    }
    let (_, page) = server.get("/v1/tenants/globex/executions", Some(&globex)).await;
    assert_eq!(page["total"], 0, "{page}");
    server.stop();
}

/// The first folder named `name` under `root`.
pub(crate) fn find_dir(root: &Path, name: &str) -> Option<PathBuf> {
    for entry in std::fs::read_dir(root).ok()?.filter_map(Result::ok) {
        let path = entry.path();
        if path.is_dir() {
            if entry.file_name() == name {
                return Some(path);
            }
            if let Some(found) = find_dir(&path, name) {
                return Some(found);
            }
        }
    }
    None
}

/// Processes holding `marker` left after a bounded wait (a killed sandbox takes a moment to
/// be torn down).
/// Polls a task's logs until its first attempt satisfies `done` (10 s at most); returns it.
async fn until_log(server: &Server, path: &str, key: &str, done: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        let (status, logs) = server.get(path, Some(key)).await;
        assert_eq!(status, 200, "{logs}");
        let first = &logs["attempts"][0];
        if done(first) {
            return first.clone();
        }
        assert!(start.elapsed() < Duration::from_secs(10), "the log never got there: {logs}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) async fn processes_left(marker: &str) -> Vec<String> {
    for _ in 0..100 {
        if processes_with(marker).is_empty() {
            return Vec::new();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    processes_with(marker)
}

/// A workflow of three tasks, each printing `<n> <task>` after taking `nap`, and a `hold`
/// workflow whose task sleeps for ten minutes with `marker` in its command line.
#[tokio::test(flavor = "multi_thread")]
async fn a_new_version_runs_new_executions_while_a_running_one_keeps_its_own() {
    let home = tempfile::tempdir().unwrap();
    let server = Server::start(home.path(), &[], &[]);
    let god = bootstrap_key(home.path());
    let workflows = "[[workflow]]\nname = \"w\"\n[[workflow.task]]\nid = \"say\"\ncommand = [\"sh\", \"say.sh\"]\n";
    let old = pack(home.path(), "ver", "1.0.0", workflows, &[("say.sh", "sleep 1\necho version one\n")]);
    let new = pack(home.path(), "ver", "1.1.0", workflows, &[("say.sh", "echo version two\n")]);
    assert_eq!(upload(&server, "public", &god, &old).await.0, 201);
    let (_, first, _) = execute(&server, "public", &god, "w", json!({}), None).await;
    let first = first["execution_id"].as_str().unwrap().to_owned();
    assert_eq!(upload(&server, "public", &god, &new).await.0, 201);
    let (_, second, _) = execute(&server, "public", &god, "w", json!({}), None).await;
    assert_eq!(second["package_version"], "1.1.0");
    let second = second["execution_id"].as_str().unwrap().to_owned();
    for (id, version, said) in [(&first, "1.0.0", "version one\n"), (&second, "1.1.0", "version two\n")] {
        let e = finished(&server, "public", &god, id, Duration::from_secs(20)).await;
        assert_eq!((e["status"].as_str(), e["package_version"].as_str()), (Some("Completed"), Some(version)), "{e}");
        let (_, logs) = server.get(&format!("/v1/tenants/public/executions/{id}/tasks/say/logs"), Some(&god)).await;
        assert_eq!(logs["attempts"][0]["stdout"], said, "{logs}");
    }
    server.stop();
}
