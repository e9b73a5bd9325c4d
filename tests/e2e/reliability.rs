//! Rows of the reliability and security scoreboard (docs/reliability.md) that the SQLite build can show.

use crate::harness::{Server, bootstrap_key, mode};

/// Ten replicas started together on one empty database: exactly one admin key and one 0600
/// bootstrap file, every time.
#[tokio::test(flavor = "multi_thread")]
async fn bootstrap_race_ten_replicas_on_one_empty_database() {
    for round in 0..3 {
        let home = tempfile::tempdir().unwrap();
        let root = home.path().to_owned();
        let starters: Vec<_> = (0..10)
            .map(|_| {
                let root = root.clone();
                std::thread::spawn(move || Server::start(&root, &[], &[]))
            })
            .collect();
        let servers: Vec<Server> = starters.into_iter().map(|t| t.join().expect("replica started")).collect();
        let key = bootstrap_key(&root);
        assert_eq!(mode(&root.join(".cloacina/bootstrap-key")), 0o600);
        for s in &servers {
            let (status, listed) = s.get("/auth/keys", Some(&key)).await;
            assert_eq!(status, 200, "round {round}: every replica accepts the one key: {listed}");
            assert_eq!(listed["items"].as_array().unwrap().len(), 1, "round {round}: {listed}");
        }
        let db = rusqlite::Connection::open(root.join(".cloacina/cloacina.db")).unwrap();
        let gods: i64 = db.query_row("SELECT count(*) FROM api_keys WHERE is_admin = 1", [], |r| r.get(0)).unwrap();
        assert_eq!(gods, 1, "round {round}");
        let created = servers.iter().filter(|s| s.stderr().contains("bootstrap admin key created")).count();
        assert_eq!(created, 1, "round {round}: one replica created the key");
        for s in servers {
            s.stop();
        }
    }
}

/// A key used as a canary: after it has been created, used, listed, revoked and refused, it
/// appears in no log line, no metric and no error body.
#[tokio::test(flavor = "multi_thread")]
async fn a_canary_key_appears_in_no_log_metric_or_error_body() {
    use reqwest::Method;
    use serde_json::json;
    let home = tempfile::tempdir().unwrap();
    let canary = "canary-operator-key-7f3a9b";
    let server = Server::start(home.path(), &["--bootstrap-key", canary], &[]);
    let (_, created) = server.call(Method::POST, "/v1/auth/keys", Some(canary), Some(json!({"name": "minted"}))).await;
    let minted = created["key"].as_str().unwrap().to_owned();
    let mut bodies = Vec::new();
    for key in [canary, minted.as_str()] {
        bodies.push(server.get("/v1/auth/whoami", Some(key)).await.1.to_string());
        bodies.push(server.get("/v1/auth/keys", Some(key)).await.1.to_string());
        bodies.push(server.get("/v1/tenants/nope/keys", Some(key)).await.1.to_string());
        bodies
            .push(server.call(Method::POST, "/v1/auth/keys", Some(key), Some(json!({"name": 1}))).await.1.to_string());
    }
    let id = created["id"].as_str().unwrap();
    server.call(Method::DELETE, &format!("/v1/auth/keys/{id}"), Some(canary), None).await;
    bodies.push(server.get("/v1/auth/whoami", Some(&minted)).await.1.to_string());
    let mut typo = minted.clone();
    typo.replace_range(10..11, if &minted[10..11] == "A" { "B" } else { "A" });
    bodies.push(server.get("/v1/auth/whoami", Some(&typo)).await.1.to_string());
    let metrics = reqwest::get(format!("{}/metrics", server.url)).await.unwrap().text().await.unwrap();
    let stderr_file = server.stderr_file.clone();
    server.stop();
    let logs = std::fs::read_to_string(home.path().join(".cloacina/logs/cloacina-server.log")).unwrap();
    let stderr = std::fs::read_to_string(stderr_file).unwrap();
    for (what, text) in [("metrics", metrics), ("log file", logs), ("stderr", stderr), ("bodies", bodies.join("\n"))] {
        for secret in [canary, &minted[4..], &typo[4..]] {
            assert!(!text.contains(secret), "a key leaked into the {what}");
        }
    }
}

/// `CLOACINA_ENV=production` refuses every insecure setting, naming each, and starts on a
/// sound one.
#[tokio::test(flavor = "multi_thread")]
async fn insecure_production_settings_do_not_boot() {
    let home = tempfile::tempdir().unwrap();
    let master = ("CLOACINA_MASTER_KEY", "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=");
    let no_master_key = [("CLOACINA_ENV", "production")];
    let out = crate::harness::cli(home.path(), &["serve", "--bind", "127.0.0.1:0"], &no_master_key);
    assert_eq!(out.status.code(), Some(1), "booted without a master key");
    assert!(crate::harness::stderr(&out).contains("no master key"), "{}", crate::harness::stderr(&out));
    let prod = [("CLOACINA_ENV", "production"), master];
    let key_file = home.path().join("bootstrap.key");
    std::fs::write(&key_file, "a-bootstrap-key-from-a-file\n").unwrap();
    let url_file = home.path().join("database.url");
    std::fs::write(&url_file, format!("sqlite://{}\n", home.path().join("from-file.db").display())).unwrap();
    for (args, named) in [
        (&["serve", "--bind", "127.0.0.1:0", "--bootstrap-key", "a-bootstrap-key-on-argv"][..], "--bootstrap-key-file"),
        (
            &["serve", "--bind", "127.0.0.1:0", "--database-url", "postgres://u:secretpw@127.0.0.1:1/c"][..],
            "--database-url-file",
        ),
        (&["serve"][..], "--bind 0.0.0.0:8080"),
        (&["serve", "--bind", "127.0.0.1:0", "--auth-failures-per-minute", "0"][..], "rate limit"),
        (&["serve", "--bind", "127.0.0.1:0", "--rate-limit-per-key", "0"][..], "--rate-limit-per-key 0"),
        (&["serve", "--bind", "127.0.0.1:0", "--rate-limit-per-address", "0"][..], "--rate-limit-per-address 0"),
        (&["serve", "--bind", "127.0.0.1:0", "--database-url", "sqlite::memory:"][..], "sqlite::memory:"),
    ] {
        let out = crate::harness::cli(home.path(), args, &prod);
        assert_eq!(out.status.code(), Some(1), "{args:?} booted");
        let err = crate::harness::stderr(&out);
        assert!(err.contains("refuses to start") && err.contains(named), "{args:?}: {err}");
    }
    let server = Server::start(home.path(), &[], &prod);
    assert_eq!(server.get("/ready", None).await.0, 200);
    server.stop();
    // Secrets from files: the bootstrap key and the database URL, read from where they are kept.
    let files = [
        "--behind-proxy",
        "--bootstrap-key-file",
        key_file.to_str().unwrap(),
        "--database-url-file",
        url_file.to_str().unwrap(),
    ];
    let server = Server::start(home.path(), &files, &prod);
    assert_eq!(server.get("/ready", None).await.0, 200);
    let (status, _) = server.get("/v1/auth/whoami", Some("a-bootstrap-key-from-a-file")).await;
    assert_eq!(status, 200, "the bootstrap key came from its file");
    server.stop();
    assert!(home.path().join("from-file.db").exists(), "the database URL came from its file");
}
