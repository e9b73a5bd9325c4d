//! The audit trail's chains: reading, pruning, and rows that record no change of their own.
//!
//! Rows for changes are not written here: each change's store method takes the change's
//! [`AuditEntry`] and appends it in the change's own transaction (fail closed).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::audit::{AuditEntry, AuditFilter, AuditRecord, ChainHead};
use crate::tenant::TenantName;

use super::StoreError;

/// Which chain: a tenant's, or the deployment's own (god and deployment actions).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Chain {
    Control,
    Tenant(TenantName),
}

impl Chain {
    /// The chain an entry belongs to.
    pub fn of(entry: &AuditEntry) -> Chain {
        entry.tenant.clone().map_or(Chain::Control, Chain::Tenant)
    }
}

/// A page of one chain's rows, and where the chain stands.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditPage {
    /// With `filter.after`: oldest first, after it; else newest first (before `filter.before`).
    pub items: Vec<AuditRecord>,
    /// The number of rows matching the filter's action, actor and time (not its cursor).
    pub total: u64,
    pub head: ChainHead,
}

/// The chains' rows.
///
/// # Errors
/// Every method fails with [`StoreError::Unavailable`] when the database cannot be reached
/// and [`StoreError::Unexpected`] for anything it cannot explain.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends each entry to its chain ([`Chain::of`]), all in one transaction: for rows that
    /// record no change of their own (failed authentication bursts). Entries of a tenant that
    /// no longer exists are dropped.
    async fn append_audit(&self, entries: &[AuditEntry]) -> Result<(), StoreError>;

    /// Up to `limit` rows of a chain matching `filter`, and its head. MUST return `None` when
    /// the chain is a tenant's that does not exist.
    async fn list_audit(
        &self,
        chain: &Chain,
        filter: &AuditFilter,
        limit: u32,
    ) -> Result<Option<AuditPage>, StoreError>;

    /// Removes the chain's rows older than `before`, from its start only (a row is kept if any
    /// row before it is), and moves the head's anchor to the last row removed, so the chain
    /// still verifies. Returns how many rows went. `0` for a tenant that does not exist.
    async fn prune_audit(&self, chain: &Chain, before: DateTime<Utc>) -> Result<u64, StoreError>;
}
