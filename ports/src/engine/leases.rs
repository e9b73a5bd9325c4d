//! The engine's leases: renewed while attempts run (an attempt whose lease is gone is
//! stopped), and given back at shutdown.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use cloacina_domain::TenantName;
use cloacina_domain::execution::TaskKey;

use super::{Engine, Running, later};

/// How long attempts told to stop at shutdown get to keep their output before they are
/// aborted.
const STOP_GRACE: Duration = Duration::from_secs(5);
use crate::AttemptOutcome;

impl Engine {
    /// Renews the leases of running attempts every third of the lease, draining included;
    /// stops those no longer held. Ends when the engine aborts it.
    pub(super) async fn heartbeat(self: Arc<Self>) {
        let every = (self.config.lease / 3).max(Duration::from_millis(10));
        loop {
            tokio::time::sleep(every).await;
            self.renew_all().await;
        }
    }

    async fn renew_all(&self) {
        let by_tenant: BTreeMap<TenantName, Vec<TaskKey>> = {
            let running = self.attempts();
            let mut m: BTreeMap<TenantName, Vec<TaskKey>> = BTreeMap::new();
            for (key, r) in running.iter() {
                m.entry(r.tenant.clone()).or_default().push(*key);
            }
            m
        };
        for (tenant, keys) in by_tenant {
            let until = later(self.ports.clock.now(), self.config.lease);
            match self.ports.queue.renew(&tenant, &self.worker, keys.clone(), until).await {
                Ok(held) => {
                    for key in keys.iter().filter(|k| !held.contains(k)) {
                        // Taken out, it is told to stop: it kills its sandbox, keeps its output
                        // and ends, counted as stopped.
                        if self.attempts().remove(key).is_some() {
                            tracing::info!(%tenant, execution = %key.execution_id, position = key.position,
                                "attempt stopped: its lease is gone (cancelled or expired)");
                        }
                    }
                }
                Err(e) => tracing::warn!(%tenant, error = %e, "cannot renew task leases"),
            }
        }
    }

    /// Waits up to `drain` for running attempts, then stops the rest and gives them back.
    pub(super) async fn drain(&self, drain: Duration) {
        let deadline = tokio::time::Instant::now() + drain;
        while self.running() > 0 && tokio::time::Instant::now() < deadline {
            tokio::select! {
                () = self.local.notified() => {}
                () = tokio::time::sleep_until(deadline) => {}
            }
        }
        let left: Vec<(TaskKey, Running)> = self.attempts().drain().collect();
        let mut by_tenant: BTreeMap<TenantName, Vec<TaskKey>> = BTreeMap::new();
        let mut aborts = Vec::with_capacity(left.len());
        for (key, r) in left {
            // Dropped, each is told to stop; it keeps its output and ends.
            aborts.push(r.abort.clone());
            by_tenant.entry(r.tenant.clone()).or_default().push(key);
        }
        // Every slot back means every attempt ended; one that did not in time is aborted.
        let all = u32::try_from(self.config.workers.max(1)).unwrap_or(u32::MAX);
        if tokio::time::timeout(STOP_GRACE, self.slots.acquire_many(all)).await.is_err() {
            for abort in aborts.iter().filter(|a| !a.is_finished()) {
                abort.abort();
                self.ports.metrics.task_attempt(AttemptOutcome::Stopped, 0.0);
            }
        }
        for (tenant, keys) in by_tenant {
            let n = keys.len();
            match self.ports.queue.release(&tenant, &self.worker, keys, self.ports.clock.now()).await {
                Ok(()) => tracing::info!(%tenant, attempts = n, "gave back unfinished attempts at shutdown"),
                Err(e) => tracing::warn!(%tenant, error = %e, "cannot give back attempts; their leases will expire"),
            }
        }
    }
}
