//! The trigger scheduler a server runs (docs/triggers.md): it asks which tenants have a
//! trigger due, runs a pass over each (the store locks, the domain decides), and sleeps until
//! the next due time, woken early when triggers change anywhere. Every replica runs one: the
//! passes' row locks and each fire's unique key keep every scheduled time to one execution,
//! and a replica that dies leaves nothing for the others to wait on.
//!
//! Idle tenants cost nothing: with nothing due, the scheduler makes one query per wake-up
//! (at the next due time, a change, or the backstop), whatever the number of triggers.

use std::sync::Arc;
use std::time::Duration;

use cloacina_domain::TenantName;
use cloacina_domain::ports::{Clock, Metrics, StoreError, TriggerStore};
use cloacina_domain::trigger::FireOutcome;
use futures::StreamExt as _;
use tokio::sync::watch;

/// How many triggers one pass decides at most; a tenant with more gets further passes.
pub const PASS_LIMIT: usize = 100;

/// What a scheduler needs.
pub struct TriggerScheduler {
    pub store: Arc<dyn TriggerStore>,
    pub clock: Arc<dyn Clock>,
    /// Fires by outcome, and each started fire's lateness.
    pub metrics: Arc<dyn Metrics>,
    /// How many tenants' passes are under way at once on each of the store's lanes
    /// ([`TriggerStore::pass_lane`]): one runs, the rest wait for the lane with their tenant
    /// looked up, so the lane's connection does not idle between two passes.
    pub per_lane: usize,
    /// The longest it sleeps without a wake-up (a missed notification costs at most this).
    pub backstop: Duration,
}

impl std::fmt::Debug for TriggerScheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TriggerScheduler")
            .field("backstop", &self.backstop)
            .field("per_lane", &self.per_lane)
            .finish_non_exhaustive()
    }
}

/// What a tenant's passes need, cloned into the task each runs in.
#[derive(Clone)]
struct Passes {
    store: Arc<dyn TriggerStore>,
    clock: Arc<dyn Clock>,
    metrics: Arc<dyn Metrics>,
}

impl Passes {
    /// A tenant's passes until none is full, each deciding at the time it starts.
    async fn tenant(&self, tenant: &TenantName) -> Result<(), StoreError> {
        loop {
            let Some(pass) = self.store.fire_due(tenant, self.clock.now(), PASS_LIMIT).await? else { return Ok(()) };
            for outcome in FireOutcome::ALL {
                self.metrics.trigger_fires(outcome, pass.counts.get(outcome));
            }
            // The pass has committed: its executions exist from now.
            let created = self.clock.now();
            for s in &pass.started {
                let late = (created - s.scheduled_at).to_std().unwrap_or_default();
                self.metrics.trigger_lateness(late.as_secs_f64());
                tracing::debug!(%tenant, trigger = %s.trigger, execution = %s.execution, scheduled = %s.scheduled_at,
                    late_ms = late.as_millis() as u64, outcome = s.outcome.as_str(), "trigger fired");
            }
            if pass.triggers < PASS_LIMIT {
                return Ok(());
            }
        }
    }
}

impl TriggerScheduler {
    /// Runs until `stop` turns true.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        loop {
            if *stop.borrow() {
                return;
            }
            let wait = self.once().await;
            tokio::select! {
                () = self.store.wait_for_triggers(wait) => {}
                _ = stop.changed() => return,
            }
        }
    }

    /// One round: every due tenant's passes, each lane's tenants in a queue of their own
    /// ([`TriggerStore::pass_lane`]), `per_lane` of them under way at a time. Returns how long
    /// to sleep.
    ///
    /// One queue for all lanes let a slow lane's tenants take every place under way, one after
    /// another, while the other lanes' connections sat idle: half the CPU idle in the second
    /// half of a burst of 1,000 tenants' fires (docs/benchmarks.md, B11).
    async fn once(&self) -> Duration {
        let due = match self.store.due_trigger_tenants(self.clock.now()).await {
            Ok(due) => due,
            Err(e) => {
                tracing::warn!(error = %e, "could not look for due triggers; trying again shortly");
                return Duration::from_secs(1);
            }
        };
        let any_due = !due.tenants.is_empty();
        let mut lanes: Vec<Vec<TenantName>> = Vec::new();
        for tenant in due.tenants {
            let lane = self.store.pass_lane(&tenant);
            if lanes.len() <= lane {
                lanes.resize_with(lane + 1, Vec::new);
            }
            lanes[lane].push(tenant);
        }
        // Each tenant's passes in a task of its own, so the server's share of a burst (the
        // domain's decisions, encoding and decoding) runs on every worker thread, not on the
        // one polling this scheduler.
        let passes = Passes { store: self.store.clone(), clock: self.clock.clone(), metrics: self.metrics.clone() };
        let failed = std::sync::atomic::AtomicBool::new(false);
        let per_lane = self.per_lane.max(1);
        let queues = lanes.into_iter().filter(|q| !q.is_empty()).map(|queue| {
            let passes = passes.clone();
            let failed = &failed;
            futures::stream::iter(queue)
                .map(move |tenant| {
                    let passes = passes.clone();
                    tokio::spawn(async move {
                        let done = passes.tenant(&tenant).await;
                        (tenant, done)
                    })
                })
                .buffer_unordered(per_lane)
                .for_each(move |joined| {
                    if !succeeded(joined) {
                        failed.store(true, std::sync::atomic::Ordering::Relaxed);
                    }
                    std::future::ready(())
                })
        });
        futures::future::join_all(queues).await;
        if failed.into_inner() {
            return Duration::from_secs(1);
        }
        if any_due {
            // Ask again at once: the passes set each tenant's next due time.
            return Duration::ZERO;
        }
        match due.next {
            Some(next) => (next - self.clock.now()).to_std().unwrap_or_default().min(self.backstop),
            None => self.backstop,
        }
    }
}

/// Whether a tenant's passes ended well; logs why not.
fn succeeded(joined: Result<(TenantName, Result<(), StoreError>), tokio::task::JoinError>) -> bool {
    let error = match joined {
        Ok((_, Ok(()))) => return true,
        Ok((tenant, Err(e))) => format!("tenant {tenant}: {e}"),
        Err(e) => format!("the pass's task ended: {e}"),
    };
    tracing::warn!(%error, "trigger pass failed; trying again shortly");
    false
}

#[cfg(test)]
#[path = "scheduler_tests.rs"]
mod tests;
