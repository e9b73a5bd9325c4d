//! A tenant's own task network, set by a god key through the CLI: tasks of a tenant set to
//! `host` reach a port on the host's loopback, tasks of a tenant left to the deployment's
//! `none` do not, and `default` gives a tenant back the deployment's setting. Tenant keys
//! cannot change it.

use std::path::Path;
use std::time::Duration;

use serde_json::json;

use crate::executions::{execute, finished, pack, upload};
use crate::harness::{Server, bootstrap_key, cli, stderr, stdout};

/// A task that tries to open a TCP connection to the port in its context.
const REACH_SH: &str = r#"
port=$(sed -n 's/.*"port":\([0-9]*\).*/\1/p' "$CLOACINA_CONTEXT_FILE")
if exec 3<>"/dev/tcp/127.0.0.1/$port"; then echo "reached $port"; else echo "unreachable $port"; fi
"#;

/// Uploads the probe to `tenant`.
async fn install(home: &Path, server: &Server, tenant: &str, key: &str) {
    let package = pack(
        home,
        &format!("reach-{tenant}"),
        "1.0.0",
        "[[workflow]]\nname = \"reach\"\n[[workflow.task]]\nid = \"reach\"\ncommand = [\"bash\", \"reach.sh\"]\n",
        &[("reach.sh", REACH_SH)],
    );
    let (status, body) = upload(server, tenant, key, &package).await;
    assert_eq!(status, 201, "{body}");
}

/// Runs the probe; returns what it printed.
async fn reach(server: &Server, tenant: &str, key: &str, port: u16) -> String {
    let (status, accepted, _) = execute(server, tenant, key, "reach", json!({"context": {"port": port}}), None).await;
    assert_eq!(status, 202, "{accepted}");
    let id = accepted["execution_id"].as_str().unwrap().to_owned();
    let e = finished(server, tenant, key, &id, Duration::from_secs(60)).await;
    assert_eq!(e["status"], "Completed", "{e}");
    let (_, logs) = server.get(&format!("/v1/tenants/{tenant}/executions/{id}/tasks/reach/logs"), Some(key)).await;
    logs["attempts"][0]["stdout"].as_str().unwrap_or_default().trim().to_owned()
}

fn update(home: &Path, env: &[(&str, &str)], tenant: &str, network: &str) -> String {
    let out = cli(home, &["tenant", "update", tenant, "--task-network", network], env);
    assert!(out.status.success(), "tenant update {tenant} {network}: {}", stderr(&out));
    stdout(&out)
}

#[tokio::test(flavor = "multi_thread")]
async fn on_sqlite_a_god_key_gives_the_tenant_the_hosts_network_and_takes_it_back() {
    let home = tempfile::tempdir().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = Server::start(home.path(), &[], &[]);
    let god = bootstrap_key(home.path());
    let env = [("CLOACINA_SERVER", server.url.as_str()), ("CLOACINA_API_KEY", god.as_str())];
    let admin = stdout(&cli(home.path(), &["key", "create", "adm", "--role", "admin", "--tenant", "public"], &env));
    install(home.path(), &server, "public", &admin).await;

    assert_eq!(reach(&server, "public", &admin, port).await, format!("unreachable {port}"));
    let refused = cli(
        home.path(),
        &["tenant", "update", "public", "--task-network", "host"],
        &[("CLOACINA_SERVER", server.url.as_str()), ("CLOACINA_API_KEY", admin.as_str())],
    );
    assert_eq!(refused.status.code(), Some(4), "a tenant admin is refused: {}", stderr(&refused));
    assert!(stderr(&refused).contains("403"), "{}", stderr(&refused));

    assert_eq!(update(home.path(), &env, "public", "host"), "tenant 'public': tasks get the host network");
    let shown = stdout(&cli(home.path(), &["--output", "json", "tenant", "get", "public"], &env));
    assert_eq!(serde_json::from_str::<serde_json::Value>(&shown).unwrap()["task_network"], "host", "{shown}");
    assert_eq!(reach(&server, "public", &admin, port).await, format!("reached {port}"));

    assert_eq!(
        update(home.path(), &env, "public", "default"),
        "tenant 'public': tasks get the servers' default network"
    );
    assert_eq!(reach(&server, "public", &admin, port).await, format!("unreachable {port}"));
    let nothing = cli(home.path(), &["tenant", "update", "public"], &env);
    assert_eq!(nothing.status.code(), Some(1), "{}", stderr(&nothing));
    assert!(stderr(&nothing).contains("--task-network"), "{}", stderr(&nothing));
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn on_postgres_each_tenant_gets_its_own_network_whatever_the_other_has() {
    let db = cloacina_testpg::TestPg::shared().database().await;
    let home = tempfile::tempdir().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = Server::start(home.path(), &["--database-url", &db.url, "--db-max-connections", "4"], &[]);
    let god = bootstrap_key(home.path());
    let env = [("CLOACINA_SERVER", server.url.as_str()), ("CLOACINA_API_KEY", god.as_str())];
    let mut keys = Vec::new();
    for t in ["acme", "globex"] {
        assert!(cli(home.path(), &["tenant", "create", t], &env).status.success());
        let key = stdout(&cli(home.path(), &["key", "create", "w", "--role", "write", "--tenant", t], &env));
        install(home.path(), &server, t, &key).await;
        keys.push(key);
    }
    update(home.path(), &env, "acme", "host");
    let listed = stdout(&cli(home.path(), &["tenant", "list"], &env));
    assert!(listed.lines().any(|l| l.starts_with("acme") && l.contains(" host ")), "{listed}");
    assert_eq!(reach(&server, "acme", &keys[0], port).await, format!("reached {port}"));
    assert_eq!(reach(&server, "globex", &keys[1], port).await, format!("unreachable {port}"));
    update(home.path(), &env, "acme", "none");
    assert_eq!(reach(&server, "acme", &keys[0], port).await, format!("unreachable {port}"));
    server.stop();
}
