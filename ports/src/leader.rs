//! One leader among the replicas (product.md §9): each server campaigns for a
//! [`LeaderLock`] every [`HOLD_EVERY`], and runs singleton work (the retention prune) only
//! while it holds it. On PostgreSQL the lock is an advisory lock on a connection of its own,
//! so a leader that dies loses it as soon as its session ends; on SQLite the process is the
//! only one, and so the leader ([`SoleProcess`]).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cloacina_domain::ports::{LeaderLock, Metrics, StoreError};
use tokio::sync::watch;

/// How often a server takes or checks the lock: a dead leader is replaced within about this
/// (plus the time its database session takes to end).
pub const HOLD_EVERY: Duration = Duration::from_secs(1);

/// The lock of a process that is alone with its database (embedded SQLite): always held.
#[derive(Debug, Default, Clone, Copy)]
pub struct SoleProcess;

#[async_trait]
impl LeaderLock for SoleProcess {
    async fn hold(&self) -> Result<bool, StoreError> {
        Ok(true)
    }
    async fn release(&self) {}
}

/// A server's campaign for leadership.
pub struct Leadership {
    pub lock: Arc<dyn LeaderLock>,
    pub metrics: Arc<dyn Metrics>,
    pub every: Duration,
}

impl std::fmt::Debug for Leadership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leadership").field("every", &self.every).finish_non_exhaustive()
    }
}

impl Leadership {
    /// Campaigns until `stop` turns true, then gives the lock up. The receiver says whether
    /// this server leads now.
    pub fn start(self, mut stop: watch::Receiver<bool>) -> (watch::Receiver<bool>, tokio::task::JoinHandle<()>) {
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut leading = false;
            loop {
                let now = match self.lock.hold().await {
                    Ok(held) => held,
                    Err(e) => {
                        if leading {
                            tracing::warn!(error = %e, "lost the leader lock's database; no longer the leader");
                        } else {
                            tracing::debug!(error = %e, "cannot campaign for leadership yet");
                        }
                        false
                    }
                };
                if now != leading {
                    leading = now;
                    self.metrics.leadership(now);
                    tx.send_replace(now);
                    if now {
                        tracing::info!("this server is now the leader for singleton work");
                    } else {
                        tracing::warn!("this server is no longer the leader");
                    }
                }
                tokio::select! {
                    () = tokio::time::sleep(self.every) => {}
                    _ = stop.changed() => break,
                }
            }
            if leading {
                tx.send_replace(false);
                self.metrics.leadership(false);
                self.lock.release().await;
                tracing::info!("gave up leadership at shutdown");
            }
        });
        (rx, task)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloacina_domain::ports::MockLeaderLock;
    use std::sync::Mutex;

    /// Counts leadership changes and remembers the gauge.
    #[derive(Default)]
    struct Seen(Mutex<Vec<bool>>);

    impl Metrics for Seen {
        fn http_request(&self, _: &'static str, _: &'static str, _: u16, _: f64) {}
        fn auth_outcome(&self, _: cloacina_domain::ports::AuthOutcome) {}
        fn auth_cache(&self, _: bool) {}
        fn argon2_verification(&self) {}
        fn observe_pool(&self, _: cloacina_domain::ports::PoolProbe) {}
        fn tasks_claimed(&self, _: u64, _: f64) {}
        fn task_attempt(&self, _: cloacina_domain::ports::AttemptOutcome, _: f64) {}
        fn observe_workers(&self, _: cloacina_domain::ports::WorkerProbe) {}
        fn trigger_fires(&self, _: cloacina_domain::trigger::FireOutcome, _: u64) {}
        fn trigger_lateness(&self, _: f64) {}
        fn leadership(&self, leading: bool) {
            self.0.lock().unwrap().push(leading);
        }
        fn retention_pruned(&self, _: u64) {}
        fn socket_opened(&self) {}
        fn socket_closed(&self, _: u16) {}
        fn frame_sent(&self) {}
        fn census(&self, _: Vec<cloacina_domain::ports::TenantCensus>) {}
        fn render(&self) -> String {
            String::new()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_server_leads_while_it_holds_the_lock_and_counts_each_change() {
        let answers = Mutex::new(
            vec![
                Ok(false),
                Ok(true),
                Ok(true),
                Err(StoreError::Unavailable("database away".into())),
                Ok(false),
                Ok(true),
            ]
            .into_iter(),
        );
        let mut lock = MockLeaderLock::new();
        lock.expect_hold().returning(move || answers.lock().unwrap().next().unwrap_or(Ok(true)));
        lock.expect_release().times(1).returning(|| ());
        let seen = Arc::new(Seen::default());
        let (stop_tx, stop_rx) = watch::channel(false);
        let campaign = Leadership { lock: Arc::new(lock), metrics: seen.clone(), every: HOLD_EVERY };
        let (mut leading, task) = campaign.start(stop_rx);
        let mut states = Vec::new();
        for _ in 0..3 {
            leading.changed().await.unwrap();
            states.push(*leading.borrow_and_update());
        }
        assert_eq!(states, [true, false, true]);
        stop_tx.send_replace(true);
        task.await.unwrap();
        assert!(!*leading.borrow(), "a stopped server does not lead");
        assert_eq!(
            *seen.0.lock().unwrap(),
            [true, false, true, false],
            "became, lost (an error counts as lost), became, gave up at stop"
        );
    }
}
