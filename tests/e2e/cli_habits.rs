//! The habits of kubectl and gh users, through the real binary: a closed pipe ends a command
//! quietly, a silent server cannot hang it, a server that is not Cloacina's is named as such,
//! idempotent requests are retried through 503s, a profile stores only what its command line
//! gave, `key create -o id` prints the key, and ids round-trip (prefixes, `--latest`, key
//! names, replays said as such).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::executions::{execute, pack, upload};
use crate::harness::{Server, bash, bootstrap_key, cli, command, stderr, stdout};

#[tokio::test(flavor = "multi_thread")]
async fn a_closed_pipe_ends_every_command_quietly_with_the_shells_status() {
    let home = tempfile::tempdir().unwrap();
    let server = Server::start(home.path(), &[], &[]);
    let env = [("CLOACINA_SERVER", server.url.as_str()), ("CLOACINA_API_KEY", "file:~/.cloacina/bootstrap-key")];
    // The reader closes its end at once and the command writes after its HTTP call: every
    // write meets a closed pipe.
    for cmd in
        ["key list", "key list -o id", "key list -o json", "key list -o yaml", "execution list", "completions bash"]
    {
        let script = format!("cloacinactl {cmd} | (exec 0<&-; sleep 1); echo \"status ${{PIPESTATUS[0]}}\" >&2");
        let out = bash(home.path(), &script, &env);
        println!("`cloacinactl {cmd} | <closed>`: {}", stderr(&out));
        assert_eq!(stderr(&out), "status 141", "`{cmd}`: quiet, and 128 + SIGPIPE as a shell gives any tool");
    }
    // The usual capture: the first id, the rest of the output unread.
    let out = bash(home.path(), "ID=$(cloacinactl key list -o id | head -1); echo \"$ID\"", &env);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(uuid::Uuid::parse_str(&stdout(&out)).is_ok(), "{}", stdout(&out));
    server.stop();
}

/// A server that takes connections and never answers.
fn silent() -> (String, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let held = std::thread::spawn(move || {
        let mut open = Vec::new();
        for conn in listener.incoming().take(4) {
            open.push(conn);
        }
        std::thread::sleep(Duration::from_secs(30));
    });
    (url, held)
}

/// A server answering each request with the next of `answers` (status, content type, body),
/// the last one again once they run out; counts the requests.
fn scripted(answers: Vec<(u16, &'static str, &'static str)>) -> (String, Arc<AtomicUsize>, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (count, lines) = (Arc::new(AtomicUsize::new(0)), Arc::new(Mutex::new(Vec::new())));
    let (c, l) = (count.clone(), lines.clone());
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut buf = [0u8; 8192];
            let n = conn.read(&mut buf).unwrap_or(0);
            let request = String::from_utf8_lossy(&buf[..n]).lines().next().unwrap_or_default().to_owned();
            l.lock().unwrap().push(request);
            let i = c.fetch_add(1, Ordering::SeqCst);
            let (status, kind, body) = answers[i.min(answers.len() - 1)];
            let _ = write!(
                conn,
                "HTTP/1.1 {status} X\r\ncontent-type: {kind}\r\ncontent-length: {}\r\nretry-after: 0\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (url, count, lines)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_silent_server_times_out_a_foreign_one_is_named_and_503s_are_retried_for_idempotent_requests() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let key = [("CLOACINA_API_KEY", "clk_not_a_real_key")];

    let (url, _held) = silent();
    let started = Instant::now();
    let out = cli(h, &["--server", &url, "--tenant", "public", "--request-timeout", "2s", "workflow", "list"], &key);
    let took = started.elapsed();
    println!("silent server, --request-timeout 2s: exit {:?} after {took:?}: {}", out.status.code(), stderr(&out));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no answer within 2s (--request-timeout)"), "{}", stderr(&out));
    assert!(took < Duration::from_secs(20), "bounded by the timeout, not retried: {took:?}");
    let out = cli(h, &["--server", &url, "--tenant", "public", "--request-timeout", "0", "workflow", "list"], &key);
    assert_eq!(out.status.code(), Some(1), "a zero timeout is refused: {}", stderr(&out));
    assert!(stderr(&out).contains("--request-timeout"), "{}", stderr(&out));

    // Where the URL came from, and what to do about it.
    let out = cli(h, &["workflow", "list"], &[("CLOACINA_SERVER", "http://127.0.0.1:1"), key[0]]);
    println!("refused: {}", stderr(&out));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("(from CLOACINA_SERVER)") && stderr(&out).contains("`cloacinactl serve`"));
    let out = cli(h, &["--server", "http://127.0.0.1:1", "workflow", "list"], &key);
    assert!(stderr(&out).contains("(from --server)"), "{}", stderr(&out));
    let out = cli(h, &["config", "profile", "set", "far", "--server", "http://127.0.0.1:1"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = cli(h, &["--profile", "far", "workflow", "list"], &key);
    assert!(stderr(&out).contains("(from profile 'far')"), "{}", stderr(&out));

    // An HTML 404 from something else is not "not found".
    let (url, _, _) = scripted(vec![(404, "text/html", "<html>nginx</html>")]);
    let out = cli(h, &["--server", &url, "--tenant", "public", "workflow", "list"], &key);
    println!("foreign: {}", stderr(&out));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("answered HTTP 404 with a text/html body, not Cloacina's API"), "{}", stderr(&out));

    // A 429 says how long to wait.
    let (url, _, _) =
        scripted(vec![(429, "application/json", r#"{"error":"too many requests","code":"rate_limited"}"#)]);
    let out = cli(h, &["--server", &url, "--tenant", "public", "workflow", "list"], &key);
    assert_eq!(out.status.code(), Some(5));
    assert!(stderr(&out).contains("too many requests; try again in 1s (HTTP 429, rate_limited)"), "{}", stderr(&out));

    // 503, 503, then the answer: a GET is sent again and succeeds.
    let (url, count, _) = scripted(vec![
        (503, "application/json", r#"{"error":"busy","code":"unavailable"}"#),
        (503, "application/json", r#"{"error":"busy","code":"unavailable"}"#),
        (200, "application/json", r#"{"items":[],"total":0}"#),
    ]);
    let out = cli(h, &["--server", &url, "--tenant", "public", "workflow", "list", "-o", "json"], &key);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(count.load(Ordering::SeqCst), 3, "two retries");
    // A POST without an idempotency key is sent once; with one, it is retried.
    let (url, count, _) = scripted(vec![(503, "application/json", r#"{"error":"busy","code":"unavailable"}"#)]);
    let out = cli(h, &["--server", &url, "--tenant", "public", "workflow", "run", "w"], &key);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert_eq!(count.load(Ordering::SeqCst), 1, "a plain POST is never sent twice");
    let (url, count, _) = scripted(vec![(503, "application/json", r#"{"error":"busy","code":"unavailable"}"#)]);
    let out =
        cli(h, &["--server", &url, "--tenant", "public", "workflow", "run", "w", "--idempotency-key", "k1"], &key);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert_eq!(count.load(Ordering::SeqCst), 4, "a keyed POST is idempotent: 4 attempts");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_profile_keeps_only_its_own_flags_and_keys_are_read_where_the_user_keeps_them() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let server = Server::start(h, &[], &[]);
    let god = bootstrap_key(h);
    let s = server.url.as_str();
    let config = || std::fs::read_to_string(h.join(".cloacina/config.toml")).unwrap_or_default();

    // The shell holds a raw key and a tenant; the profile is given a server only.
    let shell = [("CLOACINA_API_KEY", god.as_str()), ("CLOACINA_TENANT", "public")];
    let out = cli(h, &["config", "profile", "set", "ci", "--server", s], &shell);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!config().contains(&god) && !config().contains("api_key") && !config().contains("tenant"), "{}", config());
    let out = cli(h, &["config", "profile", "set", "empty"], &shell);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("CLOACINA_* variables are not stored"), "{}", stderr(&out));

    // A raw key on the command line is stored only when asked for.
    let out = cli(h, &["config", "profile", "set", "ci", "--api-key", &god], &[]);
    assert_eq!(out.status.code(), Some(1), "no terminal, no --allow-raw-key");
    assert!(stderr(&out).contains("--allow-raw-key") && !stderr(&out).contains(&god), "{}", stderr(&out));
    assert!(!config().contains(&god));
    let out = cli(h, &["config", "profile", "set", "ci", "--api-key", "file:~/.cloacina/bootstrap-key"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(config().contains("api_key = \"file:~/.cloacina/bootstrap-key\""), "{}", config());
    let out = cli(h, &["--profile", "ci", "key", "list", "-o", "id"], &[]);
    assert!(out.status.success(), "file:~/ is the home folder: {}", stderr(&out));
    let out = cli(h, &["config", "profile", "set", "raw", "--server", s, "--api-key", &god, "--allow-raw-key"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(config().contains(&god));

    // Empty variables are unset: the profile's key and server are used.
    let empty = [("CLOACINA_API_KEY", ""), ("CLOACINA_SERVER", ""), ("CLOACINA_TENANT", "")];
    let out = cli(h, &["--profile", "ci", "key", "list", "-o", "id"], &empty);
    assert!(out.status.success(), "{}", stderr(&out));

    // --api-key - reads the key from stdin, out of `ps`.
    let mut child = command(h)
        .args(["--server", s, "--api-key", "-", "key", "list", "-o", "id"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{god}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));

    // `key create -o id` prints the key, which works.
    let out = cli(
        h,
        &["--profile", "ci", "key", "create", "scripted", "--role", "read", "--tenant", "public", "-o", "id"],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let key = stdout(&out);
    assert!(key.starts_with("clk_"), "the key itself: {key}");
    let out = cli(h, &["--server", s, "--api-key", "env:NEW_KEY", "workflow", "list"], &[("NEW_KEY", &key)]);
    assert!(out.status.success(), "{}", stderr(&out));

    // Who am I, where do I talk to, which releases.
    let as_new = [("CLOACINA_SERVER", s), ("CLOACINA_API_KEY", key.as_str())];
    let out = cli(h, &["auth", "whoami"], &as_new);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("key      scripted (") && stdout(&out).contains("role     read"), "{}", stdout(&out));
    let out = cli(h, &["auth", "status"], &as_new);
    println!("$ cloacinactl auth status\n{}", stdout(&out));
    let release = env!("CARGO_PKG_VERSION");
    assert!(stdout(&out).contains(&format!("server   {s} (from CLOACINA_SERVER)")), "{}", stdout(&out));
    assert!(stdout(&out).contains(&format!("version  server {release}, client {release}")), "{}", stdout(&out));
    assert!(stdout(&out).contains("tenant   public"), "{}", stdout(&out));
    let out = cli(h, &["version", "-o", "json"], &[("CLOACINA_SERVER", s)]);
    assert!(out.status.success(), "no key needed: {}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v, json!({"client": release, "server": {"url": s, "version": release}}));
    let out = cli(h, &["version"], &[("CLOACINA_SERVER", "http://127.0.0.1:1")]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("client  {release}"));
    assert!(stderr(&out).contains("server: cannot reach"), "{}", stderr(&out));
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn ids_round_trip_prefixes_latest_key_names_and_replays() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let server = Server::start(h, &[], &[]);
    let god = bootstrap_key(h);
    let env = [("CLOACINA_SERVER", server.url.as_str()), ("CLOACINA_API_KEY", god.as_str())];
    let run = |args: &[&str]| {
        let out = cli(h, args, &env);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        stdout(&out)
    };
    let workflows = "[[workflow]]\nname = \"a\"\n[[workflow.task]]\nid = \"t\"\ncommand = [\"true\"]\n\
                     [[workflow]]\nname = \"b\"\n[[workflow.task]]\nid = \"t\"\ncommand = [\"true\"]\n";
    // An empty list says so; `ls` is `list`.
    assert_eq!(run(&["execution", "ls"]), "no executions");
    assert_eq!(run(&["execution", "ls", "--workflow", "a"]), "no executions match");
    assert!(run(&["workflow", "ls"]).starts_with("no workflows"));
    assert_eq!(run(&["package", "ls"]), "no packages");
    assert_eq!(run(&["trigger", "ls"]), "no triggers");
    let package = pack(h, "ids", "1.0.0", workflows, &[]);
    assert_eq!(upload(&server, "public", &god, &package).await.0, 201);
    let first =
        execute(&server, "public", &god, "a", json!({}), None).await.1["execution_id"].as_str().unwrap().to_owned();
    let second =
        execute(&server, "public", &god, "b", json!({}), None).await.1["execution_id"].as_str().unwrap().to_owned();

    // What `-o id` prints, every verb takes back; so does its first 8 characters.
    let listed = run(&["execution", "list", "-o", "id"]);
    assert_eq!(listed.lines().collect::<Vec<_>>(), [second.as_str(), first.as_str()]);
    let prefix = &first[..8];
    assert_eq!(run(&["execution", "status", prefix, "-o", "id"]), first);
    assert!(run(&["execution", "tasks", prefix]).contains('t'));
    assert_eq!(run(&["execution", "status", "--latest", "-o", "id"]), second);
    // One verb to show one, on every noun; the older verbs stay as aliases.
    assert_eq!(run(&["execution", "get", prefix, "-o", "id"]), first);
    assert_eq!(run(&["workflow", "get", "a", "-o", "id"]), "a");
    assert_eq!(run(&["package", "get", "ids", "-o", "id"]), "1.0.0");
    assert_eq!(run(&["tenant", "get", "public", "-o", "id"]), "public");
    assert_eq!(run(&["execution", "list", "--all", "-o", "id"]).lines().count(), 2);
    assert_eq!(cli(h, &["execution", "list", "--all", "--limit", "5"], &env).status.code(), Some(1));
    let table = run(&["execution", "list"]);
    assert!(table.lines().next().unwrap().contains(" AGE ") && table.ends_with("2 of 2 shown"), "{table}");
    assert_eq!(run(&["execution", "status", "--latest", "--workflow", "a", "-o", "id"]), first);
    let out = cli(h, &["execution", "status", &first[..6]], &env);
    assert_eq!(out.status.code(), Some(1), "too short: {}", stderr(&out));
    let out = cli(h, &["execution", "status", "ffffffff"], &env);
    assert_eq!(out.status.code(), Some(3), "matches nothing: {}", stderr(&out));
    let out = cli(h, &["execution", "status", "--latest", "--workflow", "nope"], &env);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));

    // Keys: revoked by name, and by what `key list -o id` printed.
    run(&["key", "create", "ci-deploy", "--role", "write", "--tenant", "public"]);
    run(&["key", "create", "monitor", "--role", "read", "--tenant", "public"]);
    let out = cli(h, &["key", "create", "monitor", "--tenant", "public"], &env);
    println!("a second 'monitor': {}", stderr(&out));
    assert_eq!(out.status.code(), Some(1), "names are unique in a tenant");
    assert!(stderr(&out).contains("HTTP 409, key_name_taken"), "{}", stderr(&out));
    assert!(run(&["key", "revoke", "ci-deploy"]).contains("revoked key"));
    let keys: serde_json::Value = serde_json::from_str(&run(&["key", "list", "-o", "json"])).unwrap();
    let monitor = keys["items"].as_array().unwrap().iter().find(|k| k["name"] == "monitor").unwrap().clone();
    assert_eq!(keys["items"].as_array().unwrap().iter().find(|k| k["name"] == "ci-deploy").unwrap()["revoked"], true);
    run(&["key", "revoke", &monitor["id"].as_str().unwrap()[..8]]);
    let out = cli(h, &["key", "revoke", "monitor"], &env);
    assert_eq!(out.status.code(), Some(3), "no active key of that name is left: {}", stderr(&out));
    run(&["key", "create", "monitor", "--tenant", "public"]);

    // The context from stdin.
    let mut child = command(h)
        .args(["--server", &server.url, "--api-key", &god, "workflow", "run", "b", "--context", "@-", "-o", "json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{{\"from\": \"stdin\"}}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let id =
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["execution_id"].as_str().unwrap().to_owned();
    let shown: serde_json::Value = serde_json::from_str(&run(&["execution", "status", &id, "-o", "json"])).unwrap();
    assert_eq!(shown["context"], json!({"from": "stdin"}));

    // Colour only when asked for or on a terminal, and never under NO_COLOR.
    let coloured = run(&["key", "list", "--color", "always"]);
    assert!(coloured.contains("\x1b[32mactive\x1b[0m") && coloured.contains("\x1b[31mrevoked\x1b[0m"), "{coloured}");
    assert!(!run(&["key", "list"]).contains('\x1b'), "not a terminal: no colour");
    let out = cli(h, &["key", "list", "--color", "auto"], &[env[0], env[1], ("NO_COLOR", "1")]);
    assert!(!stdout(&out).contains('\x1b'));
    let plain: Vec<usize> = run(&["key", "list"]).lines().map(|l| l.find("STATUS").unwrap_or(0)).take(1).collect();
    let painted_header = coloured.lines().next().unwrap().find("STATUS").unwrap();
    assert_eq!(plain, [painted_header], "columns stay aligned");

    // Completions ask the server, with the environment's server and key (fish's protocol:
    // the words so far, then the word being completed).
    let complete = |words: &[&str]| {
        let out = cli(h, &[&["--"], words].concat(), &[env[0], env[1], ("COMPLETE", "fish")]);
        assert!(out.status.success(), "{}", stderr(&out));
        // Values only: with nothing typed yet, the flags are offered too.
        stdout(&out)
            .lines()
            .map(|l| l.split('\t').next().unwrap_or_default().to_owned())
            .filter(|w| !w.starts_with('-'))
            .collect::<Vec<_>>()
    };
    assert_eq!(complete(&["cloacinactl", "workflow", "get", ""]), ["a", "b"]);
    assert_eq!(complete(&["cloacinactl", "workflow", "run", "b"]), ["b"]);
    let ids = complete(&["cloacinactl", "execution", "logs", ""]);
    assert!(ids.contains(&first) && ids.contains(&second), "{ids:?}");
    assert_eq!(complete(&["cloacinactl", "execution", "list", "--status", "Fa"]), ["Failed"]);
    assert!(complete(&["cloacinactl", "-o", ""]).contains(&"yaml".to_owned()), "enum values");

    // A replayed run says so.
    let fresh = run(&["workflow", "run", "a", "--idempotency-key", "deploy-7"]);
    assert!(fresh.contains("accepted") && !fresh.contains("replayed"), "{fresh}");
    let again = run(&["workflow", "run", "a", "--idempotency-key", "deploy-7"]);
    println!("{fresh}\n{again}");
    assert!(again.contains("replayed"), "{again}");
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn workflow_inspect_and_package_validate_draw_the_graph_by_levels() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let server = Server::start(h, &[], &[]);
    let god = bootstrap_key(h);
    let env = [("CLOACINA_SERVER", server.url.as_str()), ("CLOACINA_API_KEY", god.as_str())];
    let mut wide = String::from("[[workflow]]\nname = \"wide\"\n");
    for i in 1..=60 {
        wide.push_str(&format!("[[workflow.task]]\nid = \"t{i:02}\"\ncommand = [\"true\"]\n"));
    }
    let diamond = "[[workflow]]\nname = \"diamond\"\n\
        [[workflow.task]]\nid = \"extract\"\ncommand = [\"sh\", \"extract.sh\"]\ntimeout = \"10m\"\n\
        [[workflow.task]]\nid = \"transform-a\"\ncommand = [\"sh\", \"a.sh\"]\ndepends_on = [\"extract\"]\n\
        retries = 2\nenv = { REGION = \"eu\", MODE = \"fast\" }\n\
        [[workflow.task]]\nid = \"transform-b\"\ncommand = [\"sh\", \"b.sh\"]\ndepends_on = [\"extract\"]\n\
        [[workflow.task]]\nid = \"load\"\ncommand = [\"sh\", \"load.sh\"]\ndepends_on = [\"transform-a\", \"transform-b\"]\n";
    let scripts = [("extract.sh", "true\n"), ("a.sh", "true\n"), ("b.sh", "true\n"), ("load.sh", "true\n")];
    let package = pack(h, "graphs", "1.0.0", &format!("{wide}{diamond}"), &scripts);
    assert_eq!(upload(&server, "public", &god, &package).await.0, 201);

    let out = cli(h, &["workflow", "inspect", "wide"], &env);
    assert!(out.status.success(), "{}", stderr(&out));
    let drawn = stdout(&out);
    println!("$ cloacinactl workflow inspect wide\n{drawn}\n");
    assert!(drawn.contains("60 tasks in 1 level (tasks on one level run side by side)"), "{drawn}");
    assert!(drawn.contains("    1  t01  t02  t03") && !drawn.contains('→'), "{drawn}");
    assert!(drawn.contains("  t60   -      true     5m       1         -"), "{drawn}");

    let out = cli(h, &["workflow", "inspect", "diamond"], &env);
    let drawn = stdout(&out);
    println!("$ cloacinactl workflow inspect diamond\n{drawn}\n");
    assert!(drawn.contains("4 tasks in 3 levels (tasks on one level run side by side)\n    1  extract\n    2  transform-a  transform-b\n    3  load"), "{drawn}");
    assert!(
        drawn.contains("transform-a  extract                   sh a.sh        5m       3         MODE, REGION"),
        "{drawn}"
    );
    assert!(drawn.contains("load         transform-a, transform-b  sh load.sh"), "{drawn}");
    assert!(drawn.contains("extract      -                         sh extract.sh  10m"), "{drawn}");
    assert!(!drawn.contains("eu") && !drawn.contains("fast"), "env values are not shown: {drawn}");
    let json: serde_json::Value =
        serde_json::from_str(&stdout(&cli(h, &["workflow", "inspect", "diamond", "-o", "json"], &env))).unwrap();
    assert_eq!(json["task_graph"][1]["env"], json!(["MODE", "REGION"]), "{json}");
    assert_eq!(json["task_graph"][1]["max_attempts"], 3);

    let source = h.join("src-graphs-1.0.0");
    let out = cli(h, &["package", "validate", source.to_str().unwrap()], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    println!("$ cloacinactl package validate src-graphs-1.0.0\n{}", stdout(&out));
    assert!(stdout(&out).contains("  workflow diamond (0 triggers)\n    4 tasks in 3 levels"), "{}", stdout(&out));
    server.stop();
}

#[test]
fn package_validate_reports_every_problem_in_one_run_and_warns_of_missing_files() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let out = bash(h, "cloacinactl package new demo", &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let manifest = h.join("demo/package.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let broken = text
        .replacen("version = \"0.1.0\"", "version = \"one\"", 1)
        .replacen("timeout = \"1m\"", "timeout = \"soon\"", 1)
        .replacen("command = [\"sh\", \"load.sh\"]", "command = [\"sh\", \"lod.sh\"]\nbackoff = \"sometimes\"", 1);
    assert_ne!(broken, text);
    std::fs::write(&manifest, &broken).unwrap();
    let out = bash(h, "cloacinactl package validate demo", &[]);
    println!("$ cloacinactl package validate demo\n{}", stderr(&out));
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("the package manifest is invalid, 3 problems:"), "{err}");
    for field in ["package.version:", "workflow[0].task[0].timeout:", "workflow[0].task[2].backoff:"] {
        assert!(err.contains(&format!("\n  {field}")), "{field} in {err}");
    }
    // Fixed, but for the file name: valid, with a warning.
    std::fs::write(&manifest, text.replacen("command = [\"sh\", \"load.sh\"]", "command = [\"sh\", \"lod.sh\"]", 1))
        .unwrap();
    let out = bash(h, "cloacinactl package validate demo -o json", &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out)
            .contains("warning: workflow[0] (pipeline) task 'load': command[1] 'lod.sh' is not a file of the package"),
        "{}",
        stderr(&out)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["warnings"].as_array().unwrap().len(), 1, "{v}");
    // The same from the packed archive.
    let out = bash(h, "cloacinactl package pack demo && cloacinactl package validate demo-0.1.0.cloacina", &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("'lod.sh' is not a file of the package"), "{}", stderr(&out));
    std::fs::write(&manifest, &text).unwrap();
    let out = bash(h, "cloacinactl package validate demo", &[]);
    assert!(out.status.success() && !stderr(&out).contains("warning"), "{}", stderr(&out));
}
