//! The PostgreSQL backend: the production store, shared by any number of replicas.
//!
//! Deployment-wide tables (`api_keys`, `tenants`) live in the `public` schema; each tenant
//! has a schema and a database role of its own, and every tenant-scoped transaction runs as
//! that role, so PostgreSQL itself refuses any statement that reaches into another tenant.
//! One pool serves every tenant; connections are recycled after a maximum lifetime.
//!
//! # Layout
//! - [`db`] — [`PgDb`], connecting, pool settings, error translation by SQLSTATE.
//! - [`migrate`] — embedded control and tenant migrations under an advisory lock.
//! - [`keys`] — [`KeyStore`](cloacina_domain::ports::KeyStore) for `api_keys`.
//! - [`workflows`] — a tenant's workflows.
//! - [`packages`] — uploaded packages.
//! - [`executions`] — executions and the engine's queue (`FOR UPDATE SKIP LOCKED`).
//! - `reads` — tenant reads on connections bound to one tenant at a time.
//! - `lanes` — the connections trigger passes and the census run on, each serving a fixed share of tenants.
//! - `census` — the executions census behind the metrics gauges, on the lanes.
//! - [`tenants`] — the registry, tenant schemas and roles, tenant transactions, `/ready`.
//! - [`leader`] — the leader lock: an advisory lock on a connection of its own.
//! - `locks` — every advisory lock key, each purpose its own.
//! - [`listen`] — cache invalidation across replicas with `LISTEN`/`NOTIFY`.

pub mod audit;
mod census;
pub mod db;
pub mod executions;
pub mod export;
pub mod keys;
mod lanes;
pub mod leader;
pub mod listen;
mod locks;
pub mod migrate;
pub mod packages;
mod reads;
pub mod secrets;
pub mod signing;
pub mod tenant_scope;
pub mod tenants;
pub mod tickets;
pub mod triggers;
pub mod workflows;

#[cfg(test)]
mod audit_tests;
#[cfg(test)]
mod lanes_tests;
#[cfg(test)]
mod probe;
#[cfg(test)]
mod reads_tests;
#[cfg(test)]
mod secrets_tests;
#[cfg(test)]
mod tests;

pub use db::{ConnectError, LoginRole, PgDb, PgSettings};
pub use leader::PgLeaderLock;
pub use listen::OnInvalidation;
pub use migrate::{MigrationReport, Pending};

#[cfg(test)]
mod contract {
    cloacina_contract::storage_contract!(async {
        let db = cloacina_testpg::TestPg::shared().database().await;
        let pg =
            crate::PgDb::connect(&cloacina_domain::Secret::new(db.url), &crate::PgSettings::default()).await.unwrap();
        pg.migrate().await.unwrap();
        std::sync::Arc::new(pg)
    });
}
