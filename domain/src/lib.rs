//! Cloacina's domain: the rules and types every other crate builds on, and the port traits
//! through which the rest of the system reaches storage, time, randomness and hashing.
//!
//! This crate is pure: no database, HTTP, CLI or async runtime. CI checks that with
//! `cargo tree -p cloacina-domain -e normal`.
//!
//! # Layout
//! - [`key`] — the API key format (`clk_` + public id + secret + checksum), parsing, digests.
//! - [`secrets`] — tenant secrets: master and data keys, sealing, names, task references.
//! - [`secret`] — [`Secret`], a string that never prints.
//! - [`role`] — [`Role`] and the closed [`Permission`] catalogue.
//! - [`principal`] — who a verified key is ([`Principal`], [`Authority`]).
//! - [`audit`] — the audit trail: audited actions, entries, hash-chained rows, verification.
//! - [`authz`] — the authorisation decisions: route permissions and key minting/revoking.
//! - [`tenant`] — [`TenantName`], registry rows ([`TenantRecord`]) and [`NewTenant`].
//! - [`task_network`] — [`TaskNetwork`]: how tasks reach the network, per deployment and tenant.
//! - [`execution`] — executions: task states, what successes and failures change, contexts.
//! - [`bootstrap`] — the rule that decides whether start-up creates a god key.
//! - [`record`] — stored key rows ([`KeyRecord`]) and what creating one needs.
//! - [`workflow`] — [`WorkflowSummary`], a workflow as listings show it.
//! - [`package`] — workflow packages: the manifest, names, the task graph.
//! - [`trigger`] — cron triggers: schedules, catch-up and overlap, what a due trigger fires.
//! - [`ports`] — the port traits (key store, tenant directory, clock, key generator, hasher).

pub mod audit;
pub mod authz;
pub mod bootstrap;
pub mod execution;
pub mod key;
pub mod package;
pub mod ports;
pub mod principal;
pub mod record;
pub mod role;
pub mod secret;
pub mod secrets;
pub mod task_network;
pub mod tenant;
pub mod trigger;
pub mod workflow;

pub use authz::Denied;
pub use key::{ApiKeyId, KeyDigest, KeyFormatError, MintedKey, PresentedKey};
pub use principal::{Authority, Principal};
pub use record::{KeyName, KeyRecord, NewKey, StoredSecret};
pub use role::{Permission, PermissionScope, Role};
pub use secret::Secret;
pub use task_network::{Setting, TaskNetwork, TenantChange};
pub use tenant::{NewTenant, TenantDescription, TenantName, TenantRecord};
pub use workflow::WorkflowSummary;
