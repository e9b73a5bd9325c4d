//! The engine's recorder: outcomes recorded as they come, all that have queued up (per tenant)
//! in one transaction.

use std::collections::BTreeMap;
use std::sync::Arc;

use cloacina_domain::TenantName;
use cloacina_domain::execution::AttemptReport;
use cloacina_domain::ports::StoreError;
use tokio::sync::mpsc;

use super::{Engine, RECORD_BATCH, ToRecord};

impl Engine {
    /// Records outcomes as they come, all that have queued up (per tenant) in one transaction.
    pub(super) async fn record_loop(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<ToRecord>) {
        while let Some(first) = rx.recv().await {
            let mut batch = vec![first];
            while batch.len() < RECORD_BATCH {
                match rx.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
            let mut by_tenant: BTreeMap<TenantName, Vec<ToRecord>> = BTreeMap::new();
            for item in batch {
                by_tenant.entry(item.tenant.clone()).or_default().push(item);
            }
            for (tenant, items) in by_tenant {
                let reports: Vec<AttemptReport> = items.iter().map(|i| i.report.clone()).collect();
                let n = reports.len();
                match self.ports.queue.record(&tenant, &self.worker, reports, self.ports.clock.now()).await {
                    Ok(recorded) if recorded.len() == n => {
                        for (item, r) in items.into_iter().zip(recorded) {
                            let _ = item.done.send(Ok(r));
                        }
                    }
                    Ok(other) => {
                        let e = StoreError::Unexpected(format!("{} outcomes recorded for {n} reports", other.len()));
                        for item in items {
                            let _ = item.done.send(Err(e.clone()));
                        }
                    }
                    Err(e) => {
                        for item in items {
                            let _ = item.done.send(Err(e.clone()));
                        }
                    }
                }
            }
        }
    }
}
