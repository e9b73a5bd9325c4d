//! Tenant secrets through the real binary, its sandboxed tasks and the CLI: a task receives
//! exactly the secrets it declares, as variables of its own process; the value appears in no
//! log, event, output, error body, audit row or server log; `secrets rewrap` moves every data
//! key to a new master key, after which the old one can go and tasks still read their
//! secrets; without a master key the routes answer 503 and a task that needs a secret fails,
//! saying why.

use std::path::Path;

use reqwest::Method;
use serde_json::Value;

use crate::executions::{pack, upload};
use crate::harness::{Server, bootstrap_key, cli, stderr, stdout};

const CANARY: &str = "canary-db-password-5b1e0c";
const OTHER: &str = "canary-other-token-9d2f7a";
/// `sha256sum` of the canary with a newline, as the task prints it.
fn digest(value: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(format!("{value}\n").as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

const WORKFLOWS: &str = r#"
[[workflow]]
name = "uses-secret"
[[workflow.task]]
id = "reader"
command = ["sh", "reader.sh"]
secrets = { DB_PASSWORD = "db.password", DB_USER = "db.user" }
[[workflow.task]]
id = "bystander"
command = ["sh", "bystander.sh"]
depends_on = ["reader"]
"#;

/// Prints the variable names it has, the digest of the password, then the password itself
/// (to be masked), and puts it in its output (to be masked there too).
const READER: &str = r#"env | cut -d= -f1 | sort | tr '\n' ' '; echo
printf '%s\n' "$DB_PASSWORD" | sha256sum | cut -d' ' -f1
echo "user=$DB_USER"
echo "leaking: $DB_PASSWORD" >&2
printf '{"echo": "%s"}' "$DB_PASSWORD" > "$CLOACINA_OUTPUT_FILE"
"#;

const BYSTANDER: &str = "env | cut -d= -f1 | sort | tr '\\n' ' '; echo\n";

fn key_file(dir: &Path, name: &str, byte: u8) -> String {
    use base64::Engine;
    let path = dir.join(name);
    std::fs::write(&path, base64::engine::general_purpose::STANDARD.encode([byte; 32])).unwrap();
    path.to_str().unwrap().to_owned()
}

fn ok(out: &std::process::Output) -> String {
    assert!(out.status.success(), "{}", stderr(out));
    stdout(out)
}

/// Runs the workflow and waits; returns the execution id.
fn run(h: &Path, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let out = cli(h, &["workflow", "run", "uses-secret", "--wait", "-o", "id"], env);
    (out.status.code(), stdout(&out).lines().last().unwrap_or_default().trim().to_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_task_reads_exactly_its_secrets_which_leak_nowhere_and_survive_a_master_key_rotation() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let k1 = key_file(h, "k1.key", 1);
    let k2 = key_file(h, "k2.key", 2);
    let server = Server::start(h, &["--master-key-file", &k1], &[]);
    let god = bootstrap_key(h);
    let as_god = [("CLOACINA_SERVER", server.url.as_str()), ("CLOACINA_API_KEY", god.as_str())];
    let writer = ok(&cli(h, &["key", "create", "ci", "--role", "write", "--tenant", "public"], &as_god));
    let admin = ok(&cli(h, &["key", "create", "boss", "--role", "admin", "--tenant", "public"], &as_god));
    let env = [("CLOACINA_SERVER", server.url.as_str()), ("CLOACINA_API_KEY", writer.as_str())];

    // Values from a file and from stdin, never argv.
    std::fs::write(h.join("db.json"), format!(r#"{{"password": "{CANARY}", "user": "app"}}"#)).unwrap();
    let made = ok(&cli(h, &["secret", "create", "db", "--from-file", h.join("db.json").to_str().unwrap()], &env));
    assert!(made.contains("fields password, user"), "{made}");
    let script = format!(
        "printf '%s' '{{\"token\": \"{OTHER}\"}}' | {} secret create other --from-file -",
        crate::harness::binary()
    );
    let piped = crate::harness::shell(h, &script, &env);
    assert!(piped.status.success(), "{}", stderr(&piped));
    let listed: Value = serde_json::from_str(&ok(&cli(h, &["secret", "list", "-o", "json"], &env))).unwrap();
    assert_eq!(listed["total"], 2, "{listed}");
    assert_eq!(listed["items"][0]["field_names"], serde_json::json!(["password", "user"]));
    let dup = cli(h, &["secret", "create", "db", "--from-file", h.join("db.json").to_str().unwrap()], &env);
    assert_eq!(dup.status.code(), Some(1), "{}", stderr(&dup));

    let file = pack(h, "secret-user", "1.0.0", WORKFLOWS, &[("reader.sh", READER), ("bystander.sh", BYSTANDER)]);
    assert_eq!(upload(&server, "public", &writer, &file).await.0, 201);
    let (code, id) = run(h, &env);
    assert_eq!(code, Some(0), "the workflow ran");
    let logs = ok(&cli(h, &["execution", "logs", &id, "reader"], &env));
    println!("reader's log:\n{logs}");
    let names: Vec<&str> = logs.lines().find(|l| l.contains("PATH")).unwrap().split_whitespace().collect();
    assert!(names.contains(&"DB_PASSWORD") && names.contains(&"DB_USER"), "{names:?}");
    assert!(!logs.contains("TOKEN") && !names.iter().any(|n| n.contains("OTHER")), "only the declared secrets");
    assert!(logs.contains(&digest(CANARY)), "the task received the value itself");
    assert!(logs.contains("user=app") && logs.contains("leaking: ***"), "{logs}");
    let bystander = ok(&cli(h, &["execution", "logs", &id, "bystander"], &env));
    assert!(!bystander.contains("DB_PASSWORD"), "a task that declares none gets none: {bystander}");

    // The canary is nowhere the server keeps or answers.
    let mut seen = vec![logs, bystander];
    for path in [
        format!("/v1/tenants/public/executions/{id}"),
        format!("/v1/tenants/public/executions/{id}/tasks"),
        format!("/v1/tenants/public/executions/{id}/events"),
        format!("/v1/tenants/public/executions/{id}/tasks/reader/logs"),
        "/v1/tenants/public/secrets".into(),
        "/v1/tenants/public/secrets/db".into(),
    ] {
        let (status, body) = server.get(&path, Some(&writer)).await;
        assert_eq!(status, 200, "{path}: {body}");
        seen.push(body.to_string());
    }
    let (_, audit) = server.get("/v1/tenants/public/audit?limit=1000", Some(&admin)).await;
    assert!(audit.to_string().contains("secret.create"), "{audit}");
    seen.push(audit.to_string());
    let (status, refused) = server
        .call(
            Method::POST,
            "/v1/tenants/public/secrets",
            Some(&writer),
            Some(serde_json::json!({"name": "Bad Name", "fields": {"x": CANARY}})),
        )
        .await;
    assert_eq!(status, 400, "{refused}");
    seen.push(refused.to_string());
    let stderr_file = server.stderr_file.clone();
    server.stop();
    seen.push(std::fs::read_to_string(stderr_file).unwrap());
    seen.push(std::fs::read_to_string(h.join(".cloacina/logs/cloacina-server.log")).unwrap());
    let db = std::fs::read(h.join(".cloacina/cloacina.db")).unwrap();
    for (n, text) in seen.iter().enumerate() {
        assert!(!text.contains(CANARY) && !text.contains(OTHER), "a secret value leaked (place {n})");
    }
    assert!(!db.windows(CANARY.len()).any(|w| w == CANARY.as_bytes()), "the database holds no value in the clear");

    // Rotation: rewrap under k2, twice (the second finds nothing to do), then run on k2 alone.
    let rewrap = |h: &Path| cli(h, &["secrets", "rewrap", "--old-key-file", &k1, "--new-key-file", &k2], &[]);
    let first = ok(&rewrap(h));
    println!("$ cloacinactl secrets rewrap …\n{first}");
    assert!(first.starts_with("rewrapped 1 tenant data key(s)"), "{first}");
    assert!(ok(&rewrap(h)).contains("rewrapped 0 tenant data key(s)"), "idempotent");
    let server = Server::start(h, &["--master-key-file", &k2], &[]);
    let env = [("CLOACINA_SERVER", server.url.as_str()), ("CLOACINA_API_KEY", writer.as_str())];
    let (code, id) = run(h, &env);
    assert_eq!(code, Some(0));
    assert!(
        ok(&cli(h, &["execution", "logs", &id, "reader"], &env)).contains(&digest(CANARY)),
        "still read after rotation"
    );
    server.stop();

    // No master key: the routes answer 503, and a task that needs a secret fails saying why.
    let server = Server::start(h, &[], &[]);
    let env = [("CLOACINA_SERVER", server.url.as_str()), ("CLOACINA_API_KEY", writer.as_str())];
    let (status, body) = server.get("/v1/tenants/public/secrets", Some(&writer)).await;
    assert_eq!((status, body["code"].as_str()), (503, Some("secrets_unavailable")), "{body}");
    let (code, id) = run(h, &env);
    assert_eq!(code, Some(6), "the execution failed");
    let shown = ok(&cli(h, &["execution", "get", &id], &env));
    println!("without a master key: {}", shown.lines().find(|l| l.contains("error")).unwrap_or_default());
    assert!(shown.contains("cannot set the task's secrets: secrets are unavailable"), "{shown}");
    server.stop();
}
