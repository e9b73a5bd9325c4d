//! A tenant's triggers, and the scheduler's passes over the due ones.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::audit::AuditEntry;
use crate::execution::ExecutionId;
use crate::tenant::TenantName;
use crate::trigger::{FireCounts, FireOutcome, TriggerRecord};

use super::{DueWork, Lookup, StoreError};

/// A page of triggers by name, and how many there are in all.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TriggerPage {
    pub items: Vec<TriggerRecord>,
    pub total: u64,
}

/// One execution a scheduler pass started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartedFire {
    pub trigger: String,
    pub execution: ExecutionId,
    pub scheduled_at: DateTime<Utc>,
    /// [`FireOutcome::Fired`] or [`FireOutcome::CaughtUp`].
    pub outcome: FireOutcome,
    pub created_at: DateTime<Utc>,
}

impl StartedFire {
    /// The execution `id` a pass created at `now` for `fire` of `trigger`.
    pub fn new(trigger: &TriggerRecord, id: ExecutionId, fire: &crate::trigger::Fire, now: DateTime<Utc>) -> Self {
        Self {
            trigger: trigger.name().to_owned(),
            execution: id,
            scheduled_at: fire.scheduled_at,
            outcome: fire.outcome,
            created_at: now,
        }
    }
}

/// What one pass over a tenant's due triggers did.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FirePass {
    /// Triggers looked at.
    pub triggers: usize,
    /// What became of the scheduled times they decided.
    pub counts: FireCounts,
    pub started: Vec<StartedFire>,
    /// Executions cancelled by overlap `cancel_other`.
    pub cancelled: u64,
}

/// A tenant's triggers. They are written only by putting a package version's workflows in
/// force ([`super::PackageStore`]) and by the methods here. Where a method returns an
/// `Option`, it MUST be `None` when there is no such tenant; where a [`Lookup`],
/// [`Lookup::NoTenant`] then and [`Lookup::Missing`] when there is no such trigger.
///
/// # Errors
/// Every method fails with [`StoreError::Unavailable`] when the database cannot be reached
/// and [`StoreError::Unexpected`] for anything it cannot explain (a stored cron that no
/// longer parses, for one).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait TriggerStore: Send + Sync {
    /// A page of the tenant's triggers, by name.
    async fn list_triggers(
        &self,
        tenant: &TenantName,
        limit: u32,
        offset: u64,
    ) -> Result<Option<TriggerPage>, StoreError>;

    async fn get_trigger(&self, tenant: &TenantName, name: &str) -> Result<Lookup<TriggerRecord>, StoreError>;

    /// Pauses or resumes a trigger at `at` ([`TriggerRecord::set_paused`]; idempotent),
    /// returning it as it now is, and wakes the schedulers. `audit` is appended in the same
    /// transaction when the trigger exists.
    async fn set_trigger_paused(
        &self,
        tenant: &TenantName,
        name: &str,
        paused: bool,
        at: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<Lookup<TriggerRecord>, StoreError>;

    /// Which tenants have a trigger due at `now`, and when the next one is. MUST be one cheap
    /// query whatever the number of tenants and triggers.
    async fn due_trigger_tenants(&self, now: DateTime<Utc>) -> Result<DueWork, StoreError>;

    /// One pass over up to `limit` of the tenant's triggers due at `now`, each decided by
    /// [`TriggerRecord::tick`] under its row's lock (two passes never decide one trigger at
    /// once): in one transaction per pass, the executions it starts (each scheduled time's
    /// key unique: a time already fired starts nothing), the cancels it asks for, and the
    /// trigger written back. Then sets the tenant's next due time.
    async fn fire_due(
        &self,
        tenant: &TenantName,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Option<FirePass>, StoreError>;

    /// Returns when triggers may have changed or come due (a wake-up from any replica), or
    /// after `max`.
    async fn wait_for_triggers(&self, max: std::time::Duration);

    /// The lane the tenant's passes run on: passes on one lane run one after another (they
    /// share a database connection), those on different lanes at once. The scheduler queues
    /// each lane's tenants apart, so a lane running slow holds back only its own tenants. A
    /// store without lanes answers 0 for every tenant. Cheap and answered from memory.
    fn pass_lane(&self, tenant: &TenantName) -> usize;
}
