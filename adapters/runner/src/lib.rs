//! The process runner (product.md §5): each task attempt is its `command`, run in the unpacked
//! package folder as the leader of a process group of its own.
//!
//! - The context JSON arrives on stdin and in `$CLOACINA_CONTEXT_FILE`; a JSON object the task
//!   writes to `$CLOACINA_OUTPUT_FILE` is its output.
//! - The environment is built from nothing: `PATH`, `HOME` and `TMPDIR` (a scratch folder of the
//!   attempt's own), `LANG`, `TZ`, the two file variables, and the task's manifest `env`. No
//!   variable of the server's (database URL, keys) reaches a task.
//! - stdout and stderr are captured up to a cap each; the rest is read and dropped, so a
//!   chatty task never blocks on a full pipe.
//! - At the timeout the whole process group is killed, so a task's children die with it; the
//!   group is killed too whenever the attempt ends or is abandoned, so nothing outlives it.
//! - [`packages`]: package versions unpacked on this server's disk, the folders tasks run in.

pub mod packages;

pub use packages::PackageCache;

use std::process::Stdio;
use std::time::Instant;

use async_trait::async_trait;
use cloacina_domain::ports::{TaskJob, TaskOutcome, TaskRun, TaskRunner};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

/// The `PATH` tasks get.
pub const TASK_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// The process runner.
#[derive(Debug, Clone)]
pub struct ProcessRunner {
    /// The most bytes kept of stdout, and of stderr.
    pub log_cap: usize,
    /// The largest output file read.
    pub output_cap: u64,
}

impl Default for ProcessRunner {
    fn default() -> Self {
        Self { log_cap: 1024 * 1024, output_cap: 16 * 1024 * 1024 }
    }
}

/// Reads a stream to its end, keeping the first `cap` bytes; returns them and whether more came.
async fn capped(mut stream: impl AsyncRead + Unpin, cap: usize) -> (Vec<u8>, bool) {
    let mut kept = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    let mut cut = false;
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return (kept, cut),
            Ok(n) => {
                let room = cap.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
                cut |= n > room;
            }
        }
    }
}

fn failed(reason: impl Into<String>, started: Instant) -> TaskRun {
    TaskRun {
        outcome: TaskOutcome::Failed { reason: reason.into() },
        stdout: String::new(),
        stderr: String::new(),
        truncated: false,
        duration: started.elapsed(),
    }
}

#[async_trait]
impl TaskRunner for ProcessRunner {
    async fn run(&self, job: TaskJob) -> TaskRun {
        let started = Instant::now();
        let Some((program, args)) = job.command.split_first() else {
            return failed("the task has no command", started);
        };
        let scratch = match tempfile::Builder::new().prefix("cloacina-task-").tempdir() {
            Ok(d) => d,
            Err(e) => return failed(format!("cannot create a scratch folder: {e}"), started),
        };
        let context_file = scratch.path().join("context.json");
        let output_file = scratch.path().join("output.json");
        let context = serde_json::Value::Object(job.context.clone()).to_string();
        if let Err(e) = std::fs::write(&context_file, &context) {
            return failed(format!("cannot write the context file: {e}"), started);
        }
        let mut cmd = Command::new(program);
        cmd.args(args)
            .current_dir(&job.workdir)
            .env_clear()
            .env("PATH", TASK_PATH)
            .env("HOME", scratch.path())
            .env("TMPDIR", scratch.path())
            .env("LANG", "C.UTF-8")
            .env("TZ", "UTC")
            .envs(&job.env)
            .env("CLOACINA_CONTEXT_FILE", &context_file)
            .env("CLOACINA_OUTPUT_FILE", &output_file)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => return failed(format!("cannot start {program}: {e}"), started),
        };
        let group = child.id().and_then(|id| i32::try_from(id).ok()).map(Pid::from_raw);
        // Should this attempt be abandoned (its lease lost, the server draining), the whole
        // group dies with it, not only the direct child.
        let _guard = GroupGuard(group);
        if let Some(mut stdin) = child.stdin.take() {
            // A task that never reads stdin must not block us: write in the background.
            tokio::spawn(async move {
                let _ = stdin.write_all(context.as_bytes()).await;
            });
        }
        let cap = self.log_cap;
        let stdout = child.stdout.take().map(|s| tokio::spawn(capped(s, cap)));
        let stderr = child.stderr.take().map(|s| tokio::spawn(capped(s, cap)));
        let waited = tokio::time::timeout(job.timeout, child.wait()).await;
        // Whatever happened, nothing of the attempt may outlive it.
        if let Some(pgid) = group {
            let _ = killpg(pgid, Signal::SIGKILL);
        }
        let status = match waited {
            Ok(status) => Some(status),
            Err(_) => {
                let _ = child.wait().await;
                None
            }
        };
        let collect = |h: Option<tokio::task::JoinHandle<(Vec<u8>, bool)>>| async move {
            match h {
                Some(h) => h.await.unwrap_or_default(),
                None => (Vec::new(), false),
            }
        };
        let (out, out_cut) = collect(stdout).await;
        let (err, err_cut) = collect(stderr).await;
        let outcome = match status {
            None => TaskOutcome::TimedOut,
            Some(Err(e)) => TaskOutcome::Failed { reason: format!("cannot wait for the task: {e}") },
            Some(Ok(s)) if s.success() => self.output(&output_file),
            Some(Ok(s)) => TaskOutcome::Failed {
                reason: match s.code() {
                    Some(code) => format!("exited with status {code}"),
                    None => "killed by a signal".to_owned(),
                },
            },
        };
        TaskRun {
            outcome,
            stdout: String::from_utf8_lossy(&out).into_owned(),
            stderr: String::from_utf8_lossy(&err).into_owned(),
            truncated: out_cut || err_cut,
            duration: started.elapsed(),
        }
    }
}

/// Kills a process group when dropped.
struct GroupGuard(Option<Pid>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.0 {
            let _ = killpg(pgid, Signal::SIGKILL);
        }
    }
}

impl ProcessRunner {
    /// The output file of a successful attempt: absent or empty is no output; anything but a
    /// JSON object fails the attempt.
    fn output(&self, path: &std::path::Path) -> TaskOutcome {
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(_) => return TaskOutcome::Succeeded { output: None },
        };
        if meta.len() > self.output_cap {
            return TaskOutcome::Failed { reason: format!("its output file is larger than {} bytes", self.output_cap) };
        }
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => return TaskOutcome::Failed { reason: format!("cannot read its output file: {e}") },
        };
        if text.trim().is_empty() {
            return TaskOutcome::Succeeded { output: None };
        }
        match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(serde_json::Value::Object(map)) => TaskOutcome::Succeeded { output: Some(map) },
            Ok(_) => TaskOutcome::Failed { reason: "its output file holds JSON that is not an object".into() },
            Err(e) => TaskOutcome::Failed { reason: format!("its output file is not JSON: {e}") },
        }
    }
}

#[cfg(test)]
mod tests;
