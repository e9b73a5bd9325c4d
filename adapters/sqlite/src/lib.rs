//! The embedded SQLite backend: single-tenant (`public`), nothing to install.
//!
//! Writes are funnelled through one connection behind a mutex and run as `BEGIN IMMEDIATE`
//! transactions, so concurrent requests queue in the process instead of meeting
//! `SQLITE_BUSY`; reads use a small set of WAL-mode connections that never block on the
//! writer. All database work runs on tokio's blocking threads.
//!
//! # Layout
//! - [`db`] — [`SqliteDb`], opening, pragmas, the connection set, error translation.
//! - [`migrate`] — the embedded migrations and their ledger.
//! - [`keys`] — [`KeyStore`](cloacina_domain::ports::KeyStore) for `api_keys`.
//! - [`workflows`] — a tenant's workflows.
//! - [`packages`] — uploaded packages.
//! - [`executions`] — executions and the engine's queue.
//! - [`tenants`] — the tenant directory (`public` only) and the health check.

pub mod audit;
pub mod db;
pub mod executions;
pub mod keys;
pub mod migrate;
pub mod packages;
pub mod secrets;
pub mod signing;
pub mod tenants;
pub mod tickets;
pub mod triggers;
pub mod workflows;

pub use db::{OpenError, SqliteDb, SqliteLocation};

#[cfg(test)]
mod audit_tests;

#[cfg(test)]
mod contract_file {
    // A file with WAL readers: the way the server runs.
    cloacina_contract::storage_contract!(async {
        let dir = tempfile::tempdir().unwrap().keep();
        let db = crate::SqliteDb::open(&crate::SqliteLocation::File(dir.join("nested/cloacina.db"))).unwrap();
        db.migrate().await.unwrap();
        std::sync::Arc::new(db)
    });
}

#[cfg(test)]
mod contract_memory {
    cloacina_contract::storage_contract!(async {
        let db = crate::SqliteDb::open(&crate::SqliteLocation::Memory).unwrap();
        db.migrate().await.unwrap();
        std::sync::Arc::new(db)
    });
}
