//! The task sandbox as an attacker meets it: a package of probes uploaded with nothing but a
//! write key, each task trying one way past the tenant wall and reporting `held` or `BREACH`.
//! Every probe must be held, on SQLite and on PostgreSQL (there with the host's network, so
//! the database port is in reach); ordinary tasks, python3 among them, still run.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::executions::{execute, find_dir, finished, pack, processes_left, upload};
use crate::harness::{Server, bootstrap_key, cli, stderr, stdout};

/// One script, one probe per argument. Each ends with status 0 whatever it finds, so every
/// probe runs and reports.
const PROBE_SH: &str = r#"
name=$1
breach() { echo "BREACH $name: $*"; }
held() { echo "held $name: $*"; }
case $name in
bootstrap-key)
    if cat "$SERVER_HOME/bootstrap-key" 2>/dev/null; then breach "read the god key"
    else held "no $SERVER_HOME/bootstrap-key"; fi ;;
server-proc)
    # The canary is handed over reversed, so that this task's own environment does not hold it.
    canary=$(echo "$CANARY_REVERSED" | rev)
    found=""
    for f in /proc/[0-9]*/environ /proc/[0-9]*/cmdline "/proc/$SERVER_PID/environ" "/proc/$SERVER_PID/cmdline"; do
        if tr '\0' '\n' < "$f" 2>/dev/null | grep -qE "$canary|postgres://|cloacinactl"; then found="$found $f"; fi
    done
    if [ -n "$found" ]; then breach "server secrets in$found"; else held "no server process or secret in /proc"; fi ;;
home-files)
    if cat "$SERVER_HOME/config.toml" 2>/dev/null; then breach "read config.toml"; fi
    if head -c 15 "$SERVER_HOME/cloacina.db" 2>/dev/null | grep -q SQLite; then breach "read the database file"; fi
    if (: >> "$SERVER_HOME/cloacina.db") 2>/dev/null; then breach "could write the database file"; fi
    if ls "$SERVER_HOME" 2>/dev/null; then breach "listed the server's home"; fi
    held "nothing of $SERVER_HOME in reach" ;;
other-package)
    if ls "$OTHER_PACKAGE" 2>/dev/null; then breach "listed another package"; fi
    if cat "$OTHER_PACKAGE/other.sh" 2>/dev/null; then breach "read another package"; fi
    if (echo 'echo pwned' >> "$OTHER_PACKAGE/other.sh") 2>/dev/null; then breach "wrote another package"; fi
    held "no other package in reach" ;;
own-package)
    if (echo 'echo pwned' >> /package/probe.sh) 2>/dev/null; then breach "wrote its own package"; fi
    if touch /package/new-file 2>/dev/null; then breach "added a file to its package"; fi
    held "its package is read-only" ;;
processes)
    n=$(ls -d /proc/[0-9]* | wc -l)
    if [ "$n" -gt 6 ]; then breach "sees $n processes"; else held "sees $n processes"; fi ;;
root)
    if [ "$(id -u)" = 0 ]; then breach "runs as uid 0"; else held "runs as uid $(id -u)"; fi ;;
linger)
    setsid sleep "$MARKER" &
    (sleep "$MARKER" &)
    nohup sleep "$MARKER" >/dev/null 2>&1 &
    held "left three detached sleeps behind" ;;
pg-login)
    tried=""
    for url in $(cat /proc/[0-9]*/cmdline /proc/[0-9]*/environ 2>/dev/null | tr '\0' '\n' | grep -o 'postgres://[^ ]*'); do
        if psql "$url" -c 'select 1' >/dev/null 2>&1; then breach "logged in with a URL found in /proc"; fi
        tried="$tried url"
    done
    out=$(psql -w -h "$PGHOST" -p "$PGPORT" -U "$PGUSER" -d "$PGDATABASE" -c 'select 1' 2>&1)
    if [ $? -eq 0 ]; then breach "logged in as $PGUSER without a password"
    else held "login as $PGUSER refused: $(echo "$out" | head -1)$tried"; fi ;;
esac
exit 0
"#;

const PROBES: [&str; 8] =
    ["bootstrap-key", "server-proc", "home-files", "other-package", "own-package", "processes", "root", "linger"];

async fn logs(server: &Server, tenant: &str, key: &str, id: &str, task: &str) -> String {
    let (status, body) =
        server.get(&format!("/v1/tenants/{tenant}/executions/{id}/tasks/{task}/logs"), Some(key)).await;
    assert_eq!(status, 200, "{body}");
    body["attempts"].as_array().unwrap().iter().map(|a| a["stdout"].as_str().unwrap_or_default()).collect()
}

/// Uploads a package for `other_tenant` (run once so that it is unpacked), then the probes
/// with `writer`, and checks every probe was held.
#[allow(clippy::too_many_arguments)]
async fn probes_are_held(
    home: &Path,
    server: &Server,
    tenant: &str,
    writer: &str,
    other_tenant: &str,
    other_key: &str,
    canary: &str,
    pg: Option<(&str, &str, &str, &str)>,
) {
    let other = pack(
        home,
        "other",
        "1.0.0",
        "[[workflow]]\nname = \"other\"\n[[workflow.task]]\nid = \"o\"\ncommand = [\"sh\", \"other.sh\"]\n",
        &[("other.sh", "echo other ran\n")],
    );
    assert_eq!(upload(server, other_tenant, other_key, &other).await.0, 201);
    let (_, ran, _) = execute(server, other_tenant, other_key, "other", json!({}), None).await;
    let ran_id = ran["execution_id"].as_str().unwrap().to_owned();
    assert_eq!(
        finished(server, other_tenant, other_key, &ran_id, Duration::from_secs(30)).await["status"],
        "Completed"
    );
    let other_folder =
        find_dir(&home.join(format!("tasks/packages/{other_tenant}")), "other-1.0.0").expect("unpacked other package");

    let marker = format!("303.{}", std::time::UNIX_EPOCH.elapsed().unwrap().subsec_nanos());
    let mut env = format!(
        "SERVER_HOME = \"{}\", SERVER_PID = \"{}\", CANARY_REVERSED = \"{reversed}\", OTHER_PACKAGE = \"{}\", MARKER = \"{marker}\"",
        home.join(".cloacina").display(),
        server.pid(),
        other_folder.display(),
        reversed = canary.chars().rev().collect::<String>()
    );
    let mut names: Vec<&str> = PROBES.to_vec();
    if let Some((host, port, user, db)) = pg {
        env.push_str(&format!(
            ", PGHOST = \"{host}\", PGPORT = \"{port}\", PGUSER = \"{user}\", PGDATABASE = \"{db}\""
        ));
        names.push("pg-login");
    }
    let mut workflows = String::from("[[workflow]]\nname = \"probes\"\n");
    for name in &names {
        workflows.push_str(&format!(
            "[[workflow.task]]\nid = \"{name}\"\ncommand = [\"sh\", \"probe.sh\", \"{name}\"]\nenv = {{ {env} }}\n"
        ));
    }
    workflows.push_str(
        "[[workflow]]\nname = \"py\"\n[[workflow.task]]\nid = \"py\"\ncommand = [\"python3\", \"task.py\"]\n",
    );
    let task_py = "import json, os\nctx = json.load(open(os.environ['CLOACINA_CONTEXT_FILE']))\n\
                   json.dump({'tripled': ctx['n'] * 3}, open(os.environ['CLOACINA_OUTPUT_FILE'], 'w'))\n";
    let probes = pack(home, "probes", "1.0.0", &workflows, &[("probe.sh", PROBE_SH), ("task.py", task_py)]);
    assert_eq!(upload(server, tenant, writer, &probes).await.0, 201);

    let (status, accepted, _) = execute(server, tenant, writer, "probes", json!({}), None).await;
    assert_eq!(status, 202, "{accepted}");
    let id = accepted["execution_id"].as_str().unwrap().to_owned();
    let e = finished(server, tenant, writer, &id, Duration::from_secs(60)).await;
    assert_eq!(e["status"], "Completed", "{e}");
    let mut report = Vec::new();
    for name in &names {
        let out = logs(server, tenant, writer, &id, name).await;
        assert!(!out.contains("BREACH"), "probe {name} got through: {out}");
        let held = out
            .lines()
            .find(|l| l.starts_with("held "))
            .unwrap_or_else(|| panic!("probe {name} did not report: {out}"));
        report.push(held.to_owned());
    }
    println!("hostile-task probes on {tenant}:\n  {}", report.join("\n  "));
    if pg.is_some() {
        let login = report.iter().find(|l| l.starts_with("held pg-login")).unwrap();
        assert!(login.contains("password"), "the database was reached and refused the login: {login}");
    }
    assert_eq!(processes_left(&marker).await, Vec::<String>::new(), "a detached process outlived its attempt");
    assert_eq!(std::fs::read_to_string(other_folder.join("other.sh")).unwrap(), "echo other ran\n");

    let (_, accepted, _) = execute(server, tenant, writer, "py", json!({"context": {"n": 14}}), None).await;
    let id = accepted["execution_id"].as_str().unwrap().to_owned();
    let e = finished(server, tenant, writer, &id, Duration::from_secs(60)).await;
    assert_eq!(e["status"], "Completed", "{e}");
    let (_, tasks) = server.get(&format!("/v1/tenants/{tenant}/executions/{id}/tasks"), Some(writer)).await;
    assert_eq!(tasks["tasks"][0]["output"], json!({"tripled": 42}), "python3 ran and its output came back: {tasks}");
    let left = std::fs::read_dir(home.join("tasks/attempts")).unwrap().count();
    assert_eq!(left, 0, "every scratch folder was removed after its attempt");
}

fn canary() -> String {
    format!("canary-{}", std::time::UNIX_EPOCH.elapsed().unwrap().as_nanos())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_write_keys_hostile_tasks_reach_nothing_of_the_server_on_sqlite() {
    let home = tempfile::tempdir().unwrap();
    let canary = canary();
    let server = Server::start(home.path(), &[], &[("CANARY_SECRET", canary.as_str())]);
    let god = bootstrap_key(home.path());
    let env = [("CLOACINA_SERVER", server.url.as_str()), ("CLOACINA_API_KEY", god.as_str())];
    // A profile holding a key in config.toml, as the seed guide leaves one.
    assert!(
        cli(
            home.path(),
            &["config", "profile", "set", "local", "--server", &server.url, "--api-key", &god, "--allow-raw-key"],
            &[]
        )
        .status
        .success()
    );
    let writer = stdout(&cli(home.path(), &["key", "create", "mal", "--role", "write", "--tenant", "public"], &env));
    probes_are_held(home.path(), &server, "public", &writer, "public", &writer, &canary, None).await;
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_write_keys_hostile_tasks_reach_nothing_of_the_server_or_another_tenant_on_postgres() {
    let db = cloacina_testpg::TestPg::shared().database().await;
    let url = reqwest::Url::parse(&db.url).unwrap();
    let home = tempfile::tempdir().unwrap();
    let canary = canary();
    let server = Server::start(
        home.path(),
        &["--database-url", &db.url, "--db-max-connections", "4", "--task-network", "host"],
        &[("CANARY_SECRET", canary.as_str())],
    );
    let god = bootstrap_key(home.path());
    let env = [("CLOACINA_SERVER", server.url.as_str()), ("CLOACINA_API_KEY", god.as_str())];
    for t in ["mal", "globex"] {
        assert!(cli(home.path(), &["tenant", "create", t], &env).status.success());
    }
    let writer = stdout(&cli(home.path(), &["key", "create", "w", "--role", "write", "--tenant", "mal"], &env));
    let globex = stdout(&cli(home.path(), &["key", "create", "g", "--role", "write", "--tenant", "globex"], &env));
    let port = url.port().unwrap().to_string();
    let pg = (url.host_str().unwrap(), port.as_str(), url.username(), url.path().trim_start_matches('/'));
    probes_are_held(home.path(), &server, "mal", &writer, "globex", &globex, &canary, Some(pg)).await;
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn without_bubblewrap_the_server_says_why_and_runs_no_tasks() {
    let home = tempfile::tempdir().unwrap();
    // No bwrap on this PATH.
    let server = Server::start(home.path(), &[], &[("PATH", "/nonexistent")]);
    let god = bootstrap_key(home.path());
    let said = std::fs::read_to_string(&server.stderr_file).unwrap();
    assert!(said.contains("cannot run tasks: bubblewrap is not installed"), "{said}");
    assert!(said.contains("This server runs no tasks"), "{said}");
    let file = pack(
        home.path(),
        "idle",
        "1.0.0",
        "[[workflow]]\nname = \"idle\"\n[[workflow.task]]\nid = \"t\"\ncommand = [\"true\"]\n",
        &[],
    );
    assert_eq!(upload(&server, "public", &god, &file).await.0, 201);
    let (_, accepted, _) = execute(&server, "public", &god, "idle", json!({}), None).await;
    let id = accepted["execution_id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, e) = server.get(&format!("/v1/tenants/public/executions/{id}"), Some(&god)).await;
    assert_eq!(e["status"], "Pending", "no task ran unsandboxed: {e}");
    server.stop();

    // With --unsafe-no-sandbox it runs, and production refuses the flag.
    let server = Server::start(home.path(), &["--unsafe-no-sandbox"], &[("PATH", "/nonexistent:/usr/bin:/bin")]);
    let e = finished(&server, "public", &god, &id, Duration::from_secs(30)).await;
    assert_eq!(e["status"], "Completed", "{e}");
    server.stop();
    let out = crate::harness::command(home.path())
        .args(["serve", "--bind", "127.0.0.1:0", "--unsafe-no-sandbox"])
        .env("CLOACINA_ENV", "production")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--unsafe-no-sandbox runs tenants' tasks unconfined"), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_task_cgroup_that_cannot_be_used_is_named_and_no_task_runs() {
    let home = tempfile::tempdir().unwrap();
    let not_a_cgroup = home.path().join("plain/tasks");
    let server = Server::start(home.path(), &["--task-cgroup", not_a_cgroup.to_str().unwrap()], &[]);
    let said = std::fs::read_to_string(&server.stderr_file).unwrap();
    assert!(
        said.contains(&format!("cannot run tasks: --task-cgroup {}", not_a_cgroup.display()))
            && said.contains("is not in a cgroup v2 hierarchy"),
        "{said}"
    );
    assert_eq!(server.get("/health", None).await.0, 200, "the API still serves");
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_name_no_filesystem_holds_is_refused_at_upload_and_by_validate() {
    let home = tempfile::tempdir().unwrap();
    let server = Server::start(home.path(), &[], &[]);
    let god = bootstrap_key(home.path());
    let manifest = "[package]\nname = \"long\"\nversion = \"1.0.0\"\n[[workflow]]\nname = \"w\"\n[[workflow.task]]\nid = \"t\"\ncommand = [\"true\"]\n";
    let mut b = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
    for (path, data) in
        [("long-1.0.0/package.toml".to_owned(), manifest), (format!("long-1.0.0/{}", "n".repeat(300)), "x")]
    {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, path, data.as_bytes()).unwrap();
    }
    let file = home.path().join("long-1.0.0.cloacina");
    std::fs::write(&file, b.into_inner().unwrap().finish().unwrap()).unwrap();
    let (status, body) = upload(&server, "public", &god, &file).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("longer than 255 bytes"), "{body}");
    let out = cli(home.path(), &["package", "validate", file.to_str().unwrap()], &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("longer than 255 bytes"), "{}", stderr(&out));
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_made_by_an_expiring_key_never_outlives_it() {
    let home = tempfile::tempdir().unwrap();
    let server = Server::start(home.path(), &[], &[]);
    let god = bootstrap_key(home.path());
    let soon = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let later = (chrono::Utc::now() + chrono::Duration::hours(2)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let create = |key: String, body: Value| {
        let url = server.url.clone();
        async move {
            let res = reqwest::Client::new()
                .post(format!("{url}/v1/auth/keys"))
                .bearer_auth(key)
                .json(&body)
                .send()
                .await
                .unwrap();
            (res.status().as_u16(), res.json::<Value>().await.unwrap())
        }
    };
    let (status, parent) = create(god.clone(), json!({"name": "hour", "expires_at": soon})).await;
    assert_eq!(status, 201, "{parent}");
    let parent_key = parent["key"].as_str().unwrap().to_owned();
    let (status, child) = create(parent_key.clone(), json!({"name": "child"})).await;
    assert_eq!(status, 201, "{child}");
    assert_eq!(child["expires_at"], parent["expires_at"], "a child with no expiry expires with its maker: {child}");
    let (status, body) = create(parent_key, json!({"name": "longer", "expires_at": later})).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid_field")), "{body}");
    assert!(body["error"].as_str().unwrap().contains("creating key's own expiry"), "{body}");
    server.stop();
}

/// The probes can fail: without the sandbox, the same package reads the god key as root.
#[tokio::test(flavor = "multi_thread")]
async fn the_probes_do_find_the_breaches_of_an_unsandboxed_server() {
    let home = tempfile::tempdir().unwrap();
    let server = Server::start(home.path(), &["--unsafe-no-sandbox"], &[]);
    let god = bootstrap_key(home.path());
    let env = format!("SERVER_HOME = \"{}\"", home.path().join(".cloacina").display());
    let mut workflows = String::from("[[workflow]]\nname = \"probes\"\n");
    for name in ["bootstrap-key", "home-files"] {
        workflows.push_str(&format!(
            "[[workflow.task]]\nid = \"{name}\"\ncommand = [\"sh\", \"probe.sh\", \"{name}\"]\nenv = {{ {env} }}\n"
        ));
    }
    let probes = pack(home.path(), "probes", "1.0.0", &workflows, &[("probe.sh", PROBE_SH)]);
    assert_eq!(upload(&server, "public", &god, &probes).await.0, 201);
    let (_, accepted, _) = execute(&server, "public", &god, "probes", json!({}), None).await;
    let id = accepted["execution_id"].as_str().unwrap().to_owned();
    assert_eq!(finished(&server, "public", &god, &id, Duration::from_secs(30)).await["status"], "Completed");
    for name in ["bootstrap-key", "home-files"] {
        let out = logs(&server, "public", &god, &id, name).await;
        assert!(out.contains(&format!("BREACH {name}")), "{name} should get through unsandboxed: {out}");
    }
    server.stop();
}
