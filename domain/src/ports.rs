//! The port traits: what the domain and its use cases need from the outside world.
//!
//! Each method's doc is a contract. The storage contract suite (`tests/contract`) checks the
//! storage ports against every adapter; the `mocks` feature generates mockall mocks of all.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::execution::{
    AttemptReport, ClaimedTask, EventRecord, ExecutionCreated, ExecutionId, ExecutionPage, ExecutionQuery,
    ExecutionRecord, NewExecution, Recorded, TaskKey, TaskLog, TaskRecord, Transition,
};
use crate::key::ApiKeyId;
use crate::package::{NewPackage, PackageRecord, PackageStored, StoredArchive, StoredManifest};
use crate::record::{KeyRecord, NewKey};
use crate::secret::Secret;
use crate::task_network::TenantChange;
use crate::tenant::{NewTenant, TenantName, TenantRecord};
use crate::workflow::WorkflowSummary;

/// A storage failure, as the use cases see it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or is shutting down: retry later (503).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A uniqueness rule was broken (the constraint is named).
    #[error("conflict: {0}")]
    Conflict(String),
    /// This backend cannot do it (multi-tenancy on SQLite). The text is for the client.
    #[error("{0}")]
    Unsupported(String),
    /// Anything else. The text is for logs, never for clients.
    #[error("unexpected storage error: {0}")]
    Unexpected(String),
}

/// What a revocation did.
#[derive(Debug, Clone, PartialEq)]
pub enum RevokeOutcome {
    /// The key is now revoked; the row as it was before.
    Revoked(KeyRecord),
    /// It was revoked already; nothing changed.
    AlreadyRevoked(KeyRecord),
    /// No key has this id.
    NotFound,
    /// It is the last active god key; nothing changed.
    LastGodKey,
}

/// The `api_keys` table.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// Inserts a new row.
    ///
    /// MUST return [`StoreError::Conflict`] if the id exists, and leave the table unchanged.
    async fn insert(&self, key: &NewKey) -> Result<(), StoreError>;

    /// Inserts `key`, a god key, only if no active god key exists at `now`; the check and the
    /// insert are one atomic step, so concurrent callers (replicas) create exactly one.
    ///
    /// MUST return `true` if it inserted, `false` if an active god key already existed.
    async fn insert_first_god_key(&self, key: &NewKey, now: DateTime<Utc>) -> Result<bool, StoreError>;

    /// The row with this id, revoked or not. MUST return `None` if there is none.
    async fn find(&self, id: ApiKeyId) -> Result<Option<KeyRecord>, StoreError>;

    /// Every row (`tenant` = `None`) or the rows of one tenant's keys, revoked ones included,
    /// oldest first.
    async fn list(&self, tenant: Option<TenantName>) -> Result<Vec<KeyRecord>, StoreError>;

    /// The active (at `now`) rows whose secret is an argon2id hash: operator-supplied keys.
    async fn active_supplied_keys(&self, now: DateTime<Utc>) -> Result<Vec<KeyRecord>, StoreError>;

    /// The number of active (at `now`) god keys.
    async fn count_active_god_keys(&self, now: DateTime<Utc>) -> Result<u64, StoreError>;

    /// Marks a key revoked at `at`. Refuses, atomically, to revoke the last active god key.
    ///
    /// MUST return [`RevokeOutcome::NotFound`] for an unknown id,
    /// [`RevokeOutcome::AlreadyRevoked`] (unchanged) for a revoked key,
    /// [`RevokeOutcome::LastGodKey`] (unchanged) when no other active god key would remain.
    async fn revoke(&self, id: ApiKeyId, at: DateTime<Utc>) -> Result<RevokeOutcome, StoreError>;

    /// Records when keys were last used. Unknown ids are ignored; an older time never
    /// replaces a newer one.
    async fn record_last_used(&self, uses: Vec<(ApiKeyId, DateTime<Utc>)>) -> Result<(), StoreError>;
}

/// Which tenants exist.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait TenantDirectory: Send + Sync {
    /// MUST return `true` for `public` always, and for every tenant created and not deleted.
    async fn exists(&self, tenant: &TenantName) -> Result<bool, StoreError>;
}

/// What deleting a tenant did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantDeleted {
    /// Gone: its keys revoked (this many were active), its schema and role dropped.
    Deleted { revoked_keys: u64 },
    /// No tenant has this name.
    NotFound,
}

/// The tenant registry and the database objects behind each tenant.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait TenantStore: Send + Sync {
    /// Creates the registry row, the schema, the database role (with `new.db_password`), its
    /// grants and the tenant migrations: all of it, or (on any failure) none of it.
    ///
    /// MUST return [`StoreError::Conflict`] if the name is taken, and
    /// [`StoreError::Unsupported`] on a single-tenant backend.
    async fn create_tenant(&self, new: &NewTenant) -> Result<TenantRecord, StoreError>;

    /// Every tenant, `public` first, then by name.
    async fn list_tenants(&self) -> Result<Vec<TenantRecord>, StoreError>;

    /// One tenant. MUST return `None` if there is none.
    async fn get_tenant(&self, name: &TenantName) -> Result<Option<TenantRecord>, StoreError>;

    /// Applies `change` to the tenant's settings and returns the tenant as it now is; a
    /// claim begun after this returns sees the new settings. MUST return `None` if there is
    /// no such tenant (on a single-tenant backend, every tenant but `public`).
    async fn update_tenant(&self, name: &TenantName, change: &TenantChange)
    -> Result<Option<TenantRecord>, StoreError>;

    /// In one transaction: revokes the tenant's active keys (at `at`), drops its schema and
    /// role, deletes its row, and tells every replica to forget what it cached of it.
    ///
    /// MUST return [`StoreError::Unsupported`] on a single-tenant backend; callers never pass
    /// `public`.
    async fn delete_tenant(&self, name: &TenantName, at: DateTime<Utc>) -> Result<TenantDeleted, StoreError>;
}

/// A tenant's workflows. Every method runs in the tenant's own scope (on PostgreSQL, as its
/// database role in its schema).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait WorkflowStore: Send + Sync {
    /// The tenant's workflows by name. MUST return `None` if the tenant does not exist.
    async fn list_workflows(&self, tenant: &TenantName) -> Result<Option<Vec<WorkflowSummary>>, StoreError>;

    /// One workflow. MUST return `None` if the tenant does not exist, `Some(None)` if the
    /// workflow does not.
    async fn get_workflow(
        &self,
        tenant: &TenantName,
        name: &str,
    ) -> Result<Option<Option<WorkflowSummary>>, StoreError>;

    /// Pauses or resumes a workflow (idempotent), returning it as it now is; `None` and
    /// `Some(None)` as for [`WorkflowStore::get_workflow`].
    async fn set_paused(
        &self,
        tenant: &TenantName,
        name: &str,
        paused: bool,
        at: DateTime<Utc>,
    ) -> Result<Option<Option<WorkflowSummary>>, StoreError>;
}

/// A tenant's uploaded packages. Every method runs in the tenant's own scope.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait PackageStore: Send + Sync {
    /// Stores an upload and, in the same transaction, puts its workflows in force unless a
    /// higher version of the same package is (paused flags are kept). MUST return `None` if
    /// the tenant does not exist; [`PackageStored::Existing`], changing nothing, for bytes
    /// uploaded before; [`StoreError::Conflict`] for the same name and version with other
    /// content, or a workflow name another package declares.
    async fn store_package(&self, tenant: &TenantName, new: &NewPackage) -> Result<Option<PackageStored>, StoreError>;

    /// The tenant's packages, by name then newest version first. `None` if no such tenant.
    async fn list_packages(&self, tenant: &TenantName) -> Result<Option<Vec<PackageRecord>>, StoreError>;

    /// Deletes one version. If its workflows were in force, the highest remaining version's
    /// take their place (paused flags kept); with none left they go. Returns the deleted row;
    /// `None` if no such tenant, `Some(None)` if no such version.
    async fn delete_package(
        &self,
        tenant: &TenantName,
        name: &str,
        version: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<Option<PackageRecord>>, StoreError>;

    /// The id and `package.toml` of one version. `None` if no such tenant, `Some(None)` if no
    /// such version.
    async fn package_manifest(
        &self,
        tenant: &TenantName,
        name: &str,
        version: &str,
    ) -> Result<Option<Option<StoredManifest>>, StoreError>;

    /// The content hash and archive bytes of one version, by id. `None` if no such tenant,
    /// `Some(None)` if no such version.
    async fn package_archive(
        &self,
        tenant: &TenantName,
        id: uuid::Uuid,
    ) -> Result<Option<Option<StoredArchive>>, StoreError>;
}

/// A tenant's executions. Every method runs in the tenant's own scope; `None` means no such
/// tenant and `Some(None)` (where it appears) no such execution.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait ExecutionStore: Send + Sync {
    /// In one transaction: unless the idempotency key was used before (then
    /// [`ExecutionCreated::Existing`] with the first execution) and unless the workflow is
    /// paused ([`ExecutionCreated::Paused`]) or its package version gone
    /// ([`ExecutionCreated::Gone`]), stores the execution, its tasks as the plan starts them,
    /// and an `execution_created` event, and wakes the workers.
    async fn create_execution(
        &self,
        tenant: &TenantName,
        new: &NewExecution,
    ) -> Result<Option<ExecutionCreated>, StoreError>;

    /// A page of executions, newest first, and the number matching in all.
    async fn list_executions(
        &self,
        tenant: &TenantName,
        query: &ExecutionQuery,
    ) -> Result<Option<ExecutionPage>, StoreError>;

    async fn get_execution(
        &self,
        tenant: &TenantName,
        id: ExecutionId,
    ) -> Result<Option<Option<ExecutionRecord>>, StoreError>;

    /// The execution's tasks in plan order.
    async fn execution_tasks(
        &self,
        tenant: &TenantName,
        id: ExecutionId,
    ) -> Result<Option<Option<Vec<TaskRecord>>>, StoreError>;

    /// Up to `limit` events with an id above `since`, oldest first.
    async fn execution_events(
        &self,
        tenant: &TenantName,
        id: ExecutionId,
        since: i64,
        limit: u32,
    ) -> Result<Option<Option<Vec<EventRecord>>>, StoreError>;

    /// The captured output of every attempt of one task, oldest first (empty if it never ran).
    async fn task_logs(
        &self,
        tenant: &TenantName,
        id: ExecutionId,
        task: &str,
    ) -> Result<Option<Option<Vec<TaskLog>>>, StoreError>;

    /// Cancels every unfinished task of an unfinished execution, atomically.
    /// [`Transition::Refused`] (unchanged) if it had finished.
    async fn cancel_execution(
        &self,
        tenant: &TenantName,
        id: ExecutionId,
        at: DateTime<Utc>,
    ) -> Result<Option<Transition>, StoreError>;

    /// Runs the unsuccessful tasks of a failed or cancelled execution again (domain
    /// `Plan::settle_retry`), atomically. [`Transition::Refused`] (unchanged) otherwise.
    async fn retry_execution(
        &self,
        tenant: &TenantName,
        id: ExecutionId,
        at: DateTime<Utc>,
    ) -> Result<Option<Transition>, StoreError>;

    /// Deletes finished executions (with their tasks, events and logs) that finished before
    /// `before`; returns how many.
    async fn prune_executions(&self, tenant: &TenantName, before: DateTime<Utc>) -> Result<u64, StoreError>;
}

/// Tenants with work due, and when the next one's work falls due.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DueWork {
    /// Tenants with a ready task or an expired lease now.
    pub tenants: Vec<TenantName>,
    /// The earliest time another tenant's work falls due, if known.
    pub next: Option<DateTime<Utc>>,
}

/// The engine's queue: ready tasks, claims with leases, outcomes.
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
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait PackageFiles: Send + Sync {
    /// The unpacked folder of package version `package_id` of `tenant`, unpacking it first if
    /// this server has not yet. The text says what failed.
    async fn workdir(&self, tenant: &TenantName, package_id: uuid::Uuid) -> Result<std::path::PathBuf, String>;
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
}

/// What an attempt produced.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskRun {
    pub outcome: TaskOutcome,
    /// Captured output, each stream capped; `truncated` says whether anything was cut.
    pub stdout: String,
    pub stderr: String,
    pub truncated: bool,
    pub duration: std::time::Duration,
}

/// Runs task attempts. Implementations MUST enforce the timeout, MUST NOT pass the server's
/// own environment to the task, and MUST leave nothing of the attempt running when `run`
/// returns.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait TaskRunner: Send + Sync {
    async fn run(&self, job: TaskJob) -> TaskRun;
}

/// What another replica (or this one) changed that caches must forget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalidation {
    /// One key was revoked.
    Key(ApiKeyId),
    /// A tenant was deleted (its keys were revoked with it).
    Tenant(TenantName),
    /// The feed was interrupted: anything may have changed.
    Everything,
}

/// Whether the database answers and its schema is current.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait DatabaseHealth: Send + Sync {
    /// One cheap round trip. MUST fail with [`StoreError::Unavailable`] when the database
    /// cannot be queried.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// The time. Adapters and services never call `now()` themselves.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// Ids and secret bytes.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait KeyGenerator: Send + Sync {
    /// A fresh random key id.
    fn key_id(&self) -> ApiKeyId;
    /// 32 bytes from a cryptographically secure source.
    fn secret(&self) -> [u8; 32];
}

/// Hashing failed (bad parameters or a corrupt stored hash).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(pub String);

/// Slow, salted hashing for operator-supplied keys (argon2id).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait SecretHasher: Send + Sync {
    /// A PHC string for `secret`.
    async fn hash(&self, secret: &Secret) -> Result<String, HashError>;
    /// Whether `secret` matches the PHC string `hash`.
    async fn verify(&self, secret: &Secret, hash: &str) -> Result<bool, HashError>;
}
