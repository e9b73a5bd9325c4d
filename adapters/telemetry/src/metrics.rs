//! Prometheus metrics through opentelemetry.
//!
//! Authentication counters sit on every keyed request, so they are plain atomics read by
//! observable instruments at scrape time: the hot path pays one relaxed add. HTTP requests,
//! whose label sets are open-ended (route × method × status), go through the SDK's counters.

use cloacina_ports::TenantCensus;
use cloacina_ports::{AttemptOutcome, AuthOutcome, FireOutcome, Metrics, PoolProbe, WorkerProbe};
use opentelemetry::KeyValue;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use opentelemetry::metrics::{Counter, Histogram, Meter, MeterProvider, ObservableCounter, ObservableGauge};
use opentelemetry_sdk::metrics::SdkMeterProvider;
use prometheus::{Registry, TextEncoder};

use crate::census::{CENSUS_TENANTS, bounded, census_gauges};

/// Latency buckets in seconds, from 100 µs to 10 s.
const LATENCY_BUCKETS: [f64; 14] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 10.0];

/// The metrics port, exported in the Prometheus text format on `/metrics`.
pub struct PrometheusMetrics {
    registry: Registry,
    _provider: SdkMeterProvider,
    http_requests: Counter<u64>,
    http_duration: Histogram<f64>,
    auth: Arc<AuthCounts>,
    _observers: Vec<ObservableCounter<u64>>,
    /// The database pool, once the server has one (SQLite has none).
    pool: Arc<RwLock<Option<PoolProbe>>>,
    _gauges: Vec<ObservableGauge<u64>>,
    claimed: Counter<u64>,
    claim_duration: Histogram<f64>,
    attempts: Counter<u64>,
    attempt_duration: Histogram<f64>,
    /// The engine's worker slots, once the server runs workers.
    workers: Arc<RwLock<Option<WorkerProbe>>>,
    trigger_fires: Counter<u64>,
    trigger_lateness: Histogram<f64>,
    /// 1 while this server leads, read by the leader gauge.
    leading: Arc<AtomicU64>,
    leadership_changes: Counter<u64>,
    prunes: Counter<u64>,
    pruned: Counter<u64>,
    sockets: Arc<SocketCounts>,
    /// The latest census, tenants beyond the [`CENSUS_TENANTS`] largest folded into `other`.
    census: Arc<RwLock<Vec<TenantCensus>>>,
}

/// What live sockets count: atomics, read at scrape time.
#[derive(Default)]
struct SocketCounts {
    open: AtomicU64,
    frames: AtomicU64,
    /// Ends by [`SOCKET_ENDS`].
    ends: [AtomicU64; SOCKET_ENDS.len()],
}

/// Why live sockets end, as the `reason` label says it, with their close codes.
const SOCKET_ENDS: [(&str, &[u16]); 6] = [
    ("finished", &[1000]),
    ("shutdown", &[1001]),
    ("policy", &[1008, 4400, 4426]),
    ("slow_consumer", &[1013]),
    ("error", &[1011]),
    ("peer_gone", &[]),
];

fn socket_end(code: u16) -> usize {
    SOCKET_ENDS.iter().position(|(_, codes)| codes.contains(&code)).unwrap_or(SOCKET_ENDS.len() - 1)
}

/// What the authentication path counts.
#[derive(Default)]
struct AuthCounts {
    outcomes: [AtomicU64; AuthOutcome::ALL.len()],
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
    argon2: AtomicU64,
}

impl std::fmt::Debug for PrometheusMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PrometheusMetrics")
    }
}

/// The exporter could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up metrics: {0}")]
pub struct MetricsError(String);

impl PrometheusMetrics {
    /// A fresh registry with Cloacina's instruments.
    ///
    /// # Errors
    /// [`MetricsError`] if the exporter cannot be registered.
    pub fn new() -> Result<Self, MetricsError> {
        let registry = Registry::new();
        let exporter = opentelemetry_prometheus::exporter()
            .with_registry(registry.clone())
            .without_scope_info()
            .without_target_info()
            .build()
            .map_err(|e| MetricsError(e.to_string()))?;
        let provider = SdkMeterProvider::builder().with_reader(exporter).build();
        let meter = provider.meter("cloacina");
        let auth = Arc::new(AuthCounts::default());
        let pool = Arc::new(RwLock::new(None));
        let workers: Arc<RwLock<Option<WorkerProbe>>> = Arc::new(RwLock::new(None));
        let mut gauges = pool_gauges(&meter, &pool);
        let w = workers.clone();
        gauges.push(
            meter
                .u64_observable_gauge("cloacina_worker_slots")
                .with_description("This server's task attempt slots, by state (busy or free)")
                .with_callback(move |o| {
                    if let Some((busy, all)) = w.read().ok().and_then(|p| p.as_ref().map(|probe| probe())) {
                        o.observe(busy, &[KeyValue::new("state", "busy")]);
                        o.observe(all.saturating_sub(busy), &[KeyValue::new("state", "free")]);
                    }
                })
                .build(),
        );
        let leading = Arc::new(AtomicU64::new(0));
        let l = leading.clone();
        gauges.push(
            meter
                .u64_observable_gauge("cloacina_leader")
                .with_description("1 while this server is the leader for singleton work, else 0")
                .with_callback(move |o| o.observe(l.load(Ordering::Relaxed), &[]))
                .build(),
        );
        let leadership_changes = meter
            .u64_counter("cloacina_leadership_changes")
            .with_description("Times this server became or stopped being the leader")
            .build();
        leadership_changes.add(0, &[]);
        let census: Arc<RwLock<Vec<TenantCensus>>> = Arc::default();
        gauges.extend(census_gauges(&meter, &census));
        let sockets = Arc::new(SocketCounts::default());
        let so = sockets.clone();
        gauges.push(
            meter
                .u64_observable_gauge("cloacina_live_sockets")
                .with_description("Live WebSockets open on this server")
                .with_callback(move |o| o.observe(so.open.load(Ordering::Relaxed), &[]))
                .build(),
        );
        let mut live_counters = Vec::new();
        let sf = sockets.clone();
        live_counters.push(
            meter
                .u64_observable_counter("cloacina_live_frames_sent")
                .with_description("Frames sent on live WebSockets")
                .with_callback(move |o| o.observe(sf.frames.load(Ordering::Relaxed), &[]))
                .build(),
        );
        let se = sockets.clone();
        live_counters.push(
            meter
                .u64_observable_counter("cloacina_live_sockets_closed")
                .with_description("Live WebSockets ended, by reason (slow_consumer: fell behind and was closed)")
                .with_callback(move |o| {
                    for (i, (reason, _)) in SOCKET_ENDS.iter().enumerate() {
                        o.observe(se.ends[i].load(Ordering::Relaxed), &[KeyValue::new("reason", *reason)]);
                    }
                })
                .build(),
        );
        Ok(Self {
            sockets,
            census,
            trigger_fires: meter
                .u64_counter("cloacina_trigger_fires")
                .with_description("Scheduled times of triggers decided by this server, by outcome")
                .build(),
            trigger_lateness: meter
                .f64_histogram("cloacina_trigger_fire_lateness")
                .with_description("From a fire's scheduled time to its execution's creation")
                .with_unit("s")
                // 1.25 between 1 and 1.5: lateness goals sit at a second, and a quantile
                // interpolated in a bucket half a second wide read a burst ending at 1.14 s as
                // a p99 of 1.4 s.
                .with_boundaries(vec![
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0,
                    20.0, 30.0, 60.0, 300.0,
                ])
                .build(),
            leading,
            leadership_changes,
            prunes: meter
                .u64_counter("cloacina_retention_prunes")
                .with_description("Retention prunes this server ran (only the leader runs them)")
                .build(),
            pruned: meter
                .u64_counter("cloacina_executions_pruned")
                .with_description("Finished executions deleted by retention prunes on this server")
                .build(),
            claimed: meter
                .u64_counter("cloacina_tasks_claimed")
                .with_description("Task attempts claimed by this server's workers")
                .build(),
            claim_duration: meter
                .f64_histogram("cloacina_claim_duration")
                .with_description("How long one claim query of the engine took")
                .with_unit("s")
                .with_boundaries(LATENCY_BUCKETS.to_vec())
                .build(),
            attempts: meter
                .u64_counter("cloacina_task_attempts")
                .with_description("Task attempts ended on this server, by outcome")
                .build(),
            attempt_duration: meter
                .f64_histogram("cloacina_task_duration")
                .with_description("How long task attempts ran, by outcome")
                .with_unit("s")
                .with_boundaries(vec![0.001, 0.01, 0.1, 0.5, 1.0, 5.0, 30.0, 60.0, 300.0, 1800.0, 3600.0])
                .build(),
            workers,
            http_requests: meter
                .u64_counter("cloacina_http_requests")
                .with_description("HTTP requests by method, route template and status")
                .build(),
            http_duration: meter
                .f64_histogram("cloacina_http_request_duration")
                .with_description("HTTP request latency by method, route template and status")
                .with_unit("s")
                .with_boundaries(LATENCY_BUCKETS.to_vec())
                .build(),
            _observers: auth_observers(&meter, &auth).into_iter().chain(live_counters).collect(),
            _gauges: gauges,
            pool,
            auth,
            registry,
            _provider: provider,
        })
    }
}

/// Observable counters over [`AuthCounts`]; series appear once their count is non-zero.
fn auth_observers(meter: &Meter, counts: &Arc<AuthCounts>) -> Vec<ObservableCounter<u64>> {
    let c = counts.clone();
    let attempts = meter
        .u64_observable_counter("cloacina_auth_attempts")
        .with_description("Authentication attempts by outcome")
        .with_callback(move |o| {
            for outcome in AuthOutcome::ALL {
                let n = c.outcomes[outcome.index()].load(Ordering::Relaxed);
                if n > 0 {
                    o.observe(n, &[KeyValue::new("outcome", outcome.as_str())]);
                }
            }
        })
        .build();
    let c = counts.clone();
    let cache = meter
        .u64_observable_counter("cloacina_auth_cache_lookups")
        .with_description("Verified-key cache lookups by result (hit or miss)")
        .with_callback(move |o| {
            for (result, n) in [("hit", &c.cache_hits), ("miss", &c.cache_misses)] {
                let n = n.load(Ordering::Relaxed);
                if n > 0 {
                    o.observe(n, &[KeyValue::new("result", result)]);
                }
            }
        })
        .build();
    let c = counts.clone();
    let argon2 = meter
        .u64_observable_counter("cloacina_auth_argon2_verifications")
        .with_description("argon2id verifications of operator-supplied keys")
        .with_callback(move |o| o.observe(c.argon2.load(Ordering::Relaxed), &[]))
        .build();
    vec![attempts, cache, argon2]
}

/// Gauges over the database pool, read at scrape time.
fn pool_gauges(meter: &Meter, pool: &Arc<RwLock<Option<PoolProbe>>>) -> Vec<ObservableGauge<u64>> {
    let read = |pool: &Arc<RwLock<Option<PoolProbe>>>| pool.read().ok().and_then(|p| p.as_ref().map(|probe| probe()));
    let p = pool.clone();
    let connections = meter
        .u64_observable_gauge("cloacina_db_pool_connections")
        .with_description("Database connections held by this server, by state (in_use or idle)")
        .with_callback(move |o| {
            if let Some(stats) = read(&p) {
                o.observe(u64::from(stats.in_use), &[KeyValue::new("state", "in_use")]);
                o.observe(u64::from(stats.idle), &[KeyValue::new("state", "idle")]);
            }
        })
        .build();
    let p = pool.clone();
    let max = meter
        .u64_observable_gauge("cloacina_db_pool_max_connections")
        .with_description("The most database connections this server's pool opens")
        .with_callback(move |o| {
            if let Some(stats) = read(&p) {
                o.observe(u64::from(stats.max), &[]);
            }
        })
        .build();
    vec![connections, max]
}

impl Metrics for PrometheusMetrics {
    fn http_request(&self, method: &'static str, route: &'static str, status: u16, seconds: f64) {
        let labels = [
            KeyValue::new("method", method),
            KeyValue::new("route", route),
            KeyValue::new("status", i64::from(status)),
        ];
        self.http_requests.add(1, &labels);
        self.http_duration.record(seconds, &labels);
    }

    fn auth_outcome(&self, outcome: AuthOutcome) {
        self.auth.outcomes[outcome.index()].fetch_add(1, Ordering::Relaxed);
    }

    fn auth_cache(&self, hit: bool) {
        let counter = if hit { &self.auth.cache_hits } else { &self.auth.cache_misses };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn argon2_verification(&self) {
        self.auth.argon2.fetch_add(1, Ordering::Relaxed);
    }

    fn observe_pool(&self, probe: PoolProbe) {
        if let Ok(mut slot) = self.pool.write() {
            *slot = Some(probe);
        }
    }

    fn tasks_claimed(&self, claimed: u64, seconds: f64) {
        self.claimed.add(claimed, &[]);
        self.claim_duration.record(seconds, &[]);
    }

    fn task_attempt(&self, outcome: AttemptOutcome, seconds: f64) {
        let labels = [KeyValue::new("outcome", outcome.as_str())];
        self.attempts.add(1, &labels);
        self.attempt_duration.record(seconds, &labels);
    }

    fn observe_workers(&self, probe: WorkerProbe) {
        if let Ok(mut slot) = self.workers.write() {
            *slot = Some(probe);
        }
    }

    fn trigger_fires(&self, outcome: FireOutcome, count: u64) {
        if count > 0 {
            self.trigger_fires.add(count, &[KeyValue::new("outcome", outcome.as_str())]);
        }
    }

    fn trigger_lateness(&self, seconds: f64) {
        self.trigger_lateness.record(seconds, &[]);
    }

    fn leadership(&self, leading: bool) {
        self.leading.store(u64::from(leading), Ordering::Relaxed);
        self.leadership_changes.add(1, &[]);
    }

    fn retention_pruned(&self, executions: u64) {
        self.prunes.add(1, &[]);
        self.pruned.add(executions, &[]);
    }

    fn socket_opened(&self) {
        self.sockets.open.fetch_add(1, Ordering::Relaxed);
    }

    fn socket_closed(&self, code: u16) {
        let _ = self.sockets.open.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        self.sockets.ends[socket_end(code)].fetch_add(1, Ordering::Relaxed);
    }

    fn frame_sent(&self) {
        self.sockets.frames.fetch_add(1, Ordering::Relaxed);
    }

    fn census(&self, census: Vec<TenantCensus>) {
        if let Ok(mut kept) = self.census.write() {
            *kept = bounded(census, CENSUS_TENANTS);
        }
    }

    fn render(&self) -> String {
        TextEncoder::new().encode_to_string(&self.registry.gather()).unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot encode metrics");
            String::new()
        })
    }
}

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;
