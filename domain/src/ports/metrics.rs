//! The metrics port: what the server counts. The telemetry adapter implements it with
//! opentelemetry-prometheus.

use crate::trigger::FireOutcome;

/// How an authentication attempt ended: a closed set, so the metric's cardinality is bounded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthOutcome {
    Success,
    Missing,
    Malformed,
    BadChecksum,
    Unknown,
    Revoked,
    Expired,
    RateLimited,
    Error,
}

impl AuthOutcome {
    /// Every outcome, in a fixed order (`index` follows it).
    pub const ALL: [AuthOutcome; 9] = [
        AuthOutcome::Success,
        AuthOutcome::Missing,
        AuthOutcome::Malformed,
        AuthOutcome::BadChecksum,
        AuthOutcome::Unknown,
        AuthOutcome::Revoked,
        AuthOutcome::Expired,
        AuthOutcome::RateLimited,
        AuthOutcome::Error,
    ];

    /// The position in [`AuthOutcome::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthOutcome::Success => "success",
            AuthOutcome::Missing => "missing",
            AuthOutcome::Malformed => "malformed",
            AuthOutcome::BadChecksum => "bad_checksum",
            AuthOutcome::Unknown => "unknown",
            AuthOutcome::Revoked => "revoked",
            AuthOutcome::Expired => "expired",
            AuthOutcome::RateLimited => "rate_limited",
            AuthOutcome::Error => "error",
        }
    }
}

/// How a task attempt ended, as the engine counts it: a closed set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptOutcome {
    Succeeded,
    /// Failed or timed out (it may be retried).
    Failed,
    /// Finished, but no longer held by this server: its outcome was dropped.
    Stale,
    /// Stopped by this server: its lease was gone, or the server was shutting down.
    Stopped,
}

impl AttemptOutcome {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Succeeded => "succeeded",
            AttemptOutcome::Failed => "failed",
            AttemptOutcome::Stale => "stale",
            AttemptOutcome::Stopped => "stopped",
        }
    }
}

/// A database connection pool at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Connections checked out by requests or background work.
    pub in_use: u32,
    /// Open connections waiting in the pool.
    pub idle: u32,
    /// The most the pool will open.
    pub max: u32,
}

/// Reads a pool's state; called when metrics are scraped, so it must not block.
pub type PoolProbe = std::sync::Arc<dyn Fn() -> PoolStats + Send + Sync>;

/// Reads the engine's worker slots, (busy, all), at scrape time; must not block.
pub type WorkerProbe = std::sync::Arc<dyn Fn() -> (u64, u64) + Send + Sync>;

/// How many of one tenant's executions and tasks are in each state, at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantCensus {
    pub tenant: String,
    /// Executions by their wire status (`Pending`, `Running`, `Completed`, …).
    pub executions: Vec<(String, u64)>,
    /// The queue: tasks `ready` to be claimed and `running`.
    pub tasks: Vec<(String, u64)>,
}

/// Every tenant's executions and tasks by state, counted in the database.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait::async_trait]
pub trait CensusStore: Send + Sync {
    /// One census of every tenant.
    ///
    /// # Errors
    /// [`super::StoreError::Unavailable`] when the database cannot be reached.
    async fn census(&self) -> Result<Vec<TenantCensus>, super::StoreError>;
}

/// What the server counts. Implementations MUST be cheap: these run on every request.
pub trait Metrics: Send + Sync {
    /// One HTTP request, by method, route template (never the raw path) and status. The
    /// labels are `'static` so that counting allocates nothing.
    fn http_request(&self, method: &'static str, route: &'static str, status: u16, seconds: f64);
    /// One authentication attempt.
    fn auth_outcome(&self, outcome: AuthOutcome);
    /// One lookup in the verified-key cache.
    fn auth_cache(&self, hit: bool);
    /// One argon2id verification of an operator-supplied key (the expensive path).
    fn argon2_verification(&self);
    /// From now on, report the database pool that `probe` reads (at scrape time).
    fn observe_pool(&self, probe: PoolProbe);
    /// One claim query of the engine: how many attempts it took and how long it ran.
    fn tasks_claimed(&self, claimed: u64, seconds: f64);
    /// One task attempt ended, after `seconds` of running.
    fn task_attempt(&self, outcome: AttemptOutcome, seconds: f64);
    /// From now on, report the engine's worker slots that `probe` reads: (busy, all).
    fn observe_workers(&self, probe: WorkerProbe);
    /// `count` scheduled times of triggers ended as `outcome` (one scheduler pass's counts).
    fn trigger_fires(&self, outcome: FireOutcome, count: u64);
    /// One fired execution was created `seconds` after its scheduled time.
    fn trigger_lateness(&self, seconds: f64);
    /// This server became the leader (`true`) or stopped being it (`false`): the leader
    /// gauge follows, and one leadership change is counted.
    fn leadership(&self, leading: bool);
    /// The leader ran one retention prune, deleting `executions`.
    fn retention_pruned(&self, executions: u64);
    /// A live socket opened.
    fn socket_opened(&self);
    /// A live socket ended, with this close code (1006: the peer went away).
    fn socket_closed(&self, code: u16);
    /// One frame went out on a live socket.
    fn frame_sent(&self);
    /// The latest census of executions and tasks by state, reported as gauges until the next.
    fn census(&self, census: Vec<TenantCensus>);
    /// The Prometheus text exposition of everything counted so far.
    fn render(&self) -> String;
}

/// Counts nothing: for tests and tools that have no metrics endpoint.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoMetrics;

impl Metrics for NoMetrics {
    fn http_request(&self, _: &'static str, _: &'static str, _: u16, _: f64) {}
    fn auth_outcome(&self, _: AuthOutcome) {}
    fn auth_cache(&self, _: bool) {}
    fn argon2_verification(&self) {}
    fn observe_pool(&self, _: PoolProbe) {}
    fn tasks_claimed(&self, _: u64, _: f64) {}
    fn task_attempt(&self, _: AttemptOutcome, _: f64) {}
    fn observe_workers(&self, _: WorkerProbe) {}
    fn trigger_fires(&self, _: FireOutcome, _: u64) {}
    fn trigger_lateness(&self, _: f64) {}
    fn leadership(&self, _: bool) {}
    fn retention_pruned(&self, _: u64) {}
    fn socket_opened(&self) {}
    fn socket_closed(&self, _: u16) {}
    fn frame_sent(&self) {}
    fn census(&self, _: Vec<TenantCensus>) {}
    fn render(&self) -> String {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_outcome_sits_at_its_own_index() {
        for (i, outcome) in AuthOutcome::ALL.iter().enumerate() {
            assert_eq!(outcome.index(), i, "{outcome:?}");
        }
    }
}
