//! The seed guides' shell commands, run as written with `sh`, `curl`, `jq` and `sqlite3`
//! (only the server address is the test's own).

use serde_json::{Value, json};

use crate::harness::{Server, shell, stderr, stdout};

fn run(home: &std::path::Path, script: &str, env: &[(&str, &str)]) -> String {
    let out = shell(home, script, env);
    assert!(out.status.success(), "`{script}` failed: {}", stderr(&out));
    stdout(&out)
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn seed_001_and_the_seed_002_sqlite_recovery_as_written() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let server = Server::start(h, &[], &[]);
    let url = server.url.clone();
    let env = [("URL", url.as_str())];

    let key = run(h, "cat ~/.cloacina/bootstrap-key", &env);
    assert!(key.starts_with("clk_"));
    let created = json(&run(
        h,
        r#"curl -s -X POST $URL/auth/keys \
  -H "Authorization: Bearer $(cat ~/.cloacina/bootstrap-key)" \
  -H "Content-Type: application/json" \
  -d '{"name": "ci-deploy"}' | jq"#,
        &env,
    ));
    assert_eq!((created["name"].clone(), created["permissions"].clone()), (json!("ci-deploy"), json!("admin")));
    assert!(
        created["key"].as_str().unwrap().starts_with("clk_")
            && created["id"].is_string()
            && created["created_at"].is_string()
    );
    assert_eq!(json(&run(h, "curl -s $URL/health | jq", &env)), json!({"status": "ok"}));
    assert_eq!(json(&run(h, "curl -s $URL/ready | jq", &env)), json!({"status": "ready"}));

    let api_key = created["key"].as_str().unwrap().to_owned();
    let env = [("URL", url.as_str()), ("API_KEY", api_key.as_str())];
    let listed = json(&run(h, r#"curl -s $URL/auth/keys -H "Authorization: Bearer $API_KEY" | jq"#, &env));
    assert_eq!(listed["items"].as_array().unwrap().len(), 2);
    let bootstrap_id = listed["items"][0]["id"].as_str().unwrap().to_owned();
    let revoked = json(&run(
        h,
        &format!(r#"curl -s -X DELETE $URL/auth/keys/{bootstrap_id} -H "Authorization: Bearer $API_KEY" | jq"#),
        &env,
    ));
    assert_eq!(revoked["status"], "revoked");
    let refused = json(&run(
        h,
        r#"curl -s $URL/auth/keys -H "Authorization: Bearer $(cat ~/.cloacina/bootstrap-key)" | jq"#,
        &env,
    ));
    assert_eq!(refused["code"], "invalid_api_key", "revoked keys are rejected immediately");

    // Seed 002's recovery on SQLite: stop, revoke every admin key in a plain sqlite3 session, restart.
    server.stop();
    run(h, r#"sqlite3 ~/.cloacina/cloacina.db "UPDATE api_keys SET revoked = 1 WHERE is_admin = 1;""#, &env);
    let server = Server::start(h, &[], &[]);
    let env = [("URL", server.url.as_str())];
    let me = json(&run(
        h,
        r#"curl -s $URL/v1/auth/whoami -H "Authorization: Bearer $(cat ~/.cloacina/bootstrap-key)""#,
        &env,
    ));
    assert_eq!(me["is_admin"], true, "{me}");
    let out = shell(
        h,
        r#"curl -s -o /dev/null -w '%{http_code}' $URL/v1/auth/whoami -H "Authorization: Bearer $API_KEY""#,
        &[("URL", server.url.as_str()), ("API_KEY", &api_key)],
    );
    assert_eq!(stdout(&out), "401", "the old admin keys stay revoked");

    // `cloacinactl config set database_url …` as seed 001 writes it, then read back.
    run(h, r#"cloacinactl config set database_url "postgresql://cloacina:secret@db.example.com:5432/cloacina""#, &env);
    assert_eq!(
        run(h, "cloacinactl config get database_url", &env),
        "postgresql://cloacina:****@db.example.com:5432/cloacina"
    );
    server.stop();
}
