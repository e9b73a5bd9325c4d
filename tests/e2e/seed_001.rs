//! Seed 001, "Deploying the API Server", on the embedded SQLite database: every step that
//! applies to SQLite, as the guide writes it.

use reqwest::Method;
use serde_json::json;

use crate::harness::{Server, bootstrap_key, cli, mode, stderr, stdout};

const SUPPLIED: &str = "my-secret-admin-key-here";

#[tokio::test(flavor = "multi_thread")]
async fn first_start_prints_the_banner_and_writes_a_private_bootstrap_key() {
    let home = tempfile::tempdir().unwrap();
    let server = Server::start(home.path(), &[], &[]);
    assert!(server.url.starts_with("http://127.0.0.1:"), "{}", server.url);
    for line in [
        "GET /health -- liveness check",
        "GET /ready -- readiness check",
        "GET /metrics -- Prometheus metrics",
        "POST /auth/keys -- create API key (auth required)",
        "GET /auth/keys -- list API keys (auth required)",
        "DEL /auth/keys/:id -- revoke key (auth required)",
    ] {
        assert!(server.stdout_lines.iter().any(|l| l == line), "missing {line:?} in {:?}", server.stdout_lines);
    }
    let dir = home.path().join(".cloacina");
    assert_eq!(mode(&dir.join("bootstrap-key")), 0o600);
    assert_eq!(mode(&dir), 0o700);
    assert!(dir.join("cloacina.db").exists(), "the default database is ~/.cloacina/cloacina.db");
    let key = bootstrap_key(home.path());
    assert!(key.starts_with("clk_") && key.len() == 75, "{key}");

    assert_eq!(server.get("/health", None).await, (200, json!({"status": "ok"})));
    assert_eq!(server.get("/ready", None).await, (200, json!({"status": "ready"})));
    let (status, me) = server.get("/v1/auth/whoami", Some(&key)).await;
    assert_eq!((status, me["is_admin"].clone()), (200, json!(true)));

    // The log: stderr plus a JSON file, neither holding the key.
    let log = std::fs::read_to_string(dir.join("logs/cloacina-server.log")).unwrap();
    assert!(log.lines().next().is_some_and(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()), "{log}");
    assert!(log.contains("bootstrap admin key created"));
    assert!(!log.contains(&key) && !server.stderr().contains(&key), "the bootstrap key leaked into the logs");
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_are_created_listed_and_revoked_as_the_guide_shows() {
    let home = tempfile::tempdir().unwrap();
    let server = Server::start(home.path(), &[], &[]);
    let admin = bootstrap_key(home.path());

    let (status, created) =
        server.call(Method::POST, "/auth/keys", Some(&admin), Some(json!({"name": "ci-deploy"}))).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["name"], "ci-deploy");
    assert_eq!(created["permissions"], "admin");
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
    let ci_key = created["key"].as_str().unwrap().to_owned();
    assert!(ci_key.starts_with("clk_"));
    let created_at = created["created_at"].as_str().unwrap();
    assert!(chrono::DateTime::parse_from_rfc3339(created_at).is_ok(), "{created_at}");
    assert!(created_at.ends_with("+00:00"), "{created_at}");

    let (status, listed) = server.get("/auth/keys", Some(&ci_key)).await;
    assert_eq!(status, 200);
    let names: Vec<_> =
        listed["items"].as_array().unwrap().iter().map(|k| k["name"].as_str().unwrap().to_owned()).collect();
    assert_eq!(names, ["bootstrap-admin", "ci-deploy"]);
    assert!(!listed.to_string().contains(&ci_key));

    assert_eq!(server.get("/v1/auth/whoami", Some(&ci_key)).await.0, 200);
    let (status, body) = server.call(Method::DELETE, &format!("/auth/keys/{id}"), Some(&admin), None).await;
    assert_eq!((status, body), (200, json!({"status": "revoked", "id": id})));
    // "Revoked keys are rejected immediately."
    let (status, body) = server.get("/auth/keys", Some(&ci_key)).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["code"], "invalid_api_key");
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restart_does_not_bootstrap_again() {
    let home = tempfile::tempdir().unwrap();
    let first = Server::start(home.path(), &[], &[]);
    let key = bootstrap_key(home.path());
    first.stop();
    let second = Server::start(home.path(), &["--bootstrap-key", SUPPLIED], &[]);
    assert_eq!(bootstrap_key(home.path()), key, "the bootstrap file is left as it was");
    let (_, listed) = second.get("/auth/keys", Some(&key)).await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    assert_eq!(second.get("/v1/auth/whoami", Some(SUPPLIED)).await.0, 401, "an ignored supplied key is not a key");
    assert!(second.stderr().contains("supplied bootstrap key was ignored"), "{}", second.stderr());
    second.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_supplied_bootstrap_key_works_by_flag_and_by_environment() {
    for by_flag in [true, false] {
        let home = tempfile::tempdir().unwrap();
        let server = if by_flag {
            Server::start(home.path(), &["--bootstrap-key", SUPPLIED], &[])
        } else {
            Server::start(home.path(), &[], &[("CLOACINA_BOOTSTRAP_KEY", SUPPLIED)])
        };
        assert_eq!(bootstrap_key(home.path()), SUPPLIED, "in all cases the plaintext is written to the file");
        assert_eq!(mode(&home.path().join(".cloacina/bootstrap-key")), 0o600);
        let (status, me) = server.get("/v1/auth/whoami", Some(SUPPLIED)).await;
        assert_eq!((status, me["is_admin"].clone()), (200, json!(true)), "by_flag={by_flag}");
        let log = std::fs::read_to_string(home.path().join(".cloacina/logs/cloacina-server.log")).unwrap();
        assert!(!log.contains(SUPPLIED) && !server.stderr().contains(SUPPLIED));
        server.stop();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_short_bootstrap_key_is_refused_with_a_clear_error() {
    let home = tempfile::tempdir().unwrap();
    let out = cli(home.path(), &["serve", "--bind", "127.0.0.1:0", "--bootstrap-key", "too-short"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("at least 16 characters"), "{err}");
    assert!(!err.contains("too-short"), "the key is not echoed: {err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_database_url_comes_from_flag_then_environment_then_config_file() {
    let home = tempfile::tempdir().unwrap();
    let p = |name: &str| home.path().join(name);
    let url = |name: &str| format!("sqlite://{}", p(name).display());
    let out = cli(home.path(), &["config", "set", "database_url", &url("from-config.db")], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(mode(&home.path().join(".cloacina/config.toml")), 0o600);

    let server = Server::start(home.path(), &[], &[]);
    assert!(p("from-config.db").exists());
    server.stop();
    let env_url = url("from-env.db");
    let server = Server::start(home.path(), &[], &[("DATABASE_URL", env_url.as_str())]);
    assert!(p("from-env.db").exists());
    server.stop();
    let server =
        Server::start(home.path(), &["--database-url", &url("from-flag.db")], &[("DATABASE_URL", env_url.as_str())]);
    assert!(p("from-flag.db").exists());
    server.stop();
    assert!(!home.path().join(".cloacina/cloacina.db").exists(), "the default was never used");

    let out = cli(home.path(), &["serve", "--bind", "127.0.0.1:0", "--database-url", "mysql://u:hunter2@h/db"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("unsupported database URL") && !stderr(&out).contains("hunter2"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sqlite_recovery_statement_and_a_restart_bootstrap_a_fresh_key() {
    let home = tempfile::tempdir().unwrap();
    let server = Server::start(home.path(), &[], &[]);
    let lost = bootstrap_key(home.path());
    server.stop();
    let db = rusqlite::Connection::open(home.path().join(".cloacina/cloacina.db")).unwrap();
    let changed = db.execute("UPDATE api_keys SET revoked = 1 WHERE is_admin = 1;", []).unwrap();
    assert_eq!(changed, 1);
    drop(db);
    let server = Server::start(home.path(), &[], &[]);
    let fresh = bootstrap_key(home.path());
    assert_ne!(fresh, lost);
    assert_eq!(server.get("/v1/auth/whoami", Some(&fresh)).await.0, 200);
    assert_eq!(server.get("/v1/auth/whoami", Some(&lost)).await.0, 401);
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_and_sigint_drain_in_flight_requests_and_exit_cleanly() {
    for signal in ["TERM", "INT"] {
        let home = tempfile::tempdir().unwrap();
        // An operator-supplied key is verified with argon2id on first use: a request that takes
        // a while, in flight when the signal lands.
        let server = Server::start(home.path(), &["--bootstrap-key", SUPPLIED], &[]);
        let url = format!("{}/v1/auth/whoami", server.url);
        let in_flight = tokio::spawn(async move { reqwest::Client::new().get(url).bearer_auth(SUPPLIED).send().await });
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        server.signal(signal);
        let response = in_flight.await.unwrap().expect("the in-flight request is answered");
        assert_eq!(response.status(), 200);
        let stderr_file = server.stderr_file.clone();
        let status = server.wait();
        assert!(status.success(), "SIG{signal}: exit {status}");
        let err = std::fs::read_to_string(stderr_file).unwrap();
        assert!(err.contains("shutting down: draining"), "{err}");
        assert!(err.contains("server stopped"), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_requests_by_route_template_and_auth_outcome() {
    let home = tempfile::tempdir().unwrap();
    let server = Server::start(home.path(), &[], &[]);
    let key = bootstrap_key(home.path());
    server.get("/v1/auth/whoami", Some(&key)).await;
    server.get("/v1/auth/whoami", Some(&key)).await;
    server.get("/v1/auth/whoami", Some("clk_garbage_but_long_enough")).await;
    let text = reqwest::get(format!("{}/metrics", server.url)).await.unwrap().text().await.unwrap();
    assert!(
        text.contains(r#"cloacina_http_requests_total{method="GET",route="/v1/auth/whoami",status="200"} 2"#),
        "{text}"
    );
    assert!(text.contains(r#"cloacina_auth_attempts_total{outcome="success"} 2"#), "{text}");
    assert!(text.contains(r#"outcome="malformed""#) || text.contains(r#"outcome="unknown""#), "{text}");
    assert!(text.contains(r#"cloacina_auth_cache_lookups_total{result="hit"}"#), "{text}");
    assert!(!text.contains(&key[4..20]), "no key material in metrics");
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn server_start_is_the_same_command_and_verbose_logs_debug() {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = crate::harness::command(home.path());
    cmd.args(["server", "start", "--bind", "127.0.0.1:0", "--verbose"]);
    let server = Server::spawn(cmd, home.path(), &[]);
    assert_eq!(server.get("/health", None).await.0, 200);
    server.get("/health", None).await;
    let err = server.stderr();
    assert!(err.contains("DEBUG"), "{err}");
    server.stop();
    let quiet = Server::start(home.path(), &[], &[("RUST_LOG", "warn")]);
    quiet.get("/health", None).await;
    let err = quiet.stderr();
    assert!(!err.contains("INFO") && !err.contains("DEBUG"), "RUST_LOG=warn is honoured: {err}");
    quiet.stop();
    let out = cli(home.path(), &["--help"], &[]);
    assert!(out.status.success() && stdout(&out).contains("serve"));
}
