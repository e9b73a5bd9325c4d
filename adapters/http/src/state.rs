//! What every handler can reach.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use cloacina_domain::ports::DatabaseHealth;
use cloacina_ports::{
    Audit, Authenticator, Census, Executions, Keys, Live, Metrics, Packages, Secrets, Signing, TenantTransfer, Tenants,
    Tickets, Triggers, Workflows,
};

use crate::auth::AuthThrottle;
use crate::limits::RequestLimits;

/// The default of `--rate-limit-per-key`: requests a second.
pub const DEFAULT_REQUESTS_PER_KEY: u32 = 1000;
/// The default of `--rate-limit-per-address`: requests a second.
pub const DEFAULT_REQUESTS_PER_ADDRESS: u32 = 2000;

/// Loopback, where a proxy on the same host connects from.
pub fn default_trusted_proxies() -> Vec<ipnet::IpNet> {
    ["127.0.0.0/8", "::1/128"].iter().filter_map(|n| n.parse().ok()).collect()
}

/// HTTP settings.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// A request still running after this answers 503 `timeout`.
    pub request_timeout: Duration,
    /// The largest JSON body accepted (413 above it).
    pub json_body_limit: usize,
    /// The largest package upload accepted (413 above it).
    pub upload_body_limit: usize,
    /// Failed authentications allowed per client address per minute before 429 (0: no limit).
    pub auth_failures_per_minute: u32,
    /// Behind a trusted reverse proxy: the client address comes from `X-Forwarded-For` (the
    /// nearest hop that is not a trusted proxy) or `X-Real-IP`, when the connection comes
    /// from one of `trusted_proxies`; otherwise, and without this, the headers are ignored.
    pub behind_proxy: bool,
    /// The proxies whose forwarding headers are believed (default: loopback).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Authenticated requests a second allowed per key (0: no limit).
    pub requests_per_key: u32,
    /// Authenticated requests a second allowed per client address (0: no limit).
    pub requests_per_address: u32,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(30),
            json_body_limit: 64 * 1024,
            upload_body_limit: 100 * 1024 * 1024,
            auth_failures_per_minute: 60,
            behind_proxy: false,
            trusted_proxies: default_trusted_proxies(),
            requests_per_key: DEFAULT_REQUESTS_PER_KEY,
            requests_per_address: DEFAULT_REQUESTS_PER_ADDRESS,
        }
    }
}

/// The use cases the handlers drive.
#[derive(Debug)]
pub struct Services {
    pub auth: Arc<Authenticator>,
    pub keys: Keys,
    pub tenants: Tenants,
    pub workflows: Workflows,
    pub packages: Packages,
    pub executions: Executions,
    pub triggers: Triggers,
    pub live: Live,
    pub tickets: Tickets,
    pub audit: Audit,
    pub signing: Signing,
    pub secrets: Secrets,
    /// Counts executions and the queue when metrics are scraped.
    pub census: Arc<Census>,
    pub transfer: TenantTransfer,
}

/// Shared state of the router: one `Arc`, because axum clones the state into every
/// middleware of every request, and one reference count is far cheaper than a dozen.
#[derive(Clone, Debug)]
pub struct AppState(Arc<Shared>);

/// What [`AppState`] shares; its fields are reached through `Deref`.
pub struct Shared {
    pub auth: Arc<Authenticator>,
    pub keys: Keys,
    pub tenants: Tenants,
    pub workflows: Workflows,
    pub packages: Packages,
    pub executions: Executions,
    pub triggers: Triggers,
    pub live: Live,
    pub tickets: Tickets,
    pub audit: Audit,
    pub signing: Signing,
    pub secrets: Secrets,
    pub census: Arc<Census>,
    pub transfer: TenantTransfer,
    pub health: Arc<dyn DatabaseHealth>,
    pub metrics: Arc<dyn Metrics>,
    pub config: HttpConfig,
    /// Failed-authentication throttle; the server prunes it on a timer.
    pub throttle: AuthThrottle,
    /// Request rate limits per key and per address; pruned with the throttle.
    pub limits: RequestLimits,
    shutting_down: AtomicBool,
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").field("config", &self.config).finish_non_exhaustive()
    }
}

impl AppState {
    /// Assembles the state.
    pub fn new(
        services: Services,
        health: Arc<dyn DatabaseHealth>,
        metrics: Arc<dyn Metrics>,
        config: HttpConfig,
    ) -> Self {
        let throttle = AuthThrottle::new(config.auth_failures_per_minute);
        let limits = RequestLimits::new(config.requests_per_key, config.requests_per_address);
        let Services {
            auth,
            keys,
            tenants,
            workflows,
            packages,
            executions,
            triggers,
            live,
            tickets,
            audit,
            signing,
            secrets,
            census,
            transfer,
        } = services;
        Self(Arc::new(Shared {
            auth,
            keys,
            tenants,
            workflows,
            packages,
            executions,
            triggers,
            live,
            tickets,
            audit,
            signing,
            secrets,
            census,
            transfer,
            health,
            metrics,
            config,
            throttle,
            limits,
            shutting_down: AtomicBool::new(false),
        }))
    }

    /// From now on `/ready` answers 503, so load balancers stop sending traffic while
    /// in-flight requests drain.
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
        self.live.close_all();
    }

    /// Whether shutdown has begun.
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }
}
