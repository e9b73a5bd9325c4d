//! The PostgreSQL backend end to end: seed 002 as written, replicas sharing one database,
//! the bootstrap race, an outage, and migrations as a separate step. Every server runs as a
//! login role with CREATEROLE and NOINHERIT that is not a superuser, as docs/postgres.md sets up.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{Server, bootstrap_key, cli, command, mode, shell, stderr, stdout};
use cloacina_testpg::{TestDatabase, TestPg};

async fn database() -> TestDatabase {
    TestPg::shared().database().await
}

/// `serve --database-url URL --bind 127.0.0.1:0 EXTRA…`.
fn serve(home: &std::path::Path, url: &str, extra: &[&str]) -> Server {
    let mut args = vec!["--database-url", url, "--db-max-connections", "4"];
    args.extend_from_slice(extra);
    Server::start(home, &args, &[])
}

fn run(home: &std::path::Path, script: &str, env: &[(&str, &str)]) -> String {
    let out = shell(home, script, env);
    assert!(out.status.success(), "`{script}` failed ({}): {}", out.status, stderr(&out));
    stdout(&out)
}

/// Seed 002, "Configure a Multi-Tenant Deployment", step by step as the guide writes it. The
/// test's own are only the server address (`$URL`), the database URL and the key file path.
#[tokio::test(flavor = "multi_thread")]
async fn seed_002_multi_tenant_deployment_as_written() {
    let db = database().await;
    let home = tempfile::tempdir().unwrap();
    let h = home.path();

    // Start the server (first time): `cloacinactl server start --database-url … --bind …`.
    let mut start = command(h);
    start.args(["server", "start", "--database-url", &db.url, "--bind", "127.0.0.1:0"]);
    let server = Server::spawn(start, h, &[]);
    let url = server.url.clone();
    let env = [("URL", url.as_str())];
    let admin = run(
        h,
        "ADMIN_KEY=$(cat ~/.cloacina/bootstrap-key)\nchmod 600 ~/.cloacina/bootstrap-key\necho \"$ADMIN_KEY\"",
        &env,
    );
    assert!(admin.starts_with("clk_"));
    assert_eq!(mode(&h.join(".cloacina/bootstrap-key")), 0o600);

    // Tenants.
    let listed = run(
        h,
        r#"ADMIN_KEY=$(cat ~/.cloacina/bootstrap-key)
cloacinactl tenant create acme \
--server $URL \
--api-key "$ADMIN_KEY"
cloacinactl tenant create globex \
--server $URL \
--api-key "$ADMIN_KEY"
cloacinactl tenant list \
--server $URL \
--api-key "$ADMIN_KEY""#,
        &env,
    );
    let names: Vec<&str> = listed.lines().filter_map(|l| l.split_whitespace().next()).collect();
    assert!(names.contains(&"acme") && names.contains(&"globex"), "{listed}");

    // Tenant-scoped keys, shown exactly once on stdout.
    let key_create = |name: &str, role: &str, tenant: &str| {
        run(
            h,
            &format!(
                "ADMIN_KEY=$(cat ~/.cloacina/bootstrap-key)\ncloacinactl key create {name} \\\n--role {role} \\\n\
                 --tenant {tenant} \\\n--server $URL \\\n--api-key \"$ADMIN_KEY\""
            ),
            &env,
        )
    };
    let acme_ci = key_create("acme-ci", "write", "acme");
    let acme_monitor = key_create("acme-monitor", "read", "acme");
    let globex_ci = key_create("globex-ci", "write", "globex");
    for k in [&acme_ci, &acme_monitor, &globex_ci] {
        assert!(k.starts_with("clk_") && !k.contains('\n'), "{k}");
    }
    let (_, me) = server.get("/v1/auth/whoami", Some(&acme_ci)).await;
    assert_eq!((me["tenant_id"].clone(), me["permissions"].clone()), (json!("acme"), json!("write")), "{me}");

    // Each tenant client gets its own profile in ~/.cloacina/config.toml.
    let globex_key_file = h.join("globex-prod.key");
    std::fs::write(&globex_key_file, format!("{globex_ci}\n")).unwrap();
    std::fs::write(
        h.join(".cloacina/config.toml"),
        format!(
            "default_profile = \"acme-prod\"\n\n[profiles.acme-prod]\nserver = \"{url}\"\napi_key = \"env:ACME_PROD_KEY\"\n\n\
             [profiles.globex-prod]\nserver = \"{url}\"\napi_key = \"file:{}\"\n\n[profiles.admin]\nserver = \"{url}\"\n\
             api_key = \"env:CLOACINA_ADMIN_KEY\"\n",
            globex_key_file.display()
        ),
    )
    .unwrap();
    let env = [
        ("URL", url.as_str()),
        ("ACME_PROD_KEY", acme_ci.as_str()),
        ("CLOACINA_ADMIN_KEY", admin.as_str()),
        ("ONE_OFF_KEY", acme_monitor.as_str()),
    ];
    // Override per command.
    run(
        h,
        r#"cloacinactl --server $URL \
--api-key env:ONE_OFF_KEY \
--tenant acme \
workflow list"#,
        &env,
    );
    // The default profile (acme-prod) lands in acme; globex-prod's key knows its tenant.
    let out = shell(h, "cloacinactl -o json workflow list", &env);
    assert_eq!(serde_json::from_str::<Value>(&stdout(&out)).unwrap()["tenant_id"], "acme", "{}", stderr(&out));
    let out = shell(h, "cloacinactl --profile globex-prod -o json workflow list", &env);
    assert_eq!(serde_json::from_str::<Value>(&stdout(&out)).unwrap()["tenant_id"], "globex", "{}", stderr(&out));

    // Packages are scoped to the tenant they are uploaded under. The two archives of the guide,
    // made with the CLI in the home folder.
    run(
        h,
        "cd ~ && cloacinactl package new acme-etl && sed -i 's/^version = \"0.1.0\"/version = \"1.2.0\"/' acme-etl/package.toml \
         && cloacinactl package pack acme-etl && cloacinactl package new globex-billing \
         && sed -i 's/^version = \"0.1.0\"/version = \"3.0.0\"/' globex-billing/package.toml && cloacinactl package pack globex-billing",
        &env,
    );
    let uploaded = run(
        h,
        r#"cd ~
# Acme's workflows go into Acme's schema
cloacinactl --profile acme-prod \
package upload acme-etl-1.2.0.cloacina
# Globex's workflows are completely separate
cloacinactl --profile globex-prod \
package upload globex-billing-3.0.0.cloacina"#,
        &env,
    );
    assert!(uploaded.contains("uploaded acme-etl 1.2.0 to tenant acme"), "{uploaded}");
    assert!(uploaded.contains("uploaded globex-billing 3.0.0 to tenant globex"), "{uploaded}");
    let out = shell(
        h,
        "cd ~ && cloacinactl --profile acme-prod --tenant globex package upload acme-etl-1.2.0.cloacina",
        &env,
    );
    assert_eq!(out.status.code(), Some(4), "a tenant key uploads only to its own tenant: {}", stderr(&out));
    for (profile, package) in [("acme-prod", "acme-etl"), ("globex-prod", "globex-billing")] {
        let listed = run(h, &format!("cloacinactl --profile {profile} -o id package list"), &env);
        let names = run(h, &format!("cloacinactl --profile {profile} -o json package list"), &env);
        assert_eq!(listed.lines().count(), 1, "{names}");
        assert!(names.contains(package), "{names}");
    }

    // Smoke-test isolation.
    for script in [
        "cloacinactl --profile acme-prod --tenant globex workflow list",
        "cloacinactl --profile acme-prod tenant create new-tenant",
    ] {
        let out = shell(h, script, &env);
        assert_eq!(out.status.code(), Some(4), "{script}: {}", stderr(&out));
        assert!(stderr(&out).contains("403"), "{script}: {}", stderr(&out));
    }
    let listed = run(h, "cloacinactl --profile admin tenant list", &env);
    assert!(listed.contains("globex"), "{listed}");
    run(h, "cloacinactl --profile admin --tenant globex workflow list", &env);

    // Keep two admin keys: a second one through POST /v1/auth/keys.
    let second = run(
        h,
        r#"curl -s -X POST $URL/v1/auth/keys -H "Authorization: Bearer $CLOACINA_ADMIN_KEY" \
  -H "Content-Type: application/json" -d '{"name": "second-admin"}'"#,
        &env,
    );
    let second: Value = serde_json::from_str(&second).unwrap();
    assert_eq!((second["permissions"].clone(), second["is_admin"].clone()), (json!("admin"), json!(true)));
    let second = second["key"].as_str().unwrap().to_owned();

    // Lost both: stop the server, revoke every admin key in psql, restart (as `serve`).
    server.stop();
    let psql =
        format!("psql '{}' -v ON_ERROR_STOP=1 -c 'UPDATE api_keys SET revoked = true WHERE is_admin = true;'", db.url);
    let out = shell(h, &psql, &[]);
    assert!(out.status.success(), "psql is needed (Debian: apt-get install -y postgresql-client): {}", stderr(&out));
    assert!(stdout(&out).contains("UPDATE 2"), "{}", stdout(&out));
    let server = serve(h, &db.url, &[]);
    let fresh = bootstrap_key(h);
    assert_ne!(fresh, admin, "a fresh admin key was bootstrapped");
    assert_eq!(mode(&h.join(".cloacina/bootstrap-key")), 0o600);
    for (key, status) in [(fresh.as_str(), 200), (admin.as_str(), 401), (second.as_str(), 401), (acme_ci.as_str(), 200)]
    {
        let (got, body) = server.get("/v1/auth/whoami", Some(key)).await;
        assert_eq!(got, status, "{body}");
    }
    let (status, listed) = server.get("/v1/tenants", Some(&fresh)).await;
    assert_eq!(status, 200);
    assert_eq!(listed["items"].as_array().unwrap().len(), 3, "tenants survive the recovery: {listed}");
    server.stop();
}

/// Two replicas on one database: a key revoked, or a tenant deleted, through one is refused
/// by the other within a second, though the other's cache would keep it five minutes; also
/// after the other's listener connection is cut.
#[tokio::test(flavor = "multi_thread")]
async fn a_second_replica_refuses_a_revoked_key_and_a_deleted_tenant_within_a_second() {
    let db = database().await;
    let (home_a, home_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = serve(home_a.path(), &db.url, &["--auth-cache-ttl", "300"]);
    let god = bootstrap_key(home_a.path());
    let b = serve(home_b.path(), &db.url, &["--auth-cache-ttl", "300"]);
    assert!(!home_b.path().join(".cloacina/bootstrap-key").exists(), "the second replica did not bootstrap");

    let create = |tenant: &'static str| {
        let (a, god) = (&a, god.clone());
        async move {
            let (status, body) = a.call(Method::POST, "/v1/tenants", Some(&god), Some(json!({"name": tenant}))).await;
            assert_eq!(status, 201, "{body}");
            let (_, key) = a
                .call(Method::POST, &format!("/v1/tenants/{tenant}/keys"), Some(&god), Some(json!({"name": "k"})))
                .await;
            (key["id"].as_str().unwrap().to_owned(), key["key"].as_str().unwrap().to_owned())
        }
    };
    let (acme_id, acme_key) = create("acme").await;

    let refused_within = |key: String| {
        let b = &b;
        async move {
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(5) {
                if b.get("/v1/auth/whoami", Some(&key)).await.0 == 401 {
                    return start.elapsed();
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            panic!("replica B still accepts the key after 5 s");
        }
    };

    for round in 0..3 {
        let (_, key) =
            a.call(Method::POST, "/v1/tenants/acme/keys", Some(&god), Some(json!({"name": format!("r{round}")}))).await;
        let (id, key) = (key["id"].as_str().unwrap().to_owned(), key["key"].as_str().unwrap().to_owned());
        assert_eq!(b.get("/v1/auth/whoami", Some(&key)).await.0, 200, "B has it cached");
        let (status, _) = a.call(Method::DELETE, &format!("/v1/tenants/acme/keys/{id}"), Some(&god), None).await;
        assert_eq!(status, 200);
        let took = refused_within(key).await;
        assert!(took < Duration::from_secs(1), "round {round}: B refused the revoked key after {took:?}");
    }

    // Cut B's listener: it forgets everything, listens again, and still hears the next change.
    let mut admin = TestPg::shared().admin().await;
    let cut: i64 = sqlx::query_scalar(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = $1 AND query LIKE 'LISTEN%'",
    )
    .bind(&db.name)
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert_eq!(cut, 2, "one listener per replica");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, key) = a.call(Method::POST, "/v1/tenants/acme/keys", Some(&god), Some(json!({"name": "after-cut"}))).await;
    let (id, key) = (key["id"].as_str().unwrap().to_owned(), key["key"].as_str().unwrap().to_owned());
    assert_eq!(b.get("/v1/auth/whoami", Some(&key)).await.0, 200);
    a.call(Method::DELETE, &format!("/v1/tenants/acme/keys/{id}"), Some(&god), None).await;
    let took = refused_within(key).await;
    assert!(took < Duration::from_secs(1), "after a cut listener, B refused the revoked key after {took:?}");

    // Tenant deletion through A: B refuses the tenant's keys and answers 404 on its paths.
    assert_eq!(b.get("/v1/auth/whoami", Some(&acme_key)).await.0, 200);
    assert_eq!(b.get("/v1/tenants/acme/workflows", Some(&god)).await.0, 200);
    let (status, body) = a.call(Method::DELETE, "/v1/tenants/acme", Some(&god), None).await;
    assert_eq!(status, 200, "{body}");
    let took = refused_within(acme_key).await;
    assert!(took < Duration::from_secs(1), "B refused the deleted tenant's key after {took:?}");
    let (status, body) = b.get("/v1/tenants/acme/workflows", Some(&god)).await;
    assert_eq!(status, 404, "{body}");
    let _ = acme_id;
    // The name is free again at once, through either replica.
    let (status, body) = b.call(Method::POST, "/v1/tenants", Some(&god), Some(json!({"name": "acme"}))).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(a.get("/v1/tenants/acme/workflows", Some(&god)).await.0, 200);
    a.stop();
    b.stop();
}

/// Ten replicas started together on one empty PostgreSQL database, sharing one home folder:
/// exactly one admin key and one 0600 bootstrap file, every time.
#[tokio::test(flavor = "multi_thread")]
async fn bootstrap_race_ten_replicas_on_one_empty_postgres_database() {
    for round in 0..3 {
        let db = database().await;
        let home = tempfile::tempdir().unwrap();
        let root = home.path().to_owned();
        let starters: Vec<_> = (0..10)
            .map(|_| {
                let (root, url) = (root.clone(), db.url.clone());
                std::thread::spawn(move || serve(&root, &url, &[]))
            })
            .collect();
        let servers: Vec<Server> = starters.into_iter().map(|t| t.join().expect("replica started")).collect();
        let key = bootstrap_key(&root);
        assert_eq!(mode(&root.join(".cloacina/bootstrap-key")), 0o600);
        for s in &servers {
            let (status, listed) = s.get("/v1/auth/keys", Some(&key)).await;
            assert_eq!(status, 200, "round {round}: every replica accepts the one key: {listed}");
            assert_eq!(listed["items"].as_array().unwrap().len(), 1, "round {round}: {listed}");
        }
        let created = servers.iter().filter(|s| s.stderr().contains("bootstrap admin key created")).count();
        assert_eq!(created, 1, "round {round}: one replica created the key");
        let mut conn = TestPg::shared().admin_of(&db.name).await;
        let gods: i64 =
            sqlx::query_scalar("SELECT count(*) FROM api_keys WHERE is_admin").fetch_one(&mut conn).await.unwrap();
        assert_eq!(gods, 1, "round {round}");
        for s in servers {
            s.stop();
        }
    }
}

/// `cloacinactl migrate` as a pre-deploy step, and `serve --no-migrate` refusing a database
/// that is behind.
#[tokio::test(flavor = "multi_thread")]
async fn migrate_is_a_separate_idempotent_step_and_no_migrate_refuses_a_database_behind() {
    let db = database().await;
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let out = cli(h, &["migrate", "--check", "--database-url", &db.url], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("pending"), "{}", stderr(&out));
    let mut refused = command(h);
    refused.args(["serve", "--no-migrate", "--bind", "127.0.0.1:0", "--database-url", &db.url]);
    let out = refused.output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("cloacinactl migrate"), "{}", stderr(&out));
    assert!(!stderr(&out).contains(db.url.split(':').nth(2).unwrap().split('@').next().unwrap()), "no password");
    for _ in 0..2 {
        let out = cli(h, &["migrate", "--database-url", &db.url], &[]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(stdout(&out).contains("schema is current"), "{}", stdout(&out));
    }
    let out = cli(h, &["migrate", "--check"], &[("DATABASE_URL", &db.url)]);
    assert!(out.status.success(), "{}", stderr(&out));
    let server = serve(h, &db.url, &["--no-migrate"]);
    assert_eq!(server.get("/ready", None).await.0, 200);
    let metrics = reqwest::get(format!("{}/metrics", server.url)).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("cloacina_db_pool_max_connections 4"), "{metrics}");
    assert!(metrics.contains(r#"cloacina_db_pool_connections{state="idle"}"#), "{metrics}");
    server.stop();
}

/// `tenant create|list|get|delete` and tenant keys through the CLI, with its exit codes.
#[tokio::test(flavor = "multi_thread")]
async fn tenants_and_tenant_keys_through_the_cli() {
    let db = database().await;
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let server = serve(h, &db.url, &[]);
    let god = bootstrap_key(h);
    let as_god = [("CLOACINA_SERVER", server.url.as_str()), ("CLOACINA_API_KEY", god.as_str())];
    let json = |out: &std::process::Output| -> Value {
        assert!(out.status.success(), "{}", stderr(out));
        serde_json::from_str(&stdout(out)).unwrap()
    };

    let created = json(&cli(h, &["tenant", "create", "acme", "--description", "Acme Corp", "-o", "json"], &as_god));
    assert_eq!((created["name"].clone(), created["schema_name"].clone()), (json!("acme"), json!("tenant_acme")));
    for (args, code) in [
        (vec!["tenant", "create", "acme"], 1),
        (vec!["tenant", "create", "Bad"], 1),
        (vec!["tenant", "get", "nobody"], 3),
        (vec!["tenant", "delete", "public", "--yes"], 1),
    ] {
        let out = cli(h, &args, &as_god);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {}", stderr(&out));
        assert_eq!(stderr(&out).lines().count(), 1, "one clear line: {}", stderr(&out));
    }
    assert_eq!(json(&cli(h, &["tenant", "get", "acme", "-o", "json"], &as_god))["description"], "Acme Corp");
    assert_eq!(stdout(&cli(h, &["tenant", "list", "-o", "id"], &as_god)), "public\nacme");

    let admin = stdout(&cli(h, &["key", "create", "acme-admin", "--role", "admin", "--tenant", "acme"], &as_god));
    let as_admin = [("CLOACINA_SERVER", server.url.as_str()), ("CLOACINA_API_KEY", admin.as_str())];
    // A tenant admin's key knows its tenant: no --tenant needed.
    let reader = json(&cli(h, &["key", "create", "acme-reader", "--role", "read", "-o", "json"], &as_admin));
    assert_eq!(reader["tenant_id"], "acme");
    let listed = json(&cli(h, &["key", "list", "-o", "json"], &as_admin));
    assert_eq!(listed["items"].as_array().unwrap().len(), 2, "{listed}");
    let out = cli(h, &["key", "revoke", reader["id"].as_str().unwrap()], &as_admin);
    assert!(out.status.success(), "{}", stderr(&out));
    for args in
        [vec!["key", "create", "x", "--admin"], vec!["tenant", "list"], vec!["key", "list", "--tenant", "public"]]
    {
        let out = cli(h, &args, &as_admin);
        assert_eq!(out.status.code(), Some(4), "{args:?}: {}", stderr(&out));
    }

    let out = cli(h, &["tenant", "delete", "acme"], &as_god);
    assert_eq!(out.status.code(), Some(1), "no terminal, no --yes: {}", stderr(&out));
    assert!(stderr(&out).contains("--yes"));
    assert_eq!(json(&cli(h, &["tenant", "get", "acme", "-o", "json"], &as_god))["name"], "acme", "nothing was deleted");
    let removed = json(&cli(h, &["tenant", "delete", "acme", "--yes", "-o", "json"], &as_god));
    assert_eq!(removed["revoked_keys"], 1, "{removed}");
    let out = cli(h, &["key", "list"], &as_admin);
    assert_eq!(out.status.code(), Some(4), "the deleted tenant's key is refused: {}", stderr(&out));
    assert_eq!(cli(h, &["tenant", "get", "acme"], &as_god).status.code(), Some(3));
    server.stop();
}

/// A server logging in as a superuser starts, but says that isolation then rests on it alone.
#[tokio::test(flavor = "multi_thread")]
async fn a_superuser_login_role_is_warned_about() {
    let pg = TestPg::shared();
    let name = format!("cl_super_{}", std::process::id());
    let mut admin = pg.admin().await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\""))).execute(&mut admin).await.unwrap();
    let (base, _) = pg.admin_url().rsplit_once('/').unwrap();
    let url = format!("{base}/{name}");
    let home = tempfile::tempdir().unwrap();
    let server = serve(home.path(), &url, &[]);
    assert_eq!(server.get("/ready", None).await.0, 200);
    let err = server.stderr();
    assert!(err.contains("login role is a superuser"), "{err}");
    assert!(!err.contains("cloacina-test-admin"), "the database password never reaches the logs");
    server.stop();
}
