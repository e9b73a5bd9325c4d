//! The port traits: what the domain and its use cases need from the outside world.
//!
//! Each method's doc is a contract. The storage contract suite (`tests/contract`) checks the
//! storage ports against every adapter; the `mocks` feature generates mockall mocks of all.
//!
//! # Layout
//! - [`error`] — [`StoreError`], the failure every storage port reports.
//! - [`audit`] — [`AuditStore`]: reading and pruning the audit chains.
//! - [`archives`] — [`PackageArchives`], reading uploads whatever their format.
//! - [`keys`] — [`KeyStore`].
//! - [`tenants`] — [`TenantDirectory`], [`TenantStore`], [`Invalidation`], [`DatabaseHealth`].
//! - [`workflows`] — [`WorkflowStore`].
//! - [`packages`] — [`PackageStore`].
//! - [`secrets`] — [`SecretStore`]: a tenant's sealed secrets and wrapped data key.
//! - [`signing`] — [`SigningStore`]: the keys a tenant trusts to sign packages, its policy.
//! - [`export`] — [`TenantArchive`]: a tenant as a portable stream, and back.
//! - [`executions`] — [`ExecutionStore`].
//! - [`feed`] — [`EventFeed`]: a tenant's events as one stream, for live sockets.
//! - [`triggers`] — [`TriggerStore`]: triggers and the scheduler's passes.
//! - [`tickets`] — [`TicketStore`]: single-use WebSocket tickets.
//! - [`leader`] — [`LeaderLock`]: one leader for singleton work.
//! - [`metrics`] — [`Metrics`] and the closed label sets it counts by.
//! - [`engine`] — [`TaskQueue`], [`PackageFiles`], [`TaskRunner`] and what they exchange.
//! - [`system`] — [`Clock`], [`KeyGenerator`], [`SecretHasher`].

pub mod archives;
pub mod audit;
pub mod engine;
pub mod error;
pub mod executions;
pub mod export;
pub mod feed;
pub mod keys;
pub mod leader;
pub mod metrics;
pub mod packages;
pub mod secrets;
pub mod signing;
pub mod system;
pub mod tenants;
pub mod tickets;
pub mod triggers;
pub mod workflows;

pub use archives::*;
pub use audit::*;
pub use engine::*;
pub use error::*;
pub use executions::*;
pub use export::*;
pub use feed::*;
pub use keys::*;
pub use leader::*;
pub use metrics::*;
pub use packages::*;
pub use secrets::*;
pub use signing::*;
pub use system::*;
pub use tenants::*;
pub use tickets::*;
pub use triggers::*;
pub use workflows::*;
