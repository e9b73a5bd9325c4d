//! The census behind the executions and queue gauges: every tenant's executions by state and
//! its tasks ready and running, counted in the database when metrics are scraped, at most
//! once per [`CENSUS_EVERY`] and in the background (a scrape shows the last census taken), so
//! a server nobody scrapes runs no census at all.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cloacina_domain::execution::ExecutionStatus;
use cloacina_domain::ports::{CensusStore, Metrics};

/// The least time between two censuses.
pub const CENSUS_EVERY: Duration = Duration::from_secs(15);

/// Takes censuses and hands them to the metrics.
pub struct Census {
    store: Arc<dyn CensusStore>,
    metrics: Arc<dyn Metrics>,
    last: Mutex<Option<Instant>>,
    running: AtomicBool,
}

impl std::fmt::Debug for Census {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Census")
    }
}

impl Census {
    pub fn new(store: Arc<dyn CensusStore>, metrics: Arc<dyn Metrics>) -> Arc<Self> {
        Arc::new(Self { store, metrics, last: Mutex::new(None), running: AtomicBool::new(false) })
    }

    /// Starts a census in the background unless one ran within [`CENSUS_EVERY`] or is running.
    pub fn refresh_if_stale(self: &Arc<Self>) {
        {
            let last = self.last.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if last.is_some_and(|t| t.elapsed() < CENSUS_EVERY) {
                return;
            }
        }
        if self.running.swap(true, Ordering::AcqRel) {
            return;
        }
        let me = self.clone();
        tokio::spawn(async move {
            me.refresh().await;
            me.running.store(false, Ordering::Release);
        });
    }

    /// Takes one census now.
    pub async fn refresh(&self) {
        match self.store.census().await {
            Ok(mut census) => {
                // Executions by the API's words (`Completed`, not the stored `succeeded`).
                for c in &mut census {
                    for (status, _) in &mut c.executions {
                        if let Some(s) = ExecutionStatus::parse(status) {
                            *status = s.wire_name().to_owned();
                        }
                    }
                }
                self.metrics.census(census);
                *self.last.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Instant::now());
            }
            Err(e) => tracing::warn!(error = %e, "the executions census failed; the gauges keep the last one"),
        }
    }
}
