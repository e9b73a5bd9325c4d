//! What the live feed reads: a tenant's events in id order, and a bell rung when new ones
//! are committed.

use std::sync::{Arc, RwLock};

use async_trait::async_trait;

use crate::execution::{EventRecord, ExecutionId, OutputRecord};
use crate::tenant::TenantName;

use super::{Lookup, StoreError};

/// Called with a tenant after a commit that stored events of it. It must return at once
/// (it runs on the storage adapter's listener or writer).
pub type EventBell = Arc<dyn Fn(&TenantName) + Send + Sync>;

/// A tenant's events, and its tasks' output, each as one stream, for live sockets. Where a
/// method returns an `Option`, it MUST be `None` when there is no such tenant; a [`Lookup`],
/// [`Lookup::NoTenant`].
///
/// # Errors
/// Every method fails with [`StoreError::Unavailable`] when the database cannot be reached
/// and [`StoreError::Unexpected`] for anything it cannot explain.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait EventFeed: Send + Sync {
    /// Up to `limit` events of any of the tenant's executions with an id above `since`, in id
    /// order. Ids only grow, but one committed later may have a lower id than one seen already
    /// (PostgreSQL hands out ids before commit); the feed's reader allows for that.
    async fn tenant_events(
        &self,
        tenant: &TenantName,
        since: i64,
        limit: u32,
    ) -> Result<Option<Vec<EventRecord>>, StoreError>;

    /// The highest event id the tenant has stored, 0 if it has none.
    async fn last_event_id(&self, tenant: &TenantName) -> Result<Option<i64>, StoreError>;

    /// Up to `limit` kept pieces of task output of any of the tenant's executions with an id
    /// above `since`, in id order (their own sequence, apart from the events'; the same
    /// caveat on commit order).
    async fn tenant_output(
        &self,
        tenant: &TenantName,
        since: i64,
        limit: u32,
    ) -> Result<Option<Vec<OutputRecord>>, StoreError>;

    /// The highest output piece id the tenant has stored, 0 if it has none.
    async fn last_output_id(&self, tenant: &TenantName) -> Result<Option<i64>, StoreError>;

    /// Up to `limit` kept pieces of one execution's output with an id above `since`, in id
    /// order; [`Lookup::Missing`] for no such execution.
    async fn execution_output(
        &self,
        tenant: &TenantName,
        id: ExecutionId,
        since: i64,
        limit: u32,
    ) -> Result<Lookup<Vec<OutputRecord>>, StoreError>;

    /// From now on, `bell` is rung with the tenant after every commit that stores events of
    /// it: on PostgreSQL on every server listening to the database (through `NOTIFY`), on
    /// SQLite in this process. A second bell replaces the first.
    fn ring_on_events(&self, bell: EventBell);
}

/// Where a storage adapter keeps the bell it rings. Cheap to clone; clones share the bell.
#[derive(Clone, Default)]
pub struct BellSlot(Arc<RwLock<Option<EventBell>>>);

impl std::fmt::Debug for BellSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BellSlot")
    }
}

impl BellSlot {
    /// Hangs `bell`, replacing any before it.
    pub fn hang(&self, bell: EventBell) {
        if let Ok(mut slot) = self.0.write() {
            *slot = Some(bell);
        }
    }

    /// Rings the bell, if one hangs, for `tenant`.
    pub fn ring(&self, tenant: &TenantName) {
        let bell = self.0.read().ok().and_then(|slot| slot.clone());
        if let Some(bell) = bell {
            bell(tenant);
        }
    }
}
