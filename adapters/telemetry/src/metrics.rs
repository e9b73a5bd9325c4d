//! Prometheus metrics through opentelemetry.
//!
//! Authentication counters sit on every keyed request, so they are plain atomics read by
//! observable instruments at scrape time: the hot path pays one relaxed add. HTTP requests,
//! whose label sets are open-ended (route × method × status), go through the SDK's counters.

use cloacina_ports::{AuthOutcome, Metrics};
use opentelemetry::KeyValue;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use opentelemetry::metrics::{Counter, Histogram, Meter, MeterProvider, ObservableCounter};
use opentelemetry_sdk::metrics::SdkMeterProvider;
use prometheus::{Registry, TextEncoder};

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
        Ok(Self {
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
            _observers: auth_observers(&meter, &auth),
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

    fn render(&self) -> String {
        TextEncoder::new().encode_to_string(&self.registry.gather()).unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot encode metrics");
            String::new()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counted_requests_and_auth_outcomes_appear_in_the_exposition() {
        let m = PrometheusMetrics::new().unwrap();
        m.http_request("GET", "/v1/auth/whoami", 200, 0.002);
        m.auth_outcome(AuthOutcome::BadChecksum);
        m.auth_cache(true);
        m.argon2_verification();
        let text = m.render();
        assert!(
            text.contains(r#"cloacina_http_requests_total{method="GET",route="/v1/auth/whoami",status="200"} 1"#),
            "{text}"
        );
        assert!(text.contains("cloacina_http_request_duration_seconds_bucket"), "{text}");
        assert!(text.contains(r#"cloacina_auth_attempts_total{outcome="bad_checksum"} 1"#), "{text}");
        assert!(text.contains(r#"cloacina_auth_cache_lookups_total{result="hit"} 1"#), "{text}");
        assert!(text.contains("cloacina_auth_argon2_verifications_total 1"), "{text}");
    }
}
