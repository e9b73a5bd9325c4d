//! Waiting on and watching an execution from the CLI: the exit codes a script branches on
//! (0 completed, 6 failed or cancelled, 7 the wait ran out), `execution watch -o json` as
//! NDJSON, a watch that goes on through a server restart, and `execution logs` of every task,
//! of the failed ones, and followed as the output comes.

use std::io::BufRead as _;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::executions::{execute, pack, upload};
use crate::harness::{Server, bootstrap_key, cli, command, stderr};

const WORKFLOWS: &str = r#"[[workflow]]
name = "boom"
[[workflow.task]]
id = "boom"
command = ["sh", "-c", "echo going; exit 3"]

[[workflow]]
name = "forever"
[[workflow.task]]
id = "wait"
command = ["sleep", "60"]

[[workflow]]
name = "talky"
[[workflow.task]]
id = "talk"
command = ["sh", "-c", "echo one; sleep 2; echo two; echo warned >&2"]
[[workflow.task]]
id = "after"
command = ["sh", "-c", "echo after"]
depends_on = ["talk"]

[[workflow]]
name = "slow"
[[workflow.task]]
id = "nap"
command = ["sh", "-c", "sleep 6; echo rested"]

[[workflow]]
name = "steady"
[[workflow.task]]
id = "first"
command = ["sh", "-c", "sleep 3; echo first"]
[[workflow.task]]
id = "second"
command = ["sh", "-c", "echo second"]
depends_on = ["first"]
"#;

#[tokio::test(flavor = "multi_thread")]
async fn waits_exit_as_documented_and_a_json_watch_goes_on_through_a_server_restart() {
    let home = tempfile::tempdir().unwrap();
    let server = Server::start(home.path(), &["--shutdown-timeout", "20"], &[]);
    let god = bootstrap_key(home.path());
    let file = pack(home.path(), "watched", "1.0.0", WORKFLOWS, &[]);
    assert_eq!(upload(&server, "public", &god, &file).await.0, 201);
    let env = [("CLOACINA_SERVER", server.url.as_str()), ("CLOACINA_API_KEY", god.as_str())];

    let out = cli(home.path(), &["workflow", "run", "boom", "--wait"], &env);
    assert_eq!(out.status.code(), Some(6), "a failed execution: {}", stderr(&out));
    assert!(
        stderr(&out).contains("Failed: task 'boom' failed after 1 attempt(s): exited with status 3"),
        "{}",
        stderr(&out)
    );
    let started = Instant::now();
    let out = cli(home.path(), &["workflow", "run", "forever", "--wait", "--wait-timeout", "1"], &env);
    assert_eq!(out.status.code(), Some(7), "the wait ran out: {}", stderr(&out));
    assert!(stderr(&out).contains("has not finished after 1s (--wait-timeout 1)"), "{}", stderr(&out));
    assert!(started.elapsed() < Duration::from_secs(15));
    // It runs on; cancelled, it does not hold up the restart below.
    let (_, listed) = server.get("/v1/tenants/public/executions?workflow=forever", Some(&god)).await;
    let forever = listed["items"][0]["execution_id"].as_str().expect("the waited-on execution").to_owned();
    let (status, body) = server
        .call(reqwest::Method::POST, &format!("/v1/tenants/public/executions/{forever}/cancel"), Some(&god), None)
        .await;
    assert_eq!(status, 200, "{body}");

    // A watch, as NDJSON, across a restart of the server on the same address.
    let (_, accepted, _) = execute(&server, "public", &god, "steady", json!({}), None).await;
    let id = accepted["execution_id"].as_str().unwrap().to_owned();
    let mut watch = command(home.path())
        .args(["execution", "watch", &id, "-o", "json"])
        .envs(env)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let reader = {
        let (lines, stdout) = (lines.clone(), watch.stdout.take().unwrap());
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        })
    };
    let seen = |kind: &str| {
        lines.lock().unwrap().iter().any(|l| serde_json::from_str::<Value>(l).is_ok_and(|v| v["event_type"] == kind))
    };
    let start = Instant::now();
    while !seen("task_started") {
        assert!(start.elapsed() < Duration::from_secs(20), "the watch printed no start: {:?}", lines.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The watch follows over the execution's live socket.
    assert!(live_sockets(&server).await >= 1.0, "the watch holds a socket");
    // The server stops (its drain lets the running task finish) and is away for a while.
    let address = server.url.trim_start_matches("http://").to_owned();
    server.stop();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut again = command(home.path());
    again.args(["serve", "--bind", &address]);
    let server = Server::spawn(again, home.path(), &[]);
    let status = tokio::task::spawn_blocking(move || {
        for _ in 0..600 {
            if let Some(s) = watch.try_wait().unwrap() {
                let mut err = String::new();
                std::io::Read::read_to_string(&mut watch.stderr.take().unwrap(), &mut err).unwrap();
                return (s, err);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = watch.kill();
        panic!("the watch did not end within 30 s of the restart");
    })
    .await
    .unwrap();
    reader.join().unwrap();
    let (status, err) = status;
    assert_eq!(status.code(), Some(0), "the execution completed: {err}");
    assert!(err.contains("trying again"), "the watch said it lost the server: {err}");
    let lines = lines.lock().unwrap().clone();
    let values: Vec<Value> = lines.iter().map(|l| serde_json::from_str(l).expect("every line is JSON")).collect();
    let (last, events) = values.split_last().unwrap();
    assert_eq!(
        (last["execution_id"].as_str(), last["status"].as_str()),
        (Some(id.as_str()), Some("Completed")),
        "{last}"
    );
    let ids: Vec<i64> = events.iter().map(|e| e["sequence_num"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "in order, none twice: {ids:?}");
    let kinds: Vec<&str> = events.iter().map(|e| e["event_type"].as_str().unwrap()).collect();
    assert_eq!(kinds.first(), Some(&"execution_created"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"execution_succeeded"), "nothing lost across the restart: {kinds:?}");
    assert_eq!(kinds.iter().filter(|k| **k == "task_succeeded").count(), 2, "{kinds:?}");
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_of_every_task_of_the_failed_ones_and_followed_as_they_come() {
    let home = tempfile::tempdir().unwrap();
    let server = Server::start(home.path(), &[], &[]);
    let god = bootstrap_key(home.path());
    let file = pack(home.path(), "watched", "1.0.0", WORKFLOWS, &[]);
    assert_eq!(upload(&server, "public", &god, &file).await.0, 201);
    let env = [("CLOACINA_SERVER", server.url.as_str()), ("CLOACINA_API_KEY", god.as_str())];
    let (_, accepted, _) = execute(&server, "public", &god, "talky", json!({}), None).await;
    let id = accepted["execution_id"].as_str().unwrap().to_owned();
    let mut follow = command(home.path())
        .args(["execution", "logs", &id, "-f"])
        .envs(env)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(follow.stdout.take().unwrap()).lines();
    let first = tokio::task::spawn_blocking(move || (out.next(), out)).await.unwrap();
    let (line, mut out) = first;
    assert_eq!(line.unwrap().unwrap(), "talk | one");
    let (_, e) = server.get(&format!("/v1/tenants/public/executions/{id}"), Some(&god)).await;
    assert_eq!(e["status"], "Running", "the first line came while the task ran: {e}");
    assert!(live_sockets(&server).await >= 1.0, "logs -f follows over the execution's socket");
    let rest: Vec<String> =
        tokio::task::spawn_blocking(move || out.by_ref().map_while(Result::ok).collect()).await.unwrap();
    assert_eq!(rest, ["talk | two", "after | after"]);
    let status = follow.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut follow.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!((status.code(), err.trim()), (Some(0), "talk | warned"));

    let all = cli(home.path(), &["execution", "logs", &id], &env);
    let text = crate::harness::stdout(&all);
    assert!(text.contains("== talk, attempt 1") && text.contains("== after, attempt 1"), "{text}");
    assert!(text.contains("one\ntwo\n-- stderr\nwarned"), "{text}");
    let out = cli(home.path(), &["execution", "logs", &id, "--failed"], &env);
    assert_eq!(crate::harness::stdout(&out).trim(), "no task failed");
    let out = cli(home.path(), &["execution", "logs", &id, "-o", "json"], &env);
    let body: Value = serde_json::from_str(&crate::harness::stdout(&out)).unwrap();
    assert_eq!(body["tasks"].as_array().map(Vec::len), Some(2), "{body}");
    assert_eq!(body["tasks"][1]["attempts"][0]["stdout"], "after\n", "{body}");

    let boom = cli(home.path(), &["workflow", "run", "boom", "--wait", "-o", "id"], &env);
    let boom_id = crate::harness::stdout(&boom).trim().to_owned();
    let out = cli(home.path(), &["execution", "logs", &boom_id, "--failed"], &env);
    let text = crate::harness::stdout(&out);
    assert!(text.starts_with("== boom, attempt 1") && text.contains("going"), "{text}");
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn on_a_terminal_the_watch_is_a_status_board_redrawn_in_place_with_a_summary() {
    let tmux = cloacina_testpg::tools::tmux();
    let home = tempfile::tempdir().unwrap();
    let server = Server::start(home.path(), &[], &[]);
    let god = bootstrap_key(home.path());
    let file = pack(home.path(), "watched", "1.0.0", WORKFLOWS, &[]);
    assert_eq!(upload(&server, "public", &god, &file).await.0, 201);
    let session = format!("cloacina-board-{}", std::process::id());
    let socket = home.path().join("tmux.sock");
    let tmux_cmd = |args: &[&str]| {
        std::process::Command::new(&tmux).arg("-S").arg(&socket).args(args).status().unwrap();
    };
    let script = format!(
        "env HOME={} NO_COLOR=1 CLOACINA_SERVER={} CLOACINA_API_KEY={god} {} workflow run steady --watch; echo exit=$?; sleep 60",
        home.path().display(),
        server.url,
        crate::harness::binary()
    );
    tmux_cmd(&["new-session", "-d", "-s", &session, "-x", "100", "-y", "20", &script]);
    let capture = |session: &str| {
        let out = std::process::Command::new(&tmux)
            .arg("-S")
            .arg(&socket)
            .args(["capture-pane", "-p", "-t", session])
            .output();
        let out = out.unwrap();
        String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.trim().is_empty()).collect::<Vec<_>>().join("\n")
    };
    let wait_for = |session: &str, what: &str| {
        let start = Instant::now();
        loop {
            let now = capture(session);
            if now.contains(what) {
                return now;
            }
            assert!(start.elapsed() < Duration::from_secs(30), "the board never showed {what:?}:\n{now}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let mid = wait_for(&session, "Running");
    eprintln!("mid-run:\n{mid}");
    assert!(mid.contains("0/2 tasks done"), "{mid}");
    assert!(mid.lines().any(|l| l.contains("first") && l.contains("Running") && l.contains("attempt 1")), "{mid}");
    assert!(mid.lines().any(|l| l.contains("second") && l.contains("Waiting")), "{mid}");
    let end = wait_for(&session, "exit=");
    eprintln!("at the end:\n{end}");
    assert!(end.contains("2/2 tasks done"), "{end}");
    assert!(end.lines().any(|l| l.starts_with("✓ first") && l.contains("Completed")), "{end}");
    assert!(end.contains("✓ Completed in"), "{end}");
    assert!(end.contains("2 of 2 tasks succeeded"), "{end}");
    assert!(end.contains("exit=0"), "{end}");
    // Redrawn in place: each task has one line, not one per change.
    assert_eq!(end.lines().filter(|l| l.contains("first")).count(), 1, "{end}");
    assert!(!end.contains('\x1b'), "NO_COLOR: no colour");

    // A failure ends with how, and the command that shows the failed task's output.
    let failing = format!("{session}-failing");
    let script = script.replace("run steady", "run boom");
    tmux_cmd(&["new-session", "-d", "-s", &failing, "-x", "100", "-y", "20", &script]);
    let end = wait_for(&failing, "exit=");
    eprintln!("a failure:\n{end}");
    tmux_cmd(&["kill-server"]);
    assert!(end.lines().any(|l| l.starts_with("✗ boom") && l.contains("Failed")), "{end}");
    assert!(end.contains("✗ Failed in"), "{end}");
    assert!(end.contains("all of it: cloacinactl execution logs"), "{end}");
    assert!(end.contains("exit=6"), "{end}");
}

/// The server's `cloacina_live_sockets` gauge.
async fn live_sockets(server: &Server) -> f64 {
    let metrics = reqwest::get(format!("{}/metrics", server.url)).await.unwrap().text().await.unwrap();
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("cloacina_live_sockets "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no cloacina_live_sockets gauge in {metrics}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_watch_through_a_restart_ends_on_the_socket_of_the_restarted_server() {
    let home = tempfile::tempdir().unwrap();
    // A short drain: the running attempt is given back and runs again after the restart.
    let server = Server::start(home.path(), &["--shutdown-timeout", "1"], &[]);
    let god = bootstrap_key(home.path());
    let file = pack(home.path(), "watched", "1.0.0", WORKFLOWS, &[]);
    assert_eq!(upload(&server, "public", &god, &file).await.0, 201);
    let env = [("CLOACINA_SERVER", server.url.as_str()), ("CLOACINA_API_KEY", god.as_str())];
    let (_, accepted, _) = execute(&server, "public", &god, "slow", json!({}), None).await;
    let id = accepted["execution_id"].as_str().unwrap().to_owned();
    let mut watch = command(home.path())
        .args(["execution", "watch", &id, "-o", "json"])
        .envs(env)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(watch.stdout.take().unwrap()).lines();
    let started = tokio::task::spawn_blocking(move || {
        while let Some(Ok(line)) = out.next() {
            if line.contains("task_started") {
                return out;
            }
        }
        panic!("the watch printed no start");
    })
    .await
    .unwrap();
    let address = server.url.trim_start_matches("http://").to_owned();
    server.stop();
    let mut again = command(home.path());
    again.args(["serve", "--bind", &address]);
    let server = Server::spawn(again, home.path(), &[]);
    let lines: Vec<String> =
        tokio::task::spawn_blocking(move || started.map_while(Result::ok).collect()).await.unwrap();
    assert!(watch.wait().unwrap().success(), "{lines:?}");
    let last: Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    assert_eq!(last["status"], "Completed", "{last}");
    let metrics = reqwest::get(format!("{}/metrics", server.url)).await.unwrap().text().await.unwrap();
    let finished = metrics
        .lines()
        .find_map(|l| l.strip_prefix("cloacina_live_sockets_closed_total{reason=\"finished\"} "))
        .and_then(|v| v.trim().parse::<f64>().ok());
    assert_eq!(finished, Some(1.0), "the watch ended on the restarted server's socket: {metrics}");
}
