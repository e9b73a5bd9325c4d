//! The audit trail through the real binary: each audited action of the API leaves exactly one
//! row in its chain, no key appears in any row, `audit verify` passes on the chain as written
//! and names the row edited behind the server's back; failed authentications become one row
//! per address a minute. On SQLite and on PostgreSQL.

use std::collections::BTreeMap;
use std::path::Path;

use reqwest::Method;
use serde_json::{Value, json};

use crate::executions::{pack, upload};
use crate::harness::{Server, bootstrap_key, cli, stderr, stdout};

const WORKFLOWS: &str = r#"
[[workflow]]
name = "report"
[[workflow.task]]
id = "one"
command = ["true"]
[[workflow.trigger]]
name = "nightly"
cron = "0 30 2 * * *"
"#;

fn json_of(out: &std::process::Output) -> Value {
    assert!(out.status.success(), "{}", stderr(out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(out)))
}

/// How many rows of each action a listing holds.
fn counts(listed: &Value) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for row in listed["items"].as_array().unwrap() {
        *counts.entry(row["action"].as_str().unwrap().to_owned()).or_insert(0) += 1;
    }
    counts
}

/// Every audited action of a tenant, once each, through the CLI and HTTP; returns the keys
/// minted on the way (the canaries).
async fn every_action(home: &Path, server: &Server, god: &str, tenant: &str) -> Vec<String> {
    let env = [("CLOACINA_SERVER", server.url.as_str()), ("CLOACINA_API_KEY", god), ("CLOACINA_TENANT", tenant)];
    let run = |args: &[&str]| {
        let out = cli(home, args, &env);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        stdout(&out)
    };
    let admin = run(&["key", "create", "auditor", "--role", "admin", "--tenant", tenant]);
    let doomed = run(&["key", "create", "doomed", "--role", "read", "--tenant", tenant]);
    run(&["key", "revoke", "doomed"]);
    let v1 = pack(home, "audited", "1.0.0", WORKFLOWS, &[]);
    assert_eq!(upload(server, tenant, god, &v1).await.0, 201);
    let v2 = pack(home, "audited", "2.0.0", WORKFLOWS, &[]);
    assert_eq!(upload(server, tenant, god, &v2).await.0, 201);
    assert_eq!(upload(server, tenant, god, &v2).await.0, 200, "the same bytes again: no change, no row");
    run(&["workflow", "pause", "report"]);
    run(&["workflow", "resume", "report"]);
    run(&["trigger", "pause", "nightly"]);
    run(&["trigger", "resume", "nightly"]);
    let fired = run(&["trigger", "fire", "nightly", "-o", "id"]);
    run(&["execution", "cancel", &fired]);
    let executed = run(&["workflow", "run", "report", "-o", "id"]);
    run(&["execution", "cancel", &executed]);
    run(&["execution", "retry", &executed]);
    run(&["execution", "cancel", &executed]);
    run(&["package", "delete", "audited@1.0.0"]);
    let (status, body) = server
        .call(Method::PATCH, &format!("/v1/tenants/{tenant}"), Some(god), Some(json!({"rate_limit_per_key": 500})))
        .await;
    assert_eq!(status, 200, "{body}");
    vec![admin, doomed]
}

const TENANT_ACTIONS: &[(&str, usize)] = &[
    ("execution.cancel", 3),
    ("execution.retry", 1),
    ("key.create", 2),
    ("key.revoke", 1),
    ("package.delete", 1),
    ("package.upload", 2),
    ("trigger.fire", 1),
    ("trigger.pause", 1),
    ("trigger.resume", 1),
    ("workflow.execute", 1),
    ("workflow.pause", 1),
    ("workflow.resume", 1),
];

/// Lists and verifies the tenant's chain as its admin, and the control chain as the god key.
fn check_chains(home: &Path, server: &Server, god: &str, admin: &str, tenant: &str, canaries: &[String]) {
    let as_admin = [("CLOACINA_SERVER", server.url.as_str()), ("CLOACINA_API_KEY", admin)];
    let listed = json_of(&cli(home, &["audit", "list", "--limit", "1000", "-o", "json"], &as_admin));
    let expected: BTreeMap<String, usize> = TENANT_ACTIONS.iter().map(|(a, n)| ((*a).to_owned(), *n)).collect();
    assert_eq!(counts(&listed), expected, "one row per action that happened: {listed}");
    let first = listed["items"].as_array().unwrap().last().unwrap();
    assert_eq!(first["actor"]["key_name"], "bootstrap-admin", "{first}");
    assert_eq!(first["client"], "127.0.0.1");
    assert!(first["request_id"].as_str().is_some_and(|r| !r.is_empty()), "{first}");
    let upload = listed["items"].as_array().unwrap().iter().find(|r| r["action"] == "package.upload").unwrap();
    assert!(upload["detail"]["content_hash"].is_string(), "{upload}");
    let out = cli(home, &["audit", "verify"], &as_admin);
    assert!(out.status.success(), "{}", stderr(&out));
    let said = stdout(&out);
    println!("audit verify ({tenant}): {said}");
    assert!(said.contains(&format!("the audit chain of tenant '{tenant}': 16 rows verified")), "{said}");
    // The control chain: the bootstrap key, the tenant update (and on PostgreSQL the tenant).
    let as_god = [("CLOACINA_SERVER", server.url.as_str()), ("CLOACINA_API_KEY", god)];
    let control = json_of(&cli(home, &["audit", "list", "-o", "json"], &as_god));
    let control_counts = counts(&control);
    assert_eq!(control_counts.get("tenant.update"), Some(&1), "{control}");
    assert_eq!(control_counts.get("key.create"), Some(&1), "the bootstrap key: {control}");
    let out = cli(home, &["audit", "verify"], &as_god);
    assert!(out.status.success() && stdout(&out).contains("the deployment's control chain"), "{}", stderr(&out));
    // A tenant admin does not read the control chain, nor another tenant's.
    let refused = cli(home, &["audit", "list", "--tenant", "other-tenant"], &as_admin);
    assert_eq!(refused.status.code(), Some(4), "{}", stderr(&refused));
    // No key, minted or supplied, in any row of either chain.
    let text = format!("{listed}{control}");
    for canary in canaries.iter().map(|c| c.as_str()).chain([god]) {
        assert!(!text.contains(canary), "a key appears in the audit trail");
    }
    assert!(!text.contains("clk_"), "no key material at all");
}

/// Failed authentications from one address: one `auth.failures` row for the minute, written
/// at the latest when the server stops.
async fn failed_logins(server: &Server) {
    for n in 0..5 {
        let (status, _) = server.get("/v1/auth/whoami", Some(&format!("clk_not-a-key-{n}"))).await;
        assert_eq!(status, 401);
    }
}

fn burst_row(home: &Path, server: &Server, god: &str) -> Value {
    let as_god = [("CLOACINA_SERVER", server.url.as_str()), ("CLOACINA_API_KEY", god)];
    let listed = json_of(&cli(home, &["audit", "list", "--action", "auth.failures", "-o", "json"], &as_god));
    assert_eq!(listed["items"].as_array().unwrap().len(), 1, "{listed}");
    listed["items"][0].clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_action_is_one_row_and_an_edit_is_found_by_audit_verify_on_sqlite() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let server = Server::start(h, &["--workers", "0"], &[]);
    let god = bootstrap_key(h);
    let canaries = every_action(h, &server, &god, "public").await;
    check_chains(h, &server, &god, &canaries[0], "public", &canaries);
    failed_logins(&server).await;
    server.stop();

    // Row 3 of the tenant's chain edited in the file, its guard dropped first.
    let db = rusqlite::Connection::open(h.join(".cloacina/cloacina.db")).unwrap();
    db.execute_batch(
        "DROP TRIGGER audit_log_no_update; UPDATE audit_log SET target = 'forged' WHERE chain = 'public' AND seq = 3;",
    )
    .unwrap();
    drop(db);
    let server = Server::start(h, &["--workers", "0"], &[]);
    let burst = burst_row(h, &server, &god);
    assert_eq!((burst["outcome"].as_str(), burst["detail"]["count"].as_u64()), (Some("denied"), Some(5)), "{burst}");
    assert_eq!(burst["client"], "127.0.0.1");
    let as_admin = [("CLOACINA_SERVER", server.url.as_str()), ("CLOACINA_API_KEY", canaries[0].as_str())];
    let out = cli(h, &["audit", "verify"], &as_admin);
    println!("after the edit: exit {:?}: {}", out.status.code(), stderr(&out));
    assert_eq!(out.status.code(), Some(8));
    assert!(stderr(&out).contains("row 3: its contents do not match its hash"), "{}", stderr(&out));
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn every_action_is_one_row_and_a_deleted_row_is_found_by_audit_verify_on_postgres() {
    let db = cloacina_testpg::TestPg::shared().database().await;
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let args = ["--database-url", &db.url, "--db-max-connections", "4", "--workers", "0"];
    let server = Server::start(h, &args, &[]);
    let god = bootstrap_key(h);
    let env = [("CLOACINA_SERVER", server.url.as_str()), ("CLOACINA_API_KEY", god.as_str())];
    assert!(cli(h, &["tenant", "create", "acme"], &env).status.success());
    let canaries = every_action(h, &server, &god, "acme").await;
    check_chains(h, &server, &god, &canaries[0], "acme", &canaries);
    let control = json_of(&cli(h, &["audit", "list", "--action", "tenant.create", "-o", "json"], &env));
    assert_eq!(control["items"][0]["target"], "acme", "{control}");
    failed_logins(&server).await;
    server.stop();

    // Row 5 of acme's chain deleted by a superuser, the table's triggers off for it.
    let mut admin = cloacina_testpg::TestPg::shared().admin_of(&db.name).await;
    sqlx::raw_sql(
        "ALTER TABLE tenant_acme.audit_log DISABLE TRIGGER USER;
         DELETE FROM tenant_acme.audit_log WHERE seq = 5;
         ALTER TABLE tenant_acme.audit_log ENABLE TRIGGER USER;",
    )
    .execute(&mut admin)
    .await
    .unwrap();
    let server = Server::start(h, &args, &[]);
    let burst = burst_row(h, &server, &god);
    assert_eq!(burst["detail"]["count"].as_u64(), Some(5), "{burst}");
    let out = cli(
        h,
        &["audit", "verify", "--tenant", "acme"],
        &[("CLOACINA_SERVER", &server.url), ("CLOACINA_API_KEY", &god)],
    );
    println!("after the delete: exit {:?}: {}", out.status.code(), stderr(&out));
    assert_eq!(out.status.code(), Some(8));
    assert!(stderr(&out).contains("rows 5 to 5 are missing"), "{}", stderr(&out));
    server.stop();
}
