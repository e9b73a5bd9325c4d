//! Cloacina's use cases: the services that drive the domain through its port traits.
//! They hold `Arc<dyn Port>`s (see `docs/architecture.md` for why) and know nothing of HTTP,
//! SQL or the command line.
//!
//! # Layout
//! - [`deps`] — [`Deps`], the bundle of ports every service is built from.
//! - the [`Metrics`] port (in the domain, re-exported here) that telemetry implements.
//! - [`audit`] — [`Audit`]: the entry each change records, reading chains, the prune, failed-auth bursts.
//! - [`authenticate`] — [`Authenticator`], bearer token → principal, with the verified-key cache.
//! - [`create_key`], [`list_keys`], [`revoke_key`]: key management on [`Keys`].
//! - [`census`] — [`Census`]: executions and the queue by state, counted when scraped.
//! - [`bootstrap`] — the first god key at start-up.
//! - [`tenant_transfer`] — [`TenantTransfer`]: a tenant exported whole, and imported.
//! - [`tenants`] — [`Tenants`]: tenant create, list, inspect, delete.
//! - [`workflows`] — [`Workflows`]: a tenant's workflows.
//! - [`packages`] — [`Packages`]: uploading and listing packages.
//! - [`executions`] — [`Executions`]: execute, follow, cancel and retry executions.
//! - [`secrets`] — [`Secrets`]: tenant secrets in and never out, opened for tasks; rewrap.
//! - [`signing`] — [`Signing`]: the keys a tenant trusts to sign packages, and its policy.
//! - [`engine`] — [`Engine`]: a server's workers, claiming and running ready tasks.
//! - [`tickets`] — [`Tickets`]: single-use WebSocket tickets.
//! - [`live`] — [`Live`]: execution events to sockets as they are committed.

pub mod audit;
pub mod authenticate;
pub mod bootstrap;
pub mod census;
pub mod create_key;
pub mod deps;
pub mod engine;
pub mod executions;
pub mod leader;
pub mod list_keys;
pub mod live;
pub mod packages;
pub mod revoke_key;
pub mod scheduler;
pub mod secrets;
pub mod signing;
pub mod tenant_transfer;
pub mod tenants;
pub mod tickets;
pub mod triggers;
pub mod workflows;

pub use audit::{Audit, AuditError};
pub use authenticate::{AuthError, Authenticator, Forgot, OnForget};
pub use bootstrap::{BootstrapOutcome, bootstrap};
pub use census::Census;
pub use cloacina_domain::ports::{
    AttemptOutcome, AuthOutcome, Metrics, NoMetrics, PoolProbe, PoolStats, TenantCensus, WorkerProbe,
};
pub use cloacina_domain::trigger::FireOutcome;
pub use create_key::{CreateKey, CreateKeyError, CreatedKey};
pub use deps::Deps;
pub use engine::{Engine, EngineConfig, EnginePorts, EngineRun};
pub use executions::{Accepted, ExecutionError, Executions};
pub use leader::{Leadership, SoleProcess};
pub use list_keys::{KeyScope, ListKeysError};
pub use live::{Live, LiveConfig, LiveError};
pub use packages::{PackageError, Packages};
pub use revoke_key::RevokeKeyError;
pub use scheduler::TriggerScheduler;
pub use secrets::{NoSecrets, Rewrapped, Secrets, SecretsServiceError};
pub use signing::{Signing, SigningError};
pub use tenant_transfer::TenantTransfer;
pub use tenants::{DeletedTenant, TenantError, Tenants};
pub use tickets::{Issued, Tickets};
pub use triggers::{TriggerDetail, TriggerError, Triggers};
pub use workflows::{WorkflowError, Workflows};

use std::sync::Arc;

/// Key management: create, list, revoke. Each use case lives in its own file.
#[derive(Clone)]
pub struct Keys {
    deps: Deps,
    auth: Arc<Authenticator>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys")
    }
}

impl Keys {
    /// Builds the service. `auth` is told about every change so its cache never serves a
    /// revoked key.
    pub fn new(deps: Deps, auth: Arc<Authenticator>) -> Self {
        Self { deps, auth }
    }
}

#[cfg(test)]
mod bootstrap_tests;
#[cfg(test)]
mod executions_tests;
#[cfg(test)]
mod keys_tests;
