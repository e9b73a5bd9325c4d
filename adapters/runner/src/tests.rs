#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::time::Duration;

use cloacina_domain::TenantName;
use cloacina_domain::package::TaskLimits;
use serde_json::json;

use super::*;
use cloacina_testpg::tools::processes_with;

/// A task folder and a package folder the task user can reach, and a runner over them.
struct Fixture {
    root: tempfile::TempDir,
    runner: ProcessRunner,
}

impl Fixture {
    fn sandboxed() -> Self {
        let bwrap = cloacina_testpg::tools::bubblewrap();
        let root = tempfile::tempdir().unwrap();
        std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
        let identity = TaskIdentity::resolve(None).unwrap();
        let task_dir = TaskDir::create(&root.path().join("tasks"), &identity).unwrap();
        let sandbox = Sandbox::new(bwrap, identity, TaskNetwork::None, &task_dir);
        Self { root, runner: ProcessRunner::sandboxed(sandbox, task_dir) }
    }

    fn unconfined() -> Self {
        let root = tempfile::tempdir().unwrap();
        let identity = TaskIdentity::resolve(None).unwrap();
        let task_dir = TaskDir::create(&root.path().join("tasks"), &identity).unwrap();
        Self { root, runner: ProcessRunner::unconfined(task_dir, identity) }
    }

    /// A package folder holding `task.sh`, readable by the task user.
    fn package(&self, script: &str) -> std::path::PathBuf {
        let dir = self.root.path().join("pkg");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(dir.join("task.sh"), script).unwrap();
        std::fs::set_permissions(dir.join("task.sh"), std::fs::Permissions::from_mode(0o644)).unwrap();
        dir
    }

    fn job(&self, script: &str, timeout: Duration) -> TaskJob {
        TaskJob {
            tenant: TenantName::parse("acme").unwrap(),
            workdir: self.package(script),
            command: vec!["sh".into(), "task.sh".into()],
            env: BTreeMap::from([("LEVEL".to_owned(), "info".to_owned())]),
            secrets: Vec::new(),
            context: json!({"rows": 3, "name": "demo"}).as_object().cloned().unwrap(),
            timeout,
            limits: TaskLimits::default(),
            network: None,
        }
    }

    async fn run(&self, script: &str, timeout: Duration) -> Ran {
        ran(&self.runner, self.job(script, timeout)).await
    }

    fn attempts_left(&self) -> usize {
        std::fs::read_dir(self.root.path().join("tasks/attempts")).unwrap().count()
    }
}

/// An attempt's outcome and the output its sink was given.
#[derive(Debug)]
struct Ran {
    outcome: TaskOutcome,
    stdout: String,
    stderr: String,
    truncated: bool,
}

/// The output a sink was given, each stream as one text.
#[derive(Default)]
struct Collected(std::sync::Mutex<(Vec<u8>, Vec<u8>)>);

impl OutputSink for Collected {
    fn write(&self, stream: OutputStream, bytes: &[u8]) {
        let mut both = self.0.lock().unwrap();
        match stream {
            OutputStream::Stdout => both.0.extend_from_slice(bytes),
            OutputStream::Stderr => both.1.extend_from_slice(bytes),
        }
    }
}

/// Runs `job` to its end (never told to stop), collecting its output.
async fn ran(runner: &ProcessRunner, job: TaskJob) -> Ran {
    ran_until(runner, job, Box::pin(std::future::pending())).await
}

async fn ran_until(runner: &ProcessRunner, job: TaskJob, stop: StopSignal) -> Ran {
    let sink = Arc::new(Collected::default());
    let run = runner.run(job, sink.clone(), stop).await;
    let (out, err) = std::mem::take(&mut *sink.0.lock().unwrap());
    Ran {
        outcome: run.outcome,
        stdout: String::from_utf8_lossy(&out).into_owned(),
        stderr: String::from_utf8_lossy(&err).into_owned(),
        truncated: run.stdout_cut > 0 || run.stderr_cut > 0,
    }
}

/// Waits (briefly, bounded) for processes holding `marker` to be gone; returns any left.
async fn gone(marker: &str) -> Vec<String> {
    for _ in 0..50 {
        if processes_with(marker).is_empty() {
            return Vec::new();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    processes_with(marker)
}

#[tokio::test]
async fn a_task_reads_its_context_and_its_output_object_comes_back() {
    let f = Fixture::sandboxed();
    let script = r#"
        stdin=$(cat)
        echo "stdin: $stdin"
        echo "file: $(cat "$CLOACINA_CONTEXT_FILE")"
        echo "level=$LEVEL pwd=$(pwd) home=$HOME" >&2
        printf '{"doubled": 6, "seen": "%s"}' "$LEVEL" > "$CLOACINA_OUTPUT_FILE"
    "#;
    let r = f.run(script, Duration::from_secs(10)).await;
    let expected = json!({"doubled": 6, "seen": "info"}).as_object().cloned();
    assert_eq!(r.outcome, TaskOutcome::Succeeded { output: expected }, "{}", r.stderr);
    assert!(r.stdout.contains(r#"stdin: {"rows":3,"name":"demo"}"#), "{}", r.stdout);
    assert!(r.stdout.contains(r#"file: {"rows":3,"name":"demo"}"#), "{}", r.stdout);
    assert!(r.stderr.contains("level=info pwd=/package home=/scratch"), "{}", r.stderr);
    assert!(!r.truncated);
    assert_eq!(f.attempts_left(), 0, "the scratch folder is removed after the attempt");
}

#[tokio::test]
async fn a_task_runs_unprivileged_in_a_private_scratch_folder_and_cannot_change_its_package() {
    let f = Fixture::sandboxed();
    let script = r#"
        echo "uid=$(id -u) scratch=$(stat -c %a /scratch)"
        touch /package/new 2>/dev/null && echo "package writable"
        echo x >> /package/task.sh 2>/dev/null && echo "task.sh writable"
        touch /scratch/mine && echo "scratch writable"
        ls /proc | grep -c '^[0-9]'
    "#;
    let r = f.run(script, Duration::from_secs(10)).await;
    assert_eq!(r.outcome, TaskOutcome::Succeeded { output: None }, "{}", r.stderr);
    assert!(!r.stdout.contains("uid=0 "), "a task never runs as root: {}", r.stdout);
    assert!(r.stdout.contains("scratch=700"), "{}", r.stdout);
    assert!(!r.stdout.contains("package writable") && !r.stdout.contains("task.sh writable"), "{}", r.stdout);
    assert!(r.stdout.contains("scratch writable"), "{}", r.stdout);
    let visible: u32 = r.stdout.lines().last().unwrap().trim().parse().unwrap();
    assert!(visible <= 5, "the task sees only its own processes, saw {visible}: {}", r.stdout);
}

#[tokio::test]
async fn a_task_without_output_succeeds_with_none_and_bad_output_fails() {
    let f = Fixture::sandboxed();
    let r = f.run("true", Duration::from_secs(10)).await;
    assert_eq!(r.outcome, TaskOutcome::Succeeded { output: None });
    let r = f.run(r#"echo '[1, 2]' > "$CLOACINA_OUTPUT_FILE""#, Duration::from_secs(10)).await;
    assert!(
        matches!(r.outcome, TaskOutcome::Failed { ref reason } if reason.contains("not an object")),
        "{:?}",
        r.outcome
    );
    let r = f.run(r#"echo '{oops' > "$CLOACINA_OUTPUT_FILE""#, Duration::from_secs(10)).await;
    assert!(matches!(r.outcome, TaskOutcome::Failed { ref reason } if reason.contains("not JSON")), "{:?}", r.outcome);
}

#[tokio::test]
async fn an_output_file_that_is_a_symlink_is_never_followed_by_the_server() {
    let f = Fixture::sandboxed();
    // The server resolves the output file on the host: a link to one of its files must not be
    // read in the task's name.
    let secret = f.root.path().join("secret.json");
    std::fs::write(&secret, r#"{"stolen": true}"#).unwrap();
    let script = format!(r#"ln -s '{}' "$CLOACINA_OUTPUT_FILE""#, secret.display());
    let r = f.run(&script, Duration::from_secs(10)).await;
    assert!(
        matches!(r.outcome, TaskOutcome::Failed { ref reason } if reason.contains("output file")),
        "{:?}",
        r.outcome
    );
    let r = f.run(r#"mkfifo "$CLOACINA_OUTPUT_FILE""#, Duration::from_secs(10)).await;
    assert!(
        matches!(r.outcome, TaskOutcome::Failed { ref reason } if reason.contains("not a regular file")),
        "{:?}",
        r.outcome
    );
}

#[tokio::test]
async fn a_failing_task_reports_its_exit_status_and_a_missing_program_fails_cleanly() {
    let f = Fixture::sandboxed();
    let r = f.run("echo broken >&2; exit 3", Duration::from_secs(10)).await;
    assert_eq!(r.outcome, TaskOutcome::Failed { reason: "exited with status 3".into() });
    assert_eq!(r.stderr.trim(), "broken");
    let r = f.run("kill -9 $$", Duration::from_secs(10)).await;
    assert_eq!(r.outcome, TaskOutcome::Failed { reason: "killed by SIGKILL".into() });
    let mut j = f.job("", Duration::from_secs(5));
    j.command = vec!["no-such-program-anywhere".into()];
    let r = ran(&f.runner, j).await;
    assert_eq!(
        r.outcome,
        TaskOutcome::Failed { reason: "cannot start no-such-program-anywhere: No such file or directory".into() }
    );
}

#[tokio::test]
async fn at_its_timeout_the_task_and_its_children_are_killed() {
    let f = Fixture::sandboxed();
    let started = std::time::Instant::now();
    let r = f.run("sleep 61.17 & sleep 61.18", Duration::from_millis(500)).await;
    assert_eq!(r.outcome, TaskOutcome::TimedOut);
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    assert_eq!(gone("61.1").await, Vec::<String>::new(), "a process outlived its timed-out attempt");
    assert_eq!(f.attempts_left(), 0);
}

#[tokio::test]
async fn no_process_of_an_attempt_outlives_it_however_it_detached() {
    let f = Fixture::sandboxed();
    let script = "setsid sleep 62.11 & (sleep 62.12 &) ; nohup sleep 62.13 >/dev/null 2>&1 & \
                  sh -c 'sleep 62.14 &' ; echo started";
    let r = f.run(script, Duration::from_secs(10)).await;
    assert_eq!(r.outcome, TaskOutcome::Succeeded { output: None }, "{}", r.stderr);
    assert_eq!(gone("62.1").await, Vec::<String>::new(), "a detached process outlived its attempt");
}

/// Output reaches the sink while the task still runs, and a stop kills the attempt at once,
/// its output up to then kept.
#[tokio::test(flavor = "multi_thread")]
async fn output_comes_as_it_is_printed_and_a_stop_ends_the_attempt_with_it() {
    let f = Fixture::sandboxed();
    let sink = Arc::new(Collected::default());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let job = f.job("echo first; echo oops >&2; sleep 30.71", Duration::from_secs(60));
    let started = std::time::Instant::now();
    let run = tokio::spawn({
        let (runner, sink) = (f.runner.clone(), sink.clone());
        async move { runner.run(job, sink, Box::pin(async move { drop(rx.await) })).await }
    });
    while !String::from_utf8_lossy(&sink.0.lock().unwrap().0).contains("first") {
        assert!(started.elapsed() < Duration::from_secs(20), "no output came while the task ran");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!run.is_finished(), "the task is still running");
    tx.send(()).unwrap();
    let run = run.await.unwrap();
    assert_eq!(run.outcome, TaskOutcome::Stopped);
    let (out, err) = std::mem::take(&mut *sink.0.lock().unwrap());
    assert_eq!((String::from_utf8_lossy(&out).as_ref(), String::from_utf8_lossy(&err).as_ref()), ("first\n", "oops\n"));
    assert!(started.elapsed() < Duration::from_secs(20), "took {:?}", started.elapsed());
    assert_eq!(gone("30.71").await, Vec::<String>::new(), "a process outlived its stopped attempt");
    assert_eq!(f.attempts_left(), 0);
}

/// An attempt abandoned at any instant of its start (the engine aborts the attempts of a
/// deleted tenant whenever the delete lands) leaves no process behind: bubblewrap killed just
/// after it forked its PID 1 once left that PID 1, and the task, running.
#[tokio::test(flavor = "multi_thread")]
async fn an_attempt_abandoned_at_any_instant_of_its_start_leaves_no_process() {
    let f = Fixture::sandboxed();
    let marker = format!("63.{}", std::time::UNIX_EPOCH.elapsed().unwrap().subsec_nanos());
    let mut abandoned = 0;
    for i in 0..600u64 {
        let mut job = f.job("", Duration::from_secs(60));
        job.command = vec!["sleep".into(), marker.clone()];
        // From before the spawn to a few milliseconds after it, in 10 µs steps.
        let within = Duration::from_micros(i * 10);
        if tokio::time::timeout(within, ran(&f.runner, job)).await.is_err() {
            abandoned += 1;
        }
    }
    assert!(abandoned > 450, "only {abandoned} of 600 attempts were abandoned while starting");
    assert_eq!(gone(&marker).await, Vec::<String>::new(), "a process outlived its abandoned attempt");
}

#[tokio::test]
async fn no_variable_of_the_server_reaches_a_task() {
    // The test process stands in for the server: its environment holds secrets.
    let f = Fixture::sandboxed();
    let r = f.run("env", Duration::from_secs(10)).await;
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
    let mut f = Fixture::sandboxed();
    f.runner.log_cap = 1000;
    let r = f.run("yes hello | head -c 5000000", Duration::from_secs(20)).await;
    assert_eq!(r.outcome, TaskOutcome::Succeeded { output: None });
    assert_eq!(r.stdout.len(), 1000);
    assert!(r.truncated);
}

#[tokio::test]
async fn a_task_that_ignores_stdin_does_not_hang() {
    let f = Fixture::sandboxed();
    let mut j = f.job("exit 0", Duration::from_secs(10));
    j.context = json!({"big": "x".repeat(1_000_000)}).as_object().cloned().unwrap();
    let r = ran(&f.runner, j).await;
    assert_eq!(r.outcome, TaskOutcome::Succeeded { output: None });
}

#[tokio::test]
async fn a_memory_hog_and_a_fork_bomb_end_their_own_attempt_with_the_cause_named() {
    let f = Fixture::sandboxed();
    let mut hog = f.job("", Duration::from_secs(30));
    hog.command = vec!["python3".into(), "-c".into(), "b = bytearray(10 * 1024 ** 3)".into()];
    hog.limits = TaskLimits { memory: Some(256 * 1024 * 1024), ..TaskLimits::default() };
    let r = ran(&f.runner, hog).await;
    assert_eq!(
        r.outcome,
        TaskOutcome::Failed {
            reason: "exited with status 1: it ran out of memory (its limit is 256 MiB per process)".into()
        },
        "{}",
        r.stderr
    );
    let mut bomb = f.job("", Duration::from_secs(30));
    bomb.command = vec!["python3".into(), "-c".into(), "import os\nwhile True: os.fork()".into()];
    bomb.limits = TaskLimits { processes: Some(32), ..TaskLimits::default() };
    // Another attempt of the same task user runs beside the bomb, untouched by it.
    let neighbour = f.run("for i in 1 2 3 4 5 6 7 8; do sleep 0.2 & done; wait; echo done", Duration::from_secs(30));
    let (r, n) = tokio::join!(ran(&f.runner, bomb), neighbour);
    assert_eq!(
        r.outcome,
        TaskOutcome::Failed { reason: "exited with status 1: it reached its limit of 32 processes".into() },
        "{}",
        r.stderr
    );
    assert_eq!(n.outcome, TaskOutcome::Succeeded { output: None }, "{}", n.stderr);
    assert_eq!(n.stdout.trim(), "done");
}

#[tokio::test]
async fn a_task_asking_for_more_than_the_ceiling_fails_saying_so() {
    let f = Fixture::sandboxed();
    let mut j = f.job("true", Duration::from_secs(10));
    j.limits = TaskLimits { memory: Some(64 * 1024 * 1024 * 1024), ..TaskLimits::default() };
    let r = ran(&f.runner, j).await;
    assert_eq!(
        r.outcome,
        TaskOutcome::Failed { reason: "limits.memory asks for 64 GiB; this deployment allows at most 8 GiB".into() }
    );
}

#[tokio::test]
async fn the_tenants_network_setting_wins_over_the_deployments() {
    // A port on the host's loopback: reachable on the host's network only.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let f = Fixture::sandboxed();
    assert_eq!(sandbox_of(&f).network(), TaskNetwork::None, "the deployment's default");
    let reach = |network| {
        let mut job = f.job(&format!("exec 3<>/dev/tcp/127.0.0.1/{port} && echo reached"), Duration::from_secs(20));
        job.command = vec!["bash".into(), "task.sh".into()];
        job.network = network;
        job
    };
    let host = ran(&f.runner, reach(Some(TaskNetwork::Host))).await;
    assert!(matches!(host.outcome, TaskOutcome::Succeeded { .. }), "{host:?}");
    assert_eq!(host.stdout.trim(), "reached");
    for network in [None, Some(TaskNetwork::None)] {
        let none = ran(&f.runner, reach(network)).await;
        assert!(matches!(none.outcome, TaskOutcome::Failed { .. }), "{network:?}: {none:?}");
        assert!(none.stderr.contains("Connection refused"), "{network:?}: {}", none.stderr);
    }
}

#[tokio::test]
async fn with_cgroups_an_attempt_passes_its_gate_only_once_placed_in_its_own_cgroup() {
    // A delegated cgroup v2 as the server sees it, its kernel files as regular files (this
    // machine's kernel keeps memory and pids on cgroups v1); the gate and the sandbox are real.
    let cgroupfs = tempfile::tempdir().unwrap();
    let root = cgroupfs.path().join("tasks");
    std::fs::create_dir(&root).unwrap();
    for dir in [cgroupfs.path(), root.as_path()] {
        std::fs::write(dir.join("cgroup.controllers"), "memory pids").unwrap();
        std::fs::write(dir.join("cgroup.subtree_control"), "").unwrap();
    }
    let mut f = Fixture::sandboxed();
    let sandbox = sandbox_of(&f).with_cgroups(TaskCgroups::prepare(&root).unwrap());
    f.runner = ProcessRunner::sandboxed(sandbox.clone(), f.runner.task_dir().clone());
    sandbox.probe(f.runner.task_dir(), &cloacina_domain::package::DEFAULT_LIMITS).await.unwrap();
    let run = f
        .run(
            "read -r line; echo \"stdin: $line\"; cat \"$CLOACINA_CONTEXT_FILE\" > \"$CLOACINA_OUTPUT_FILE\"",
            Duration::from_secs(20),
        )
        .await;
    assert!(matches!(&run.outcome, TaskOutcome::Succeeded { output: Some(o) } if o["rows"] == 3), "{run:?}");
    assert_eq!(run.stdout.trim(), r#"stdin: {"rows":3,"name":"demo"}"#, "the gate's line is not the task's");
    let attempts: Vec<_> =
        std::fs::read_dir(&root).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_dir()).collect();
    assert_eq!(attempts.len(), 2, "the probe's and the task's: {attempts:?}");
    for dir in attempts {
        let pid: u32 = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap().parse().unwrap();
        assert!(pid > 1);
        assert_eq!(std::fs::read_to_string(dir.join("pids.max")).unwrap(), "256");
        assert_eq!(std::fs::read_to_string(dir.join("memory.max")).unwrap(), (1u64 << 30).to_string());
    }
}

fn sandbox_of(f: &Fixture) -> Sandbox {
    match f.runner.isolation() {
        Isolation::Sandbox(s) => s.clone(),
        Isolation::Unconfined => panic!("not sandboxed"),
    }
}

#[tokio::test]
async fn the_probe_makes_a_real_sandbox() {
    let f = Fixture::sandboxed();
    let Isolation::Sandbox(sandbox) = f.runner.isolation() else { panic!("sandboxed") };
    sandbox.probe(&f.runner.task_dir, &DEFAULT_LIMITS).await.unwrap();
    let broken =
        Sandbox::new("/nonexistent/bwrap".into(), sandbox.identity().clone(), TaskNetwork::None, &f.runner.task_dir);
    let e = broken.probe(&f.runner.task_dir, &DEFAULT_LIMITS).await.unwrap_err();
    assert!(e.contains("cannot start /nonexistent/bwrap"), "{e}");
}

#[tokio::test]
async fn leftover_scratch_folders_are_swept_unless_a_live_attempt_holds_them() {
    let f = Fixture::sandboxed();
    let attempts = f.root.path().join("tasks/attempts");
    std::fs::create_dir(attempts.join("a-dead")).unwrap();
    std::fs::write(attempts.join("a-dead/left.txt"), "x").unwrap();
    let live = Scratch::create(&f.runner.task_dir, &f.runner.identity, b"{}").unwrap();
    assert_eq!(f.runner.task_dir.sweep(), 1);
    assert!(!attempts.join("a-dead").exists());
    assert!(live.path().exists(), "a live attempt's folder is spared");
    live.remove().await;
    assert_eq!(f.attempts_left(), 0);
}

#[tokio::test]
async fn without_a_sandbox_a_task_still_runs_in_its_package_folder() {
    let f = Fixture::unconfined();
    let r = f.run(r#"pwd; printf '{"ok": true}' > "$CLOACINA_OUTPUT_FILE""#, Duration::from_secs(10)).await;
    assert_eq!(r.outcome, TaskOutcome::Succeeded { output: json!({"ok": true}).as_object().cloned() }, "{}", r.stderr);
    let cwd = std::fs::canonicalize(f.root.path().join("pkg")).unwrap();
    assert_eq!(r.stdout.trim(), cwd.display().to_string());
}
