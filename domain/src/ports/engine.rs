//! The engine's queue, the unpacked package files its tasks run in, and the runner.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::execution::{AttemptReport, ClaimedTask, OutputPiece, Recorded, TaskKey};
use crate::tenant::TenantName;

use super::StoreError;

/// Tenants with work due, and when the next one's work falls due.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DueWork {
    /// Tenants with a ready task or an expired lease now.
    pub tenants: Vec<TenantName>,
    /// The earliest time another tenant's work falls due, if known.
    pub next: Option<DateTime<Utc>>,
}

/// The engine's queue: ready tasks, claims with leases, outcomes. A report whose attempt no
/// longer holds its task (the domain's `AttemptReport::holds`) MUST come back
/// `Recorded::Stale`, changing nothing.
///
/// # Errors
/// Every method fails with [`StoreError::Unavailable`] when the database cannot be reached
/// (callers retry later), and [`StoreError::Unexpected`] for anything it cannot explain.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait TaskQueue: Send + Sync {
    /// Which tenants have work due at `now`. MUST be one cheap query whatever the number of
    /// tenants.
    async fn due_tenants(&self, now: DateTime<Utc>) -> Result<DueWork, StoreError>;

    /// First makes the tenant's running tasks whose lease expired before `now` ready again
    /// (at-least-once: the attempt does not count), then claims up to `limit` ready tasks
    /// due at `now`, oldest first, for `worker` until `now + lease`. Two callers never claim
    /// the same attempt.
    async fn claim(
        &self,
        tenant: &TenantName,
        worker: &str,
        now: DateTime<Utc>,
        lease: std::time::Duration,
        limit: usize,
    ) -> Result<Vec<ClaimedTask>, StoreError>;

    /// Extends `worker`'s leases on these tasks to `until`; returns the ones it still holds.
    async fn renew(
        &self,
        tenant: &TenantName,
        worker: &str,
        keys: Vec<TaskKey>,
        until: DateTime<Utc>,
    ) -> Result<Vec<TaskKey>, StoreError>;

    /// Records how attempts ended, with the domain's rules, all in one transaction (reports
    /// of one execution applied in order); answers one [`Recorded`] per report, in order:
    /// [`Recorded::Stale`] (nothing changed) for an attempt no longer `worker`'s.
    async fn record(
        &self,
        tenant: &TenantName,
        worker: &str,
        reports: Vec<AttemptReport>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Recorded>, StoreError>;

    /// Keeps a piece of an attempt's output as it runs, whoever holds the task now: it is that
    /// attempt's output either way. Changes nothing else.
    async fn append_output(
        &self,
        tenant: &TenantName,
        piece: OutputPiece,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Gives back attempts `worker` will not finish (shutdown): ready again at `now`, the
    /// attempt not counted.
    async fn release(
        &self,
        tenant: &TenantName,
        worker: &str,
        keys: Vec<TaskKey>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Returns when work may have become due (a wake-up from any replica), or after `max`.
    async fn wait_for_work(&self, max: std::time::Duration);
}

/// Where a package version's files are, unpacked, for its tasks to run in.
///
/// # Errors
/// A text saying what failed (the tenant or version gone, an unpacking refused); the engine
/// fails the attempt with it.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait PackageFiles: Send + Sync {
    /// The unpacked folder of package version `package_id` of `tenant`, unpacking it first if
    /// this server has not yet. The text says what failed.
    async fn workdir(&self, tenant: &TenantName, package_id: uuid::Uuid) -> Result<std::path::PathBuf, String>;

    /// Removes every package folder of `tenant` this server unpacked (the tenant was
    /// deleted). Returns how many it removed; failures are logged, not returned.
    async fn forget_tenant(&self, tenant: &TenantName) -> usize;
}

/// One attempt of one task, as the engine hands it to a runner.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskJob {
    /// Whose task it is.
    pub tenant: crate::TenantName,
    /// The unpacked package folder: the working directory.
    pub workdir: std::path::PathBuf,
    /// The argv.
    pub command: Vec<String>,
    /// The manifest's `env` for the task.
    pub env: std::collections::BTreeMap<String, String>,
    /// Variables from the tenant's secrets, set in the task's process and nowhere else.
    pub secrets: Vec<(String, crate::Secret)>,
    /// The context the task receives.
    pub context: serde_json::Map<String, serde_json::Value>,
    pub timeout: std::time::Duration,
    /// What the task asks to use; the runner resolves it against its defaults and ceilings.
    pub limits: crate::package::TaskLimits,
    /// The tenant's own task network, if a god key set one; the runner otherwise uses the
    /// deployment's ([`crate::TaskNetwork::for_tenant`]).
    pub network: Option<crate::TaskNetwork>,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskOutcome {
    /// Exit status 0; the JSON object it wrote to `$CLOACINA_OUTPUT_FILE`, if any.
    Succeeded { output: Option<serde_json::Map<String, serde_json::Value>> },
    /// It could not start, exited non-zero, was killed by a signal, or wrote an output that
    /// is not a JSON object. The text says which.
    Failed { reason: String },
    /// Still running at its timeout: its whole process group was killed.
    TimedOut,
    /// Told to stop before it ended (its stop signal resolved): its whole process group was
    /// killed, and it has no outcome to record.
    Stopped,
}

/// What an attempt produced. Its output went to the [`OutputSink`] as it came; the runner
/// kept each stream up to its cap and counts here what it cut.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskRun {
    pub outcome: TaskOutcome,
    /// Bytes of each stream cut at the cap (not passed to the sink).
    pub stdout_cut: u64,
    pub stderr_cut: u64,
    pub duration: std::time::Duration,
}

impl TaskRun {
    /// Whether either stream was cut.
    pub fn truncated(&self) -> bool {
        self.stdout_cut > 0 || self.stderr_cut > 0
    }
}

/// One of an attempt's two output streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputStream {
    Stdout,
    Stderr,
}

/// Where a running attempt's output goes as it comes, in order within each stream.
pub trait OutputSink: Send + Sync {
    /// Takes bytes of one stream. MUST NOT block (the engine buffers them and keeps what came
    /// about every second).
    fn write(&self, stream: OutputStream, bytes: &[u8]);
}

/// Resolves when a running attempt must stop at once (its execution cancelled, its lease
/// lost, the server shutting down); never resolving means run to the end.
pub type StopSignal = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// Runs task attempts. Implementations MUST enforce the timeout, MUST NOT pass the server's
/// own environment to the task, MUST pass the task's output to `output` as it comes, MUST stop
/// the attempt when `stop` resolves, and MUST leave nothing of the attempt running when `run`
/// returns.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait TaskRunner: Send + Sync {
    async fn run(&self, job: TaskJob, output: std::sync::Arc<dyn OutputSink>, stop: StopSignal) -> TaskRun;
}

/// The tenant's secrets, opened for a task attempt that declares them.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait SecretSource: Send + Sync {
    /// The values of `wanted` (variable → `secret.field`) in `tenant`, as variables.
    ///
    /// # Errors
    /// A message naming what is missing or why nothing can be opened (no master key, a
    /// secret or field that does not exist), never a value.
    async fn resolve(
        &self,
        tenant: &crate::TenantName,
        wanted: &std::collections::BTreeMap<String, String>,
    ) -> Result<Vec<(String, crate::Secret)>, String>;
}
