//! Packages through the CLI alone, as docs/packages.md shows: scaffold, validate, pack, upload,
//! list; on SQLite and on PostgreSQL.

use serde_json::Value;

use crate::harness::{Server, bootstrap_key, cli, stderr, stdout};

/// Runs the documented steps against `server` with a write key of `tenant`; returns nothing,
/// asserts everything.
fn package_steps(home: &std::path::Path, server: &Server, writer: &str, reader: &str, tenant: &str) {
    let work = home.join("work");
    std::fs::create_dir_all(&work).unwrap();
    let run = |args: &[&str], key: &str| {
        let mut c = crate::harness::command(home);
        c.current_dir(&work).args(args).env("CLOACINA_SERVER", &server.url).env("CLOACINA_API_KEY", key);
        c.output().unwrap()
    };
    for args in [
        vec!["package", "new", "acme-etl"],
        vec!["package", "validate", "acme-etl"],
        vec!["package", "pack", "acme-etl"],
        vec!["package", "validate", "acme-etl-0.1.0.cloacina"],
    ] {
        let out = run(&args, writer);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    }
    let out = run(&["package", "upload", "acme-etl-0.1.0.cloacina"], writer);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(&format!("uploaded acme-etl 0.1.0 to tenant {tenant}")), "{}", stdout(&out));
    let out = run(&["package", "upload", "acme-etl-0.1.0.cloacina"], writer);
    assert!(stdout(&out).contains("nothing changed"), "{}", stdout(&out));
    let out = run(&["package", "upload", "acme-etl-0.1.0.cloacina"], reader);
    assert_eq!(out.status.code(), Some(4), "a read key may not upload: {}", stderr(&out));
    let out = run(&["-o", "json", "package", "list"], reader);
    let listed: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(listed["items"][0]["name"], "acme-etl", "{listed}");
    let out = run(&["-o", "json", "workflow", "list"], reader);
    let listed: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(listed["items"][0]["tasks"], serde_json::json!(["extract", "transform", "load"]), "{listed}");
    let out = run(&["workflow", "inspect", "pipeline"], reader);
    let drawn = stdout(&out);
    assert!(drawn.contains("3 tasks in 3 levels\n    1  extract\n    2  transform\n    3  load"), "{drawn}");
    let out = run(&["workflow", "pause", "pipeline"], writer);
    assert_eq!(stdout(&out), "workflow 'pipeline' is paused", "{}", stderr(&out));
    assert_eq!(run(&["workflow", "pause", "pipeline"], reader).status.code(), Some(4));
    let out = run(&["workflow", "resume", "pipeline"], writer);
    assert_eq!(stdout(&out), "workflow 'pipeline' is running");
    let out = run(&["-o", "id", "package", "inspect", "acme-etl"], reader);
    assert_eq!(stdout(&out), "0.1.0", "{}", stderr(&out));
    // What `package list -o id` prints, inspect and delete take back.
    let id = stdout(&run(&["-o", "id", "package", "list"], reader));
    assert_eq!(id, "acme-etl@0.1.0");
    assert_eq!(stdout(&run(&["-o", "id", "package", "inspect", &id], reader)), "0.1.0");
    assert_eq!(run(&["package", "inspect", "acme-etl@9.9.9"], reader).status.code(), Some(3));
    assert_eq!(run(&["package", "delete", "acme-etl"], writer).status.code(), Some(1), "which version?");
    assert_eq!(run(&["package", "inspect", "nothing-here"], reader).status.code(), Some(3));
    let out = run(&["package", "delete", &id], writer);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(run(&["workflow", "inspect", "pipeline"], reader).status.code(), Some(3), "gone with its package");
    assert_eq!(run(&["package", "delete", "acme-etl", "0.1.0"], writer).status.code(), Some(3));
    // A broken package is refused locally, naming the field.
    let manifest = work.join("acme-etl/package.toml");
    let text =
        std::fs::read_to_string(&manifest).unwrap().replace("depends_on = [\"extract\"]", "depends_on = [\"nope\"]");
    std::fs::write(&manifest, text).unwrap();
    let out = run(&["package", "pack", "acme-etl"], writer);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("workflow[0].task[1].depends_on[0]"), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn packages_through_the_cli_on_sqlite() {
    let home = tempfile::tempdir().unwrap();
    let server = Server::start(home.path(), &[], &[]);
    let god = bootstrap_key(home.path());
    let env = [("CLOACINA_SERVER", server.url.as_str()), ("CLOACINA_API_KEY", god.as_str())];
    let writer = stdout(&cli(home.path(), &["key", "create", "ci", "--role", "write", "--tenant", "public"], &env));
    let reader = stdout(&cli(home.path(), &["key", "create", "dash", "--role", "read", "--tenant", "public"], &env));
    package_steps(home.path(), &server, &writer, &reader, "public");
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn packages_through_the_cli_on_postgres() {
    let db = cloacina_testpg::TestPg::shared().database().await;
    let home = tempfile::tempdir().unwrap();
    let server = Server::start(home.path(), &["--database-url", &db.url, "--db-max-connections", "4"], &[]);
    let god = bootstrap_key(home.path());
    let env = [("CLOACINA_SERVER", server.url.as_str()), ("CLOACINA_API_KEY", god.as_str())];
    assert!(cli(home.path(), &["tenant", "create", "acme"], &env).status.success());
    let writer = stdout(&cli(home.path(), &["key", "create", "ci", "--role", "write", "--tenant", "acme"], &env));
    let reader = stdout(&cli(home.path(), &["key", "create", "dash", "--role", "read", "--tenant", "acme"], &env));
    package_steps(home.path(), &server, &writer, &reader, "acme");
    server.stop();
}
