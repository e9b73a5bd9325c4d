//! Request rate limits on every authenticated route: per key and per client address
//! (docs/api.md, "Rate limits"). Each is a token bucket (the `governor` crate) that refills at
//! the limit a second and holds up to two seconds' worth, so a client may burst briefly; one
//! key's flood empties only its own bucket, never another key's.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use cloacina_domain::{ApiKeyId, TenantName};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::error::ApiError;

/// One limit: its bucket per key of `K`, and requests a second.
struct Limit<K: std::hash::Hash + Eq + Clone> {
    buckets: DefaultKeyedRateLimiter<K>,
    per_second: u32,
}

impl<K: std::hash::Hash + Eq + Clone> Limit<K> {
    fn new(per_second: u32) -> Option<Self> {
        let rate = NonZeroU32::new(per_second)?;
        let burst = rate.saturating_mul(NonZeroU32::MIN.saturating_add(1));
        Some(Self { buckets: RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)), per_second })
    }

    /// Takes one request from `key`'s bucket; how long until the next is allowed if it is empty.
    fn take(&self, key: &K) -> Result<(), Duration> {
        self.buckets.check_key(key).map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}

/// The per-key and per-address limits, and the tenants' own per-key limits.
pub struct RequestLimits {
    per_key: Option<Limit<ApiKeyId>>,
    per_address: Option<Limit<IpAddr>>,
    /// A tenant's own per-key limit, as last read: `None` follows `per_key`.
    overrides: quick_cache::sync::Cache<TenantName, (Option<u32>, Instant)>,
    /// The buckets of keys under a tenant's own limit, one set per rate (`None`: no limit).
    by_rate: Mutex<HashMap<u32, Arc<Option<Limit<ApiKeyId>>>>>,
}

/// How long a tenant's own limit is trusted before it is read again; a change made on this
/// server applies at once, on other servers within this.
pub const OVERRIDE_TTL: Duration = Duration::from_secs(10);

impl std::fmt::Debug for RequestLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestLimits")
            .field("per_key", &self.per_key.as_ref().map(|l| l.per_second))
            .field("per_address", &self.per_address.as_ref().map(|l| l.per_second))
            .finish()
    }
}

/// A request over a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverLimit {
    /// `key` or `address`.
    pub scope: &'static str,
    pub per_second: u32,
    pub retry_after: Duration,
}

impl RequestLimits {
    /// `per_key` and `per_address` requests a second; 0 turns that one off.
    pub fn new(per_key: u32, per_address: u32) -> Self {
        Self {
            per_key: Limit::new(per_key),
            per_address: Limit::new(per_address),
            overrides: quick_cache::sync::Cache::new(10_000),
            by_rate: Mutex::default(),
        }
    }

    /// A tenant's own limit as last read, unless that was longer ago than [`OVERRIDE_TTL`]:
    /// `Some(None)` when it has none.
    pub fn known_override(&self, tenant: &TenantName) -> Option<Option<u32>> {
        self.overrides.get(tenant).filter(|(_, at)| at.elapsed() < OVERRIDE_TTL).map(|(rate, _)| rate)
    }

    /// Remembers a tenant's own limit as just read.
    pub fn remember_override(&self, tenant: &TenantName, rate: Option<u32>) {
        self.overrides.insert(tenant.clone(), (rate, Instant::now()));
    }

    /// Forgets what is known of a tenant's own limit (it was just changed here).
    pub fn forget_tenant(&self, tenant: &TenantName) {
        self.overrides.remove(tenant);
    }

    fn bucket_at(&self, rate: u32) -> Arc<Option<Limit<ApiKeyId>>> {
        let mut by_rate = self.by_rate.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        by_rate.entry(rate).or_insert_with(|| Arc::new(Limit::new(rate))).clone()
    }

    /// Counts one request of `key` from `address`; `own` is the key's tenant's own per-key
    /// limit, if it has one.
    ///
    /// # Errors
    /// [`OverLimit`] naming the limit it is over, the address's first.
    pub fn take(&self, key: ApiKeyId, address: IpAddr, own: Option<u32>) -> Result<(), OverLimit> {
        if let Some(limit) = &self.per_address {
            limit.take(&address).map_err(|wait| OverLimit {
                scope: "address",
                per_second: limit.per_second,
                retry_after: wait,
            })?;
        }
        let over =
            |limit: &Limit<ApiKeyId>, wait| OverLimit { scope: "key", per_second: limit.per_second, retry_after: wait };
        match own {
            None => {
                if let Some(limit) = &self.per_key {
                    limit.take(&key).map_err(|wait| over(limit, wait))?;
                }
            }
            Some(rate) => {
                if let Some(limit) = self.bucket_at(rate).as_ref() {
                    limit.take(&key).map_err(|wait| over(limit, wait))?;
                }
            }
        }
        Ok(())
    }

    /// Forgets the buckets of keys and addresses that have been quiet; called on a timer.
    pub fn prune(&self) {
        if let Some(l) = &self.per_key {
            l.buckets.retain_recent();
        }
        if let Some(l) = &self.per_address {
            l.buckets.retain_recent();
        }
        let by_rate = self.by_rate.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for l in by_rate.values().filter_map(|l| l.as_ref().as_ref()) {
            l.buckets.retain_recent();
        }
    }
}

impl IntoResponse for OverLimit {
    /// 429 `rate_limited` with `Retry-After`, and the limit in the IETF `RateLimit-Policy` and
    /// `RateLimit` headers.
    fn into_response(self) -> Response {
        let secs = self.retry_after.as_secs_f64().ceil().max(1.0) as u64;
        let message =
            format!("over this {}'s limit of {} requests a second: try again in {secs} s", self.scope, self.per_second);
        let mut response = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message).into_response();
        let headers = response.headers_mut();
        let set = |v: String| HeaderValue::from_str(&v).ok();
        if let Some(v) = set(secs.to_string()) {
            headers.insert("retry-after", v);
        }
        if let Some(v) = set(format!("\"{}\";q={};w=1", self.scope, self.per_second)) {
            headers.insert("ratelimit-policy", v);
        }
        if let Some(v) = set(format!("\"{}\";r=0;t={secs}", self.scope)) {
            headers.insert("ratelimit", v);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_over_its_limit_is_refused_while_another_key_and_address_are_not() {
        let limits = RequestLimits::new(5, 1000);
        let (a, b) = (ApiKeyId::from_uuid(uuid::Uuid::from_u128(1)), ApiKeyId::from_uuid(uuid::Uuid::from_u128(2)));
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        // Two seconds' worth in a burst.
        for _ in 0..10 {
            limits.take(a, ip, None).unwrap();
        }
        let over = limits.take(a, ip, None).unwrap_err();
        assert_eq!((over.scope, over.per_second), ("key", 5));
        assert!(over.retry_after > Duration::ZERO && over.retry_after <= Duration::from_secs(1));
        limits.take(b, ip, None).unwrap();
    }

    #[test]
    fn an_address_over_its_limit_is_refused_whatever_the_key_and_zero_turns_a_limit_off() {
        let limits = RequestLimits::new(0, 2);
        let ip: IpAddr = "192.0.2.2".parse().unwrap();
        for n in 0..4u128 {
            limits.take(ApiKeyId::from_uuid(uuid::Uuid::from_u128(n)), ip, None).unwrap();
        }
        let over = limits.take(ApiKeyId::from_uuid(uuid::Uuid::from_u128(9)), ip, None).unwrap_err();
        assert_eq!(over.scope, "address");
        limits.take(ApiKeyId::from_uuid(uuid::Uuid::from_u128(9)), "192.0.2.3".parse().unwrap(), None).unwrap();
    }

    #[test]
    fn a_tenants_own_limit_replaces_the_default_and_zero_is_none() {
        let limits = RequestLimits::new(100, 0);
        let (key, ip) = (ApiKeyId::from_uuid(uuid::Uuid::from_u128(3)), "192.0.2.4".parse().unwrap());
        for _ in 0..2 {
            limits.take(key, ip, Some(1)).unwrap();
        }
        assert_eq!(limits.take(key, ip, Some(1)).unwrap_err().per_second, 1);
        for _ in 0..500 {
            limits.take(key, ip, Some(0)).unwrap();
        }
        let tenant = TenantName::parse("acme").unwrap();
        assert_eq!(limits.known_override(&tenant), None);
        limits.remember_override(&tenant, Some(7));
        assert_eq!(limits.known_override(&tenant), Some(Some(7)));
        limits.forget_tenant(&tenant);
        assert_eq!(limits.known_override(&tenant), None);
    }

    #[test]
    fn the_answer_is_429_with_retry_after_and_both_ratelimit_headers() {
        let r = OverLimit { scope: "key", per_second: 100, retry_after: Duration::from_millis(300) }.into_response();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        let h = |n: &str| r.headers().get(n).unwrap().to_str().unwrap().to_owned();
        assert_eq!(h("retry-after"), "1");
        assert_eq!(h("ratelimit-policy"), "\"key\";q=100;w=1");
        assert_eq!(h("ratelimit"), "\"key\";r=0;t=1");
    }
}
