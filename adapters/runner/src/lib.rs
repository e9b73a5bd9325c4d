//! The process runner (docs/engine.md, "The sandbox"): each task attempt is its `command`, run in the unpacked
//! package folder, in a sandbox of its own ([`sandbox`]) as an unprivileged user.
//!
//! - The context JSON arrives on stdin and in `$CLOACINA_CONTEXT_FILE`; a JSON object the task
//!   writes to `$CLOACINA_OUTPUT_FILE` is its output. Both files live in the attempt's scratch
//!   folder, which is removed when the attempt ends.
//! - The environment is built from nothing: `PATH`, `HOME` and `TMPDIR` (the scratch folder),
//!   `LANG`, `TZ`, the two file variables, and the task's manifest `env`. No variable of the
//!   server's (database URL, keys) reaches a task.
//! - stdout and stderr go to the engine's sink as they come, up to a cap each; the rest is
//!   read and dropped (and counted), so a chatty task never blocks on a full pipe.
//! - When the engine says stop (a cancel, a lost lease, a shutdown), the sandbox is killed at
//!   once and the output up to then is the attempt's.
//! - At the timeout, and whenever the attempt ends or is abandoned, the sandbox is killed, and
//!   every process of the attempt with it.
//! - Without a sandbox (`--unsafe-no-sandbox`) the command runs as the server's own user, as
//!   the leader of a process group of its own, with a warning at every attempt.
//!
//! # Layout
//! - [`sandbox`]: the bubblewrap sandbox of one attempt, and the start-up probe.
//! - [`cgroup`]: a cgroup v2 per attempt, where the machine delegates one to the server.
//! - [`identity`]: the user tasks run as.
//! - [`task_dir`]: the folder of unpacked packages and scratch folders, and its sweep.
//! - [`explain`]: why a failed attempt failed, in words.
//! - [`packages`]: package versions unpacked on this server's disk, the folders tasks run in.

pub mod cgroup;
pub mod explain;
pub mod identity;
pub mod packages;
pub mod sandbox;
pub mod task_dir;

pub use cgroup::TaskCgroups;
pub use cloacina_domain::TaskNetwork;
pub use identity::TaskIdentity;
pub use packages::PackageCache;
pub use sandbox::{Sandbox, find_bwrap};
pub use task_dir::TaskDir;

use std::io::Read as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use cloacina_domain::package::{AttemptLimits, DEFAULT_CEILINGS, DEFAULT_LIMITS};
use cloacina_domain::ports::{OutputSink, OutputStream, StopSignal, TaskJob, TaskOutcome, TaskRun, TaskRunner};
use nix::fcntl::OFlag;
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use crate::task_dir::{CONTEXT_FILE, OUTPUT_FILE, Scratch};

/// The `PATH` tasks get.
pub const TASK_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// How attempts are isolated.
#[derive(Debug, Clone)]
pub enum Isolation {
    /// Each attempt in a sandbox of its own: the default, and the only mode production allows.
    Sandbox(Sandbox),
    /// As the server's own user, with nothing hidden (`--unsafe-no-sandbox`).
    Unconfined,
}

/// The process runner.
#[derive(Debug, Clone)]
pub struct ProcessRunner {
    /// The most bytes kept of stdout, and of stderr.
    pub log_cap: usize,
    /// The largest output file read.
    pub output_cap: u64,
    /// What an attempt gets when its task asks for nothing, and the most it may ask for.
    pub defaults: AttemptLimits,
    pub ceilings: AttemptLimits,
    isolation: Isolation,
    task_dir: TaskDir,
    identity: TaskIdentity,
}

impl ProcessRunner {
    /// A runner that sandboxes every attempt.
    pub fn sandboxed(sandbox: Sandbox, task_dir: TaskDir) -> Self {
        let identity = sandbox.identity().clone();
        Self::new(Isolation::Sandbox(sandbox), task_dir, identity)
    }

    /// A runner with no sandbox: tasks run as the server's user and see what it sees.
    pub fn unconfined(task_dir: TaskDir, identity: TaskIdentity) -> Self {
        Self::new(Isolation::Unconfined, task_dir, TaskIdentity { switch: false, ..identity })
    }

    fn new(isolation: Isolation, task_dir: TaskDir, identity: TaskIdentity) -> Self {
        Self {
            log_cap: 1024 * 1024,
            output_cap: 16 * 1024 * 1024,
            defaults: DEFAULT_LIMITS,
            ceilings: DEFAULT_CEILINGS,
            isolation,
            task_dir,
            identity,
        }
    }

    pub fn isolation(&self) -> &Isolation {
        &self.isolation
    }

    pub fn task_dir(&self) -> &TaskDir {
        &self.task_dir
    }
}

/// How much of a stream's start and of its end is kept for explaining a failure.
const SAID: usize = 8 * 1024;

/// What forwarding one stream left: the bytes cut at the cap, and its first and last
/// [`SAID`] bytes (all of it when shorter), for [`explain::failure`].
#[derive(Default)]
struct Forwarded {
    cut: u64,
    said: Vec<u8>,
}

/// Reads a stream to its end, passing its first `cap` bytes to `sink` as they come and
/// reading the rest only to drop it, so a chatty task never blocks on a full pipe.
async fn forward(
    mut stream: impl AsyncRead + Unpin,
    which: OutputStream,
    sink: Arc<dyn OutputSink>,
    cap: usize,
) -> Forwarded {
    let mut buf = vec![0u8; 16 * 1024];
    let (mut passed, mut cut) = (0usize, 0u64);
    let (mut head, mut tail) = (Vec::new(), std::collections::VecDeque::<u8>::new());
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let got = &buf[..n];
        let room = cap.saturating_sub(passed).min(n);
        if room > 0 {
            sink.write(which, &got[..room]);
            passed += room;
        }
        cut += (n - room) as u64;
        let to_head = SAID.saturating_sub(head.len()).min(n);
        head.extend_from_slice(&got[..to_head]);
        tail.extend(&got[to_head..]);
        let over = tail.len().saturating_sub(SAID);
        tail.drain(..over);
    }
    head.extend(tail);
    Forwarded { cut, said: head }
}

fn failed(reason: impl Into<String>, started: Instant) -> TaskRun {
    TaskRun {
        outcome: TaskOutcome::Failed { reason: reason.into() },
        stdout_cut: 0,
        stderr_cut: 0,
        duration: started.elapsed(),
    }
}

#[async_trait]
impl TaskRunner for ProcessRunner {
    async fn run(&self, job: TaskJob, output: Arc<dyn OutputSink>, stop: StopSignal) -> TaskRun {
        let started = Instant::now();
        let Some(program) = job.command.first().cloned() else {
            return failed("the task has no command", started);
        };
        let limits = match &self.isolation {
            Isolation::Sandbox(_) => match job.limits.resolve(&self.defaults, &self.ceilings) {
                Ok(l) => Some(l),
                Err(e) => return failed(e.to_string(), started),
            },
            Isolation::Unconfined => None,
        };
        let context = serde_json::Value::Object(job.context.clone()).to_string();
        let (task_dir, identity, bytes) = (self.task_dir.clone(), self.identity.clone(), context.clone());
        let scratch =
            match tokio::task::spawn_blocking(move || Scratch::create(&task_dir, &identity, bytes.as_bytes())).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return failed(e, started),
                Err(e) => return failed(format!("cannot create a scratch folder: {e}"), started),
            };
        let (mut cmd, context_file, output_file, home) = match (&self.isolation, &limits) {
            (Isolation::Sandbox(sandbox), Some(limits)) => {
                let (context_file, output_file) = sandbox.files();
                let cmd = sandbox.command(&job.workdir, &scratch, limits, job.network, &job.command);
                (cmd, context_file, output_file, PathBuf::from(sandbox::SCRATCH_MOUNT))
            }
            _ => {
                tracing::warn!(tenant = %job.tenant, "running a task WITHOUT a sandbox (--unsafe-no-sandbox): it can \
                    read and write whatever the server can");
                let mut cmd = Command::new(&program);
                cmd.args(&job.command[1..]).current_dir(&job.workdir).env_clear();
                let home = scratch.path().to_owned();
                (cmd, home.join(CONTEXT_FILE), home.join(OUTPUT_FILE), home)
            }
        };
        cmd.env("PATH", TASK_PATH)
            .env("HOME", &home)
            .env("TMPDIR", &home)
            .env("LANG", "C.UTF-8")
            .env("TZ", "UTC")
            .envs(&job.env)
            .envs(job.secrets.iter().map(|(k, v)| (k, v.expose())))
            .env("CLOACINA_CONTEXT_FILE", &context_file)
            .env("CLOACINA_OUTPUT_FILE", &output_file)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let spawned = match (&self.isolation, &limits) {
            // The sandbox makes its own session, and with it the group.
            (Isolation::Sandbox(sandbox), Some(limits)) => sandbox.spawn(&mut cmd, &scratch.name(), limits),
            _ => cmd.process_group(0).spawn().map(|c| (c, None)).map_err(|e| format!("cannot start {program}: {e}")),
        };
        let (mut child, cgroup) = match spawned {
            Ok(c) => c,
            Err(e) => {
                scratch.remove().await;
                return failed(e, started);
            }
        };
        let group = child.id().and_then(|id| i32::try_from(id).ok()).map(Pid::from_raw);
        // Should this attempt be abandoned (its lease lost, the server draining), the whole
        // group dies with it, not only the direct child; in a sandbox, killing bubblewrap
        // takes every process of the attempt down.
        let _guard = GroupGuard(group);
        if let Some(mut stdin) = child.stdin.take() {
            // A task that never reads stdin must not block us: write in the background.
            // Behind a cgroup gate, its first line opens the gate.
            let gate = cgroup.is_some();
            tokio::spawn(async move {
                if gate && stdin.write_all(b"\n").await.is_err() {
                    return;
                }
                let _ = stdin.write_all(context.as_bytes()).await;
            });
        }
        let cap = self.log_cap;
        let stdout = child.stdout.take().map(|s| tokio::spawn(forward(s, OutputStream::Stdout, output.clone(), cap)));
        let stderr = child.stderr.take().map(|s| tokio::spawn(forward(s, OutputStream::Stderr, output, cap)));
        let ended = tokio::select! {
            waited = tokio::time::timeout(job.timeout, child.wait()) => Ended::Waited(waited),
            () = stop => Ended::Stopped,
        };
        // Whatever happened, nothing of the attempt may outlive it.
        kill_attempt(group);
        let collect = |h: Option<tokio::task::JoinHandle<Forwarded>>| async move {
            match h {
                Some(h) => h.await.unwrap_or_default(),
                None => Forwarded::default(),
            }
        };
        let status = match ended {
            Ended::Waited(Ok(status)) => Ok(status),
            Ended::Waited(Err(_)) => {
                let _ = child.wait().await;
                Err(TaskOutcome::TimedOut)
            }
            Ended::Stopped => {
                let _ = child.wait().await;
                Err(TaskOutcome::Stopped)
            }
        };
        let out = collect(stdout).await;
        let err = collect(stderr).await;
        let said = String::from_utf8_lossy(&err.said).into_owned();
        let enforced = cgroup.as_ref().and_then(cgroup::AttemptCgroup::ran_into);
        drop(cgroup);
        let outcome = match status {
            Err(ended) => ended,
            Ok(Err(e)) => TaskOutcome::Failed { reason: format!("cannot wait for the task: {e}") },
            Ok(Ok(s)) if s.success() => {
                let path = scratch.path().join(OUTPUT_FILE);
                let cap = self.output_cap;
                tokio::task::spawn_blocking(move || read_output(&path, cap))
                    .await
                    .unwrap_or_else(|e| TaskOutcome::Failed { reason: format!("cannot read its output file: {e}") })
            }
            Ok(Ok(s)) => {
                TaskOutcome::Failed { reason: explain::failure(s, &said, limits.as_ref(), enforced, &program) }
            }
        };
        scratch.remove().await;
        TaskRun { outcome, stdout_cut: out.cut, stderr_cut: err.cut, duration: started.elapsed() }
    }
}

/// How waiting for an attempt ended.
enum Ended {
    Waited(Result<std::io::Result<std::process::ExitStatus>, tokio::time::error::Elapsed>),
    Stopped,
}

/// Kills an attempt's process group when dropped.
struct GroupGuard(Option<Pid>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        kill_attempt(self.0);
    }
}

/// Kills the attempt started as `leader`, and every process in its group. The leader goes
/// first: one killed before it made its group (a sandbox makes its session just after the
/// fork) never forks again, and one killed after has its group to be found by, even at the
/// instant it forks.
fn kill_attempt(leader: Option<Pid>) {
    if let Some(pid) = leader {
        let _ = kill(pid, Signal::SIGKILL);
        let _ = killpg(pid, Signal::SIGKILL);
    }
}

/// The output file of a successful attempt: absent or empty is no output; anything but a
/// JSON object fails the attempt. The task owns the folder, so the file is opened without
/// following a symlink and must be a regular file: a task cannot make the server read
/// anything else in its place.
fn read_output(path: &Path, cap: u64) -> TaskOutcome {
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK).bits())
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return TaskOutcome::Succeeded { output: None },
        Err(e) => return TaskOutcome::Failed { reason: format!("cannot open its output file: {e}") },
    };
    let meta = match file.metadata() {
        Ok(m) if m.is_file() => m,
        Ok(_) => return TaskOutcome::Failed { reason: "its output file is not a regular file".into() },
        Err(e) => return TaskOutcome::Failed { reason: format!("cannot read its output file: {e}") },
    };
    if meta.len() > cap {
        return TaskOutcome::Failed { reason: format!("its output file is larger than {cap} bytes") };
    }
    let mut text = String::new();
    if let Err(e) = file.take(cap + 1).read_to_string(&mut text) {
        return TaskOutcome::Failed { reason: format!("cannot read its output file: {e}") };
    }
    if text.trim().is_empty() {
        return TaskOutcome::Succeeded { output: None };
    }
    match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(serde_json::Value::Object(map)) => TaskOutcome::Succeeded { output: Some(map) },
        Ok(_) => TaskOutcome::Failed { reason: "its output file holds JSON that is not an object".into() },
        Err(e) => TaskOutcome::Failed { reason: format!("its output file is not JSON: {e}") },
    }
}

#[cfg(test)]
mod tests;
