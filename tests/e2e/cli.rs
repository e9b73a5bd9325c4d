//! The client side of `cloacinactl`: keys, profiles, key references, output formats and the
//! documented exit codes, against a real server.

use serde_json::Value;

use crate::harness::{Server, bootstrap_key, cli, stderr, stdout};

fn json(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(out)))
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_through_the_cli_with_every_key_reference_form() {
    let home = tempfile::tempdir().unwrap();
    let server = Server::start(home.path(), &[], &[]);
    let admin = bootstrap_key(home.path());
    let h = home.path();
    let s = server.url.as_str();

    // A raw key, as seed 002 passes it.
    let out = cli(
        h,
        &["key", "create", "acme-ci", "--role", "write", "--tenant", "public", "--server", s, "--api-key", &admin],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let writer = stdout(&out);
    assert!(writer.starts_with("clk_") && !writer.contains('\n'), "the key alone on stdout: {writer}");
    assert!(stderr(&out).contains("shown exactly once"));

    // env:VAR, file:PATH, and CLOACINA_API_KEY.
    let key_file = h.join("admin.key");
    std::fs::write(&key_file, format!("{admin}\n")).unwrap();
    let file_ref = format!("file:{}", key_file.display());
    let out = cli(h, &["key", "create", "monitor", "--server", s, "--api-key", &file_ref, "-o", "json"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let monitor = json(&out);
    assert_eq!(monitor["permissions"], "read", "a tenant key defaults to read");
    assert_eq!(monitor["tenant_id"], "public");
    let out = cli(
        h,
        &["key", "create", "second-admin", "--admin", "--server", s, "--api-key", "env:ADMIN_KEY", "-o", "id"],
        &[("ADMIN_KEY", &admin)],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).starts_with("clk_"), "-o id prints the key itself: {}", stdout(&out));

    let env = [("CLOACINA_SERVER", s), ("CLOACINA_API_KEY", admin.as_str())];
    let out = cli(h, &["key", "list", "-o", "json"], &env);
    let names: Vec<_> =
        json(&out)["items"].as_array().unwrap().iter().map(|k| k["name"].as_str().unwrap().to_owned()).collect();
    assert_eq!(names, ["bootstrap-admin", "acme-ci", "monitor", "second-admin"]);
    let out = cli(h, &["key", "list"], &env);
    let table = stdout(&out);
    assert!(table.starts_with("ID ") && table.contains("acme-ci") && table.contains("write"), "{table}");
    let out = cli(h, &["key", "list", "-o", "yaml"], &env);
    assert!(stdout(&out).contains("name: monitor"), "{}", stdout(&out));
    let out = cli(h, &["key", "list", "-o", "id"], &env);
    assert_eq!(stdout(&out).lines().count(), 4);
    let second_id = stdout(&out).lines().last().unwrap().to_owned();

    let out = cli(h, &["key", "revoke", &second_id], &env);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("revoked key {second_id}"));
    let out = cli(h, &["key", "revoke", &second_id], &env);
    assert_eq!(out.status.code(), Some(3), "already revoked is not found: {}", stderr(&out));

    // A read key is the key of a tenant: listing keys needs that tenant's admin role.
    let out = cli(h, &["key", "list", "--server", s, "--api-key", monitor["key"].as_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("403"), "{}", stderr(&out));
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_admin_key_lists_its_own_tenant_without_being_told() {
    let home = tempfile::tempdir().unwrap();
    let server = Server::start(home.path(), &[], &[]);
    let admin = bootstrap_key(home.path());
    let h = home.path();
    let env = [("CLOACINA_SERVER", server.url.as_str()), ("CLOACINA_API_KEY", admin.as_str())];
    let out = cli(h, &["key", "create", "public-admin", "--role", "admin"], &env);
    let tenant_admin = stdout(&out);
    let out = cli(
        h,
        &["key", "list", "-o", "json"],
        &[("CLOACINA_SERVER", server.url.as_str()), ("CLOACINA_API_KEY", &tenant_admin)],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let keys = json(&out)["items"].as_array().unwrap().clone();
    assert_eq!(keys.len(), 1, "only the tenant's keys, not the admin keys");
    assert_eq!(keys[0]["tenant_id"], "public");
    let out = cli(
        h,
        &["key", "create", "god", "--admin"],
        &[("CLOACINA_SERVER", server.url.as_str()), ("CLOACINA_API_KEY", &tenant_admin)],
    );
    assert_eq!(out.status.code(), Some(4), "a tenant admin cannot mint an admin key: {}", stderr(&out));
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn profiles_resolve_server_key_and_tenant_with_flags_winning() {
    let home = tempfile::tempdir().unwrap();
    let server = Server::start(home.path(), &[], &[]);
    let admin = bootstrap_key(home.path());
    let h = home.path();
    let s = server.url.as_str();
    let ok = |out: std::process::Output| {
        assert!(out.status.success(), "{}", stderr(&out));
        out
    };
    ok(cli(h, &["config", "profile", "set", "admin", "--server", s, "--api-key", "env:CLOACINA_ADMIN_KEY"], &[]));
    ok(cli(
        h,
        &[
            "config",
            "profile",
            "set",
            "broken",
            "--server",
            "http://127.0.0.1:1",
            "--api-key",
            "env:CLOACINA_ADMIN_KEY",
        ],
        &[],
    ));
    ok(cli(h, &["config", "profile", "use", "admin"], &[]));
    let config = std::fs::read_to_string(h.join(".cloacina/config.toml")).unwrap();
    assert!(config.contains("default_profile = \"admin\"") && config.contains("[profiles.admin]"), "{config}");
    assert!(!config.contains(&admin));

    let key_env = [("CLOACINA_ADMIN_KEY", admin.as_str())];
    let out = ok(cli(h, &["key", "list", "-o", "id"], &key_env));
    assert_eq!(stdout(&out).lines().count(), 1);
    let out = cli(h, &["--profile", "broken", "key", "list"], &key_env);
    assert_eq!(out.status.code(), Some(2), "unreachable server: {}", stderr(&out));
    assert!(stderr(&out).contains("cannot reach the server"), "{}", stderr(&out));
    ok(cli(h, &["--profile", "broken", "--server", s, "key", "list"], &key_env));
    let out = cli(h, &["--profile", "nope", "key", "list"], &key_env);
    assert_eq!(out.status.code(), Some(1));
    let out = cli(h, &["key", "list"], &[]);
    assert_eq!(out.status.code(), Some(1), "the profile's env: reference is unset: {}", stderr(&out));
    assert!(stderr(&out).contains("CLOACINA_ADMIN_KEY"));

    let out = ok(cli(h, &["config", "profile", "list"], &[]));
    assert!(stdout(&out).contains("* ") || stdout(&out).contains("*  admin"), "{}", stdout(&out));
    ok(cli(h, &["config", "profile", "delete", "broken"], &[]));
    let out = ok(cli(h, &["config", "profile", "list", "-o", "json"], &[]));
    assert_eq!(json(&out).as_array().unwrap().len(), 1);
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn config_masks_secrets_and_never_replaces_a_broken_file() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let url = "postgresql://cloacina:secret@db.example.com:5432/cloacina";
    let out = cli(h, &["config", "set", "database_url", url], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = cli(h, &["config", "get", "database_url"], &[]);
    assert_eq!(stdout(&out), "postgresql://cloacina:****@db.example.com:5432/cloacina");
    let out = cli(h, &["config", "get", "database_url", "--reveal"], &[]);
    assert_eq!(stdout(&out), url);
    let out = cli(h, &["config", "list"], &[]);
    assert!(!stdout(&out).contains("secret"), "{}", stdout(&out));
    let out = cli(h, &["config", "set", "colour", "blue"], &[]);
    assert_eq!(out.status.code(), Some(1));

    let path = h.join(".cloacina/config.toml");
    std::fs::write(&path, "database_url = \"unterminated\n").unwrap();
    for args in [&["config", "list"][..], &["config", "set", "database_url", "sqlite::memory:"][..]] {
        let out = cli(h, args, &[]);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(stderr(&out).contains("config.toml is not valid"), "{}", stderr(&out));
    }
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "database_url = \"unterminated\n");
    let out = cli(h, &["serve", "--bind", "127.0.0.1:0"], &[]);
    assert_eq!(out.status.code(), Some(1), "the server refuses a broken config too");
}

#[test]
fn usage_errors_exit_1_and_help_exits_0() {
    let home = tempfile::tempdir().unwrap();
    assert_eq!(cli(home.path(), &["frobnicate"], &[]).status.code(), Some(1));
    assert_eq!(cli(home.path(), &["key", "create"], &[]).status.code(), Some(1));
    assert_eq!(cli(home.path(), &["key", "list", "-o", "xml"], &[]).status.code(), Some(1));
    assert_eq!(cli(home.path(), &["--version"], &[]).status.code(), Some(0));
    let out = cli(home.path(), &["completions", "bash"], &[]);
    assert!(out.status.success() && stdout(&out).contains("cloacinactl"));
}

#[tokio::test(flavor = "multi_thread")]
async fn expiring_keys_stop_working_on_time_and_last_use_survives_a_restart() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let server = Server::start(h, &[], &[]);
    let admin = bootstrap_key(h);
    let env = [("CLOACINA_SERVER", server.url.as_str()), ("CLOACINA_API_KEY", admin.as_str())];
    let soon = (chrono::Utc::now() + chrono::Duration::milliseconds(1500)).to_rfc3339();
    let out = cli(h, &["key", "create", "short-lived", "--role", "read", "--expires-at", &soon], &env);
    assert!(out.status.success(), "{}", stderr(&out));
    let short = stdout(&out);
    assert_eq!(server.get("/v1/auth/whoami", Some(&short)).await.0, 200);
    tokio::time::sleep(std::time::Duration::from_millis(1800)).await;
    let (status, body) = server.get("/v1/auth/whoami", Some(&short)).await;
    assert_eq!(status, 401, "an expired key is refused although its verdict was cached: {body}");
    let out = cli(h, &["key", "create", "past", "--expires-at", "2001-01-01T00:00:00Z"], &env);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("expires_at"), "{}", stderr(&out));

    // last_used_at is written off the request path, and at the latest on shutdown.
    server.stop();
    let server = Server::start(h, &[], &[]);
    let env = [("CLOACINA_SERVER", server.url.as_str()), ("CLOACINA_API_KEY", admin.as_str())];
    let out = cli(h, &["key", "list", "-o", "json"], &env);
    let keys = json(&out)["items"].as_array().unwrap().clone();
    let used = |name: &str| keys.iter().find(|k| k["name"] == name).unwrap().get("last_used_at").is_some();
    assert!(used("bootstrap-admin") && used("short-lived"), "{keys:?}");
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_error_exits_5_and_prints_the_envelope_message() {
    let app = axum::Router::new().fallback(|| async {
        (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({"error": "the database is unavailable", "code": "database_unavailable"})),
        )
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let home = tempfile::tempdir().unwrap();
    let h = home.path().to_owned();
    let out = tokio::task::spawn_blocking(move || {
        cli(&h, &["key", "list", "--tenant", "public", "--server", &url, "--api-key", "clk_whatever_key_text"], &[])
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert_eq!(stderr(&out), "error: the database is unavailable (HTTP 503, database_unavailable)");
}
