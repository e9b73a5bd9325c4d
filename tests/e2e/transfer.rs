//! A tenant moved whole between two deployments: `tenant export` on one, `tenant import` on
//! the other, then an export of the copy equal to the original's row for row; its audit chain
//! verifies there, its package runs there; keys are not carried (minted anew). An export cut
//! short, or a name taken, imports nothing.

use std::path::Path;
use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::executions::{execute, finished, pack, upload};
use crate::harness::{Server, bootstrap_key, cli, stderr, stdout};

/// The rows of an export (no header, no end line, no keys' metadata).
fn rows(file: &Path) -> Vec<String> {
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("{\"table\":") && !l.starts_with("{\"table\":\"api_keys\""))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_exported_from_one_deployment_and_imported_into_another_is_the_same_tenant() {
    let (db_a, db_b) =
        (cloacina_testpg::TestPg::shared().database().await, cloacina_testpg::TestPg::shared().database().await);
    let (home_a, home_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Server::start(home_a.path(), &["--database-url", &db_a.url, "--db-max-connections", "4"], &[]);
    let b = Server::start(home_b.path(), &["--database-url", &db_b.url, "--db-max-connections", "4"], &[]);
    let (god_a, god_b) = (bootstrap_key(home_a.path()), bootstrap_key(home_b.path()));
    let h = home_a.path();
    let on_a = [("CLOACINA_SERVER", a.url.as_str()), ("CLOACINA_API_KEY", god_a.as_str())];
    let on_b = [("CLOACINA_SERVER", b.url.as_str()), ("CLOACINA_API_KEY", god_b.as_str())];
    let ok = |out: std::process::Output| {
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
    };
    ok(cli(h, &["tenant", "create", "acme", "--description", "moving house"], &on_a));
    ok(cli(h, &["tenant", "update", "acme", "--task-network", "host"], &on_a));
    ok(cli(h, &["key", "create", "acme-ci", "--role", "write", "--tenant", "acme"], &on_a));
    let workflows = "[[workflow]]\nname = \"moved\"\n[[workflow.task]]\nid = \"a\"\ncommand = [\"sh\", \"a.sh\"]\n\
         [[workflow.task]]\nid = \"b\"\ncommand = [\"true\"]\ndepends_on = [\"a\"]\n\
         [[workflow.trigger]]\nname = \"nightly\"\ncron = \"0 3 * * *\"\n";
    let file = pack(
        h,
        "moved",
        "1.0.0",
        workflows,
        &[("a.sh", "echo moving along\necho '{\"n\": 1}' > \"$CLOACINA_OUTPUT_FILE\"\n")],
    );
    assert_eq!(upload(&a, "acme", &god_a, &file).await.0, 201);
    let (_, accepted, _) = execute(&a, "acme", &god_a, "moved", json!({"context": {"from": "a"}}), None).await;
    let id = accepted["execution_id"].as_str().unwrap().to_owned();
    assert_eq!(finished(&a, "acme", &god_a, &id, Duration::from_secs(60)).await["status"], "Completed");
    ok(cli(h, &["trigger", "pause", "nightly", "--tenant", "acme"], &on_a));

    let export = h.join("acme.export");
    println!("{}", ok(cli(h, &["tenant", "export", "acme", "-f", export.to_str().unwrap()], &on_a)));
    let original = rows(&export);
    let tables: std::collections::BTreeSet<String> =
        original.iter().filter_map(|l| l.split('"').nth(3).map(str::to_owned)).collect();
    println!("exported {} rows of {tables:?}", original.len());
    for t in [
        "packages",
        "package_chunks",
        "workflows",
        "triggers",
        "executions",
        "execution_tasks",
        "execution_events",
        "task_logs",
        "audit_log",
    ] {
        assert!(tables.contains(t), "{t} missing from the export");
    }
    let text = std::fs::read_to_string(&export).unwrap();
    assert!(text.contains(r#""table":"api_keys""#) && text.contains("acme-ci"), "keys' metadata");
    assert!(!text.contains("key_hash") && !text.contains("clk_"), "never a key or its hash");

    let imported = cli(h, &["tenant", "import", export.to_str().unwrap()], &on_b);
    assert!(imported.status.success(), "{}\nserver B: {}", stderr(&imported), b.stderr());
    let imported = stdout(&imported);
    println!("{imported}");
    assert!(imported.contains(&format!("{} rows", original.len())), "{imported}");
    // The registry row as it was; only the schema's role is the new deployment's own.
    let ((_, was), (_, is)) =
        (a.get("/v1/tenants/acme", Some(&god_a)).await, b.get("/v1/tenants/acme", Some(&god_b)).await);
    for field in ["name", "schema_name", "description", "created_at", "task_network", "rate_limit_per_key"] {
        assert_eq!(was[field], is[field], "{field}: {was} / {is}");
    }
    assert_eq!(is["task_network"], "host");
    let again = h.join("again.export");
    ok(cli(h, &["tenant", "export", "acme", "-f", again.to_str().unwrap()], &on_b));
    assert_eq!(rows(&again), original, "the copy exports the same rows");
    let verified = ok(cli(h, &["audit", "verify", "--tenant", "acme"], &on_b));
    println!("on the copy: {verified}");
    assert!(verified.contains("rows verified"));
    // The copy works: the package runs there, the paused trigger stays paused.
    let (_, accepted, _) = execute(&b, "acme", &god_b, "moved", json!({}), None).await;
    let id = accepted["execution_id"].as_str().unwrap().to_owned();
    assert_eq!(finished(&b, "acme", &god_b, &id, Duration::from_secs(60)).await["status"], "Completed");
    let (_, trigger) = b.get("/v1/tenants/acme/triggers/nightly", Some(&god_b)).await;
    assert_eq!(trigger["schedule"]["paused"], true, "{trigger}");

    // The name taken: nothing changes. An export cut short: nothing is made.
    let taken = cli(h, &["tenant", "import", export.to_str().unwrap()], &on_b);
    assert_eq!(taken.status.code(), Some(1), "{}", stderr(&taken));
    let cut = h.join("cut.export");
    let lines: Vec<&str> = text.lines().collect();
    std::fs::write(&cut, lines[..lines.len() / 2].join("\n")).unwrap();
    let refused = cli(h, &["tenant", "import", cut.to_str().unwrap(), "--name", "acme-cut"], &on_b);
    println!("a cut export: {}", stderr(&refused).trim());
    assert_eq!(refused.status.code(), Some(1));
    assert!(stderr(&refused).contains("cut off"), "{}", stderr(&refused));
    assert_eq!(b.call(Method::GET, "/v1/tenants/acme-cut", Some(&god_b), None).await.0, 404, "all or nothing");
    let (_, audit) = b.get("/v1/audit?action=tenant.import", Some(&god_b)).await;
    assert_eq!(audit["total"], 1, "one import happened: {audit}");
    a.stop();
    b.stop();
}
