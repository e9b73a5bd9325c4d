//! Authentication and authorisation of every request, and the failed-attempt throttle.
//!
//! The guard runs on each route of the table with that route's [`Access`]. For a keyed route
//! it refuses, in order: a client address that failed too often (429, before any work), a
//! missing or invalid key (401), a key without the route's permission (403). It then hands
//! the handler a [`Caller`] and, for tenant routes, the [`TargetTenant`].

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::connect_info::MockConnectInfo;
use axum::extract::{ConnectInfo, FromRequestParts, RawPathParams, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use cloacina_domain::audit::RequestOrigin;
use cloacina_domain::authz::authorize;
use cloacina_domain::{Authority, Principal, TenantName};
use cloacina_ports::audit::with_origin;
use cloacina_ports::{AuthError, AuthOutcome};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::error::ApiError;
use crate::observe::REQUEST_ID;
use crate::routes::{Access, RouteSpec};
use crate::state::AppState;

/// The guard's state: the app and the route it stands in front of.
#[derive(Clone, Debug)]
pub struct Guard {
    app: AppState,
    spec: &'static RouteSpec,
    /// Whether the path holds `{tenant}`, decided once rather than per request.
    tenant_scoped: bool,
}

impl Guard {
    pub(crate) fn new(app: AppState, spec: &'static RouteSpec) -> Self {
        Self { app, spec, tenant_scoped: spec.path.contains("{tenant}") }
    }
}

/// The authenticated caller, for handlers. Shared with the verified-key cache, so handing it
/// to a request copies nothing.
#[derive(Clone, Debug)]
pub struct Caller(pub Arc<Principal>);

/// The tenant named in the path, validated and authorised.
#[derive(Clone, Debug)]
pub struct TargetTenant(pub TenantName);

/// The route middleware. See the module doc.
pub async fn guard(State(g): State<Guard>, mut req: Request, next: Next) -> Response {
    let Access::Key(permission) = g.spec.access else {
        return next.run(req).await;
    };
    let app = &g.app;
    let ip = client_ip(&req, app.config.behind_proxy, &app.config.trusted_proxies);
    if let Some(wait) = app.throttle.blocked_for(ip) {
        app.metrics.auth_outcome(AuthOutcome::RateLimited);
        app.throttle.hold(wait).await;
        return ApiError::too_many_requests(wait.as_secs().max(1)).into_response();
    }
    let socket = if g.spec.socket { SocketParams::of(&req) } else { SocketParams::default() };
    let verdict = match (bearer(req.headers()), &socket.token) {
        (Some(token), _) => app.auth.authenticate(token).await,
        (None, Some(ticket)) => app.tickets.redeem(ticket).await,
        (None, None) => {
            app.metrics.auth_outcome(AuthOutcome::Missing);
            let hint = if g.spec.socket { " (or, on a socket, ?token=<ticket>)" } else { "" };
            return ApiError::unauthorized(
                "missing_api_key",
                format!("an API key is required: Authorization: Bearer <key>{hint}"),
            )
            .into_response();
        }
    };
    let principal = match verdict {
        Ok(p) => p,
        Err(AuthError::Store(e)) => return ApiError::store(&e).into_response(),
        Err(e) => {
            app.audit.failed_authentication(&ip.to_string());
            if let Some(wait) = app.throttle.failure(ip) {
                tracing::warn!(client = %ip, "failed authentication attempts over the limit");
                app.throttle.hold(wait).await;
                return ApiError::too_many_requests(wait.as_secs().max(1)).into_response();
            }
            return ApiError::unauthorized("invalid_api_key", e.to_string()).into_response();
        }
    };
    let own = match &principal.authority {
        Authority::Tenant { tenant, .. } => match app.limits.known_override(tenant) {
            Some(rate) => rate,
            None => match app.tenants.rate_limit_per_key(tenant).await {
                Ok(rate) => {
                    app.limits.remember_override(tenant, rate);
                    rate
                }
                Err(e) => return ApiError::store(&e).into_response(),
            },
        },
        Authority::God => None,
    };
    if let Err(over) = app.limits.take(principal.key_id, ip, own) {
        return over.into_response();
    }
    let target = if g.tenant_scoped {
        match tenant_param(&mut req).await {
            Ok(t) => t,
            Err(e) => return e.into_response(),
        }
    } else if g.spec.socket {
        match socket.tenant(&principal) {
            Ok(t) => t,
            Err(e) => return e.into_response(),
        }
    } else {
        None
    };
    // A deployment-wide key on a socket naming no tenant: the handler finds the tenant.
    let god_unscoped = g.spec.socket && target.is_none() && matches!(principal.authority, Authority::God);
    if !god_unscoped && let Err(denied) = authorize(&principal, permission, target.as_ref()) {
        return ApiError::forbidden(&denied).into_response();
    }
    let span = tracing::Span::current();
    span.record("key_id", tracing::field::display(principal.key_id));
    if let Some(t) = target {
        req.extensions_mut().insert(TargetTenant(t));
    }
    req.extensions_mut().insert(Caller(principal));
    // Where the request came from, for the audit rows of what it changes.
    let origin = RequestOrigin {
        request_id: req.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).map(str::to_owned),
        client: Some(ip.to_string()),
    };
    with_origin(origin, next.run(req)).await
}

/// A socket's query parameters the guard reads: a ticket for clients that cannot set
/// headers, and the tenant of a route without `{tenant}`.
#[derive(Debug, Default, serde::Deserialize)]
struct SocketParams {
    token: Option<String>,
    tenant: Option<String>,
}

impl SocketParams {
    fn of(req: &Request) -> Self {
        axum::extract::Query::<SocketParams>::try_from_uri(req.uri()).map(|q| q.0).unwrap_or_default()
    }

    /// `?tenant=`, else the key's own tenant.
    fn tenant(&self, principal: &Principal) -> Result<Option<TenantName>, ApiError> {
        match (&self.tenant, &principal.authority) {
            (Some(raw), _) => {
                TenantName::parse(raw).map(Some).map_err(|e| ApiError::invalid_field("tenant", e.to_string()))
            }
            (None, Authority::Tenant { tenant, .. }) => Ok(Some(tenant.clone())),
            (None, Authority::God) => Ok(None),
        }
    }
}

/// The `{tenant}` path parameter, if the route has one.
async fn tenant_param(req: &mut Request) -> Result<Option<TenantName>, ApiError> {
    let (mut parts, body) = std::mem::take(req).into_parts();
    let params = RawPathParams::from_request_parts(&mut parts, &()).await;
    *req = Request::from_parts(parts, body);
    let Ok(params) = params else { return Ok(None) };
    let Some((_, raw)) = params.iter().find(|(name, _)| *name == "tenant") else { return Ok(None) };
    TenantName::parse(raw).map(Some).map_err(|e| ApiError::invalid_field("tenant", e.to_string()))
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

/// The client's address: the peer's; or, behind a proxy and when the peer is a trusted
/// proxy, the nearest `X-Forwarded-For` hop that is not itself a trusted proxy, else
/// `X-Real-IP`. A client that forges the headers while connecting directly gets its own
/// address.
fn client_ip(req: &Request, behind_proxy: bool, trusted: &[ipnet::IpNet]) -> IpAddr {
    let ext = req.extensions();
    let peer = ext
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
        .or_else(|| ext.get::<MockConnectInfo<SocketAddr>>().map(|MockConnectInfo(addr)| addr.ip()))
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !behind_proxy || !is_trusted(&peer) {
        return peer;
    }
    let forwarded: Vec<IpAddr> = req
        .headers()
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse::<IpAddr>().ok())
        .collect();
    if let Some(ip) = forwarded.iter().rev().find(|ip| !is_trusted(ip)).or(forwarded.first()) {
        return *ip;
    }
    req.headers()
        .get("x-real-ip")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<IpAddr>().ok())
        .unwrap_or(peer)
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        // Only a route wired without its guard gets here: refuse (fail closed).
        parts.extensions.get::<Caller>().cloned().ok_or_else(|| ApiError::internal("route reached without its guard"))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for TargetTenant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts.extensions.get::<TargetTenant>().cloned().ok_or_else(|| ApiError::internal("tenant route without tenant"))
    }
}

/// Failed authentications per client address: past the quota the address is refused with
/// 429 for as long as the quota needs to refill, before any key is looked at. A refused
/// request is answered only after a pause ([`TARPIT`], at most [`TARPITS`] at a time), so a
/// client that floods in a loop slows itself down instead of taking the CPU from others.
pub struct AuthThrottle {
    limiter: Option<DefaultKeyedRateLimiter<IpAddr>>,
    blocked: quick_cache::sync::Cache<IpAddr, Instant>,
    tarpit: tokio::sync::Semaphore,
}

/// How long a refused request waits before its 429 (or less, if its address is free sooner).
pub const TARPIT: Duration = Duration::from_millis(250);

/// The most refused requests held at once; past that they are answered at once, so holding
/// them never costs more than this many timers.
pub const TARPITS: usize = 1024;

impl std::fmt::Debug for AuthThrottle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthThrottle").field("enabled", &self.limiter.is_some()).finish()
    }
}

impl AuthThrottle {
    /// `per_minute` failures allowed per address (a burst of that many); 0 turns it off.
    pub fn new(per_minute: u32) -> Self {
        let limiter = NonZeroU32::new(per_minute).map(|n| RateLimiter::keyed(Quota::per_minute(n)));
        Self { limiter, blocked: quick_cache::sync::Cache::new(10_000), tarpit: tokio::sync::Semaphore::new(TARPITS) }
    }

    /// Holds a refused request for [`TARPIT`] (or `wait`, if shorter), unless [`TARPITS`]
    /// are held already.
    pub async fn hold(&self, wait: Duration) {
        if let Ok(_held) = self.tarpit.try_acquire() {
            tokio::time::sleep(TARPIT.min(wait)).await;
        }
    }

    /// How long `ip` is still refused, if it is.
    pub fn blocked_for(&self, ip: IpAddr) -> Option<Duration> {
        let until = self.blocked.get(&ip)?;
        let now = Instant::now();
        if until > now {
            Some(until - now)
        } else {
            self.blocked.remove(&ip);
            None
        }
    }

    /// Counts one failure of `ip`; returns how long it is now refused if this one was over the quota.
    pub fn failure(&self, ip: IpAddr) -> Option<Duration> {
        let limiter = self.limiter.as_ref()?;
        match limiter.check_key(&ip) {
            Ok(()) => None,
            Err(not_until) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now()).max(Duration::from_secs(1));
                self.blocked.insert(ip, Instant::now() + wait);
                Some(wait)
            }
        }
    }

    /// Drops the state of addresses that have been quiet; called on a timer.
    pub fn prune(&self) {
        if let Some(l) = &self.limiter {
            l.retain_recent();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_over_its_failure_quota_is_refused_for_a_while() {
        let t = AuthThrottle::new(3);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(t.failure(ip).is_none() && t.failure(ip).is_none() && t.failure(ip).is_none());
        assert!(t.blocked_for(ip).is_none());
        let wait = t.failure(ip).expect("fourth failure is over the quota");
        assert!(wait >= Duration::from_secs(1));
        assert!(t.blocked_for(ip).is_some());
        assert!(t.blocked_for(other).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_request_is_held_for_the_tarpit_or_its_wait_and_never_past_the_cap() {
        let t = AuthThrottle::new(1);
        let start = tokio::time::Instant::now();
        t.hold(Duration::from_secs(30)).await;
        assert_eq!(start.elapsed(), TARPIT);
        let start = tokio::time::Instant::now();
        t.hold(Duration::from_millis(40)).await;
        assert_eq!(start.elapsed(), Duration::from_millis(40), "never past the address's own wait");
        let _all = t.tarpit.acquire_many(u32::try_from(TARPITS).unwrap()).await.unwrap();
        let start = tokio::time::Instant::now();
        t.hold(Duration::from_secs(30)).await;
        assert_eq!(start.elapsed(), Duration::ZERO, "with every place taken a request is answered at once");
    }

    #[test]
    fn a_zero_quota_turns_the_throttle_off() {
        let t = AuthThrottle::new(0);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..1000 {
            assert!(t.failure(ip).is_none());
        }
    }

    #[test]
    fn bearer_tokens_are_read_case_insensitively_and_trimmed() {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, "bearer  clk_abc ".parse().unwrap());
        assert_eq!(bearer(&h), Some("clk_abc"));
        h.insert(header::AUTHORIZATION, "Basic dXNlcjpwYXNz".parse().unwrap());
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, "Bearer ".parse().unwrap());
        assert_eq!(bearer(&h), None);
    }
}
