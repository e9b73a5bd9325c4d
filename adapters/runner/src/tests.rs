#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;

use super::*;

fn job(dir: &std::path::Path, script: &str, timeout: Duration) -> TaskJob {
    std::fs::write(dir.join("task.sh"), script).unwrap();
    TaskJob {
        workdir: dir.to_owned(),
        command: vec!["sh".into(), "task.sh".into()],
        env: BTreeMap::from([("LEVEL".to_owned(), "info".to_owned())]),
        context: json!({"rows": 3, "name": "demo"}).as_object().cloned().unwrap(),
        timeout,
    }
}

async fn run(script: &str, timeout: Duration) -> (TaskRun, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let r = ProcessRunner::default().run(job(dir.path(), script, timeout)).await;
    (r, dir)
}

#[tokio::test]
async fn a_task_reads_its_context_and_its_output_object_comes_back() {
    let script = r#"
        stdin=$(cat)
        echo "stdin: $stdin"
        echo "file: $(cat "$CLOACINA_CONTEXT_FILE")"
        echo "level=$LEVEL pwd=$(pwd)" >&2
        printf '{"doubled": 6, "seen": "%s"}' "$LEVEL" > "$CLOACINA_OUTPUT_FILE"
    "#;
    let (r, dir) = run(script, Duration::from_secs(10)).await;
    let expected = json!({"doubled": 6, "seen": "info"}).as_object().cloned();
    assert_eq!(r.outcome, TaskOutcome::Succeeded { output: expected }, "{}", r.stderr);
    assert!(r.stdout.contains(r#"stdin: {"rows":3,"name":"demo"}"#), "{}", r.stdout);
    assert!(r.stdout.contains(r#"file: {"rows":3,"name":"demo"}"#), "{}", r.stdout);
    let cwd = std::fs::canonicalize(dir.path()).unwrap();
    assert!(r.stderr.contains(&format!("level=info pwd={}", cwd.display())), "{}", r.stderr);
    assert!(!r.truncated);
}

#[tokio::test]
async fn a_task_without_output_succeeds_with_none_and_bad_output_fails() {
    let (r, _d) = run("true", Duration::from_secs(10)).await;
    assert_eq!(r.outcome, TaskOutcome::Succeeded { output: None });
    let (r, _d) = run(r#"echo '[1, 2]' > "$CLOACINA_OUTPUT_FILE""#, Duration::from_secs(10)).await;
    assert!(
        matches!(r.outcome, TaskOutcome::Failed { ref reason } if reason.contains("not an object")),
        "{:?}",
        r.outcome
    );
    let (r, _d) = run(r#"echo '{oops' > "$CLOACINA_OUTPUT_FILE""#, Duration::from_secs(10)).await;
    assert!(matches!(r.outcome, TaskOutcome::Failed { ref reason } if reason.contains("not JSON")), "{:?}", r.outcome);
}

#[tokio::test]
async fn a_failing_task_reports_its_exit_status_and_a_missing_program_fails_cleanly() {
    let (r, _d) = run("echo broken >&2; exit 3", Duration::from_secs(10)).await;
    assert_eq!(r.outcome, TaskOutcome::Failed { reason: "exited with status 3".into() });
    assert_eq!(r.stderr.trim(), "broken");
    let dir = tempfile::tempdir().unwrap();
    let mut j = job(dir.path(), "", Duration::from_secs(5));
    j.command = vec!["no-such-program-anywhere".into()];
    let r = ProcessRunner::default().run(j).await;
    assert!(
        matches!(r.outcome, TaskOutcome::Failed { ref reason } if reason.contains("cannot start")),
        "{:?}",
        r.outcome
    );
}

#[tokio::test]
async fn at_its_timeout_the_task_and_its_children_are_killed() {
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    let script = format!("sleep 60 & echo $! > '{}'; sleep 60", pids.display());
    let started = std::time::Instant::now();
    let r = ProcessRunner::default().run(job(dir.path(), &script, Duration::from_millis(500))).await;
    assert_eq!(r.outcome, TaskOutcome::TimedOut);
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    let child: i32 = std::fs::read_to_string(&pids).unwrap().trim().parse().unwrap();
    // The background child belonged to the task's process group: it is gone (or a zombie
    // being reaped), never still sleeping.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let state = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
    let alive = state.split_whitespace().nth(2).is_some_and(|s| s != "Z" && s != "X");
    assert!(!alive, "the child {child} outlived its task: {state}");
}

#[tokio::test]
async fn no_variable_of_the_server_reaches_a_task() {
    // The test process stands in for the server: its environment holds secrets.
    let (r, _d) = run("env", Duration::from_secs(10)).await;
    let names: Vec<&str> = r.stdout.lines().filter_map(|l| l.split_once('=').map(|(k, _)| k)).collect();
    for name in &names {
        assert!(
            [
                "PATH",
                "HOME",
                "TMPDIR",
                "LANG",
                "TZ",
                "LEVEL",
                "CLOACINA_CONTEXT_FILE",
                "CLOACINA_OUTPUT_FILE",
                "PWD",
                "SHLVL",
                "_"
            ]
            .contains(name),
            "unexpected variable {name} in the task's environment: {}",
            r.stdout
        );
    }
    assert!(names.contains(&"PATH") && names.contains(&"CLOACINA_OUTPUT_FILE"));
}

#[tokio::test]
async fn chatty_output_is_capped_and_never_blocks_the_task() {
    let dir = tempfile::tempdir().unwrap();
    let runner = ProcessRunner { log_cap: 1000, ..ProcessRunner::default() };
    let r = runner.run(job(dir.path(), "yes hello | head -c 5000000", Duration::from_secs(20))).await;
    assert_eq!(r.outcome, TaskOutcome::Succeeded { output: None });
    assert_eq!(r.stdout.len(), 1000);
    assert!(r.truncated);
}

#[tokio::test]
async fn a_task_that_ignores_stdin_does_not_hang() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = job(dir.path(), "exit 0", Duration::from_secs(10));
    j.context = json!({"big": "x".repeat(1_000_000)}).as_object().cloned().unwrap();
    let r = ProcessRunner::default().run(j).await;
    assert_eq!(r.outcome, TaskOutcome::Succeeded { output: None });
}
