//! Telemetry: structured logs and Prometheus metrics.
//!
//! # Layout
//! - [`logging`] — stderr plus `~/.cloacina/logs/cloacina-server.log` (JSON, rotated daily),
//!   filtered by `RUST_LOG`.
//! - [`metrics`] — [`PrometheusMetrics`], the [`Metrics`](cloacina_ports::Metrics) port on
//!   opentelemetry with the Prometheus exporter.

mod census;
pub mod logging;
pub mod metrics;

pub use logging::{LogGuard, LoggingError, init_logging};
pub use metrics::PrometheusMetrics;
