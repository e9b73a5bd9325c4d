//! The audit trail's use cases: the entry a change hands its store, reading a chain, the
//! leader's retention prune, and failed authentication counted into one row per address a
//! minute (docs/audit.md).
//!
//! Where a request came from (its id, the client's address) is set once by the HTTP guard
//! for the request's task ([`with_origin`]) and read here when an entry is made, so the use
//! cases' signatures carry only who acted.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, DurationRound, Utc};
use cloacina_domain::audit::{Actor, AuditAction, AuditEntry, AuditFilter, AuditOutcome, RequestOrigin};
use cloacina_domain::authz::authorize;
use cloacina_domain::ports::{AuditPage, AuditStore, Chain, Clock, StoreError, TenantStore};
use cloacina_domain::{Denied, Permission, Principal, TenantName};

tokio::task_local! {
    static ORIGIN: RequestOrigin;
}

/// Runs `fut` (a request's handling) with `origin` as where its audited actions came from.
pub async fn with_origin<F: Future>(origin: RequestOrigin, fut: F) -> F::Output {
    ORIGIN.scope(origin, fut).await
}

/// The current request's origin; empty outside a request (the scheduler, start-up).
pub fn origin() -> RequestOrigin {
    ORIGIN.try_with(Clone::clone).unwrap_or_default()
}

/// The acting key, as rows name it.
pub fn actor(caller: &Principal) -> Actor {
    Actor { key_id: caller.key_id, key_name: caller.key_name.clone() }
}

/// The entry for `caller` doing `action` on `target` in `tenant`'s chain (`None`: the
/// control chain), now, from the current request.
pub fn entry(
    now: DateTime<Utc>,
    caller: &Principal,
    tenant: Option<&TenantName>,
    action: AuditAction,
    target: impl Into<String>,
) -> AuditEntry {
    AuditEntry::new(now, Some(actor(caller)), tenant.cloned(), action, target, origin())
}

/// The most rows one page of a listing holds.
pub const MAX_PAGE: u32 = 1000;

/// Why a chain was not read.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error("tenant '{0}' does not exist")]
    NoSuchTenant(TenantName),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Failed authentications counted by (client address, minute).
type Failures = HashMap<(String, DateTime<Utc>), u64>;

/// Reading and pruning the chains, and counting failed authentication.
#[derive(Clone)]
pub struct Audit {
    store: Arc<dyn AuditStore>,
    tenants: Arc<dyn TenantStore>,
    clock: Arc<dyn Clock>,
    /// Failed authentications by (client address, minute).
    failures: Arc<Mutex<Failures>>,
}

impl std::fmt::Debug for Audit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Audit")
    }
}

impl Audit {
    pub fn new(store: Arc<dyn AuditStore>, tenants: Arc<dyn TenantStore>, clock: Arc<dyn Clock>) -> Self {
        Self { store, tenants, clock, failures: Arc::default() }
    }

    /// A page of a chain: a tenant's for its admins (and god keys), the control chain for god
    /// keys only.
    ///
    /// # Errors
    /// [`AuditError`]: not allowed, no such tenant, or the store's failure.
    pub async fn list(
        &self,
        caller: &Principal,
        chain: &Chain,
        filter: &AuditFilter,
        limit: u32,
    ) -> Result<AuditPage, AuditError> {
        match chain {
            Chain::Tenant(t) => authorize(caller, Permission::AuditRead, Some(t))?,
            Chain::Control => authorize(caller, Permission::DeploymentAuditRead, None)?,
        }
        let page = self.store.list_audit(chain, filter, limit.clamp(1, MAX_PAGE)).await?;
        page.ok_or_else(|| match chain {
            Chain::Tenant(t) => AuditError::NoSuchTenant(t.clone()),
            Chain::Control => AuditError::Store(StoreError::Unexpected("the control chain is missing".into())),
        })
    }

    /// Removes rows older than `retention` from every chain (the leader's job). Returns how
    /// many went.
    ///
    /// # Errors
    /// The store's failure; chains after a failed one are left for the next run.
    pub async fn prune(&self, retention: std::time::Duration) -> Result<u64, StoreError> {
        let before = self.clock.now() - Duration::from_std(retention).unwrap_or(Duration::MAX);
        let mut removed = self.store.prune_audit(&Chain::Control, before).await?;
        for tenant in self.tenants.list_tenants().await? {
            removed += self.store.prune_audit(&Chain::Tenant(tenant.name), before).await?;
        }
        Ok(removed)
    }

    /// Counts one failed authentication from `client`. The count of each address reaches
    /// the control chain as one row per minute ([`Audit::flush_failures`]).
    pub fn failed_authentication(&self, client: &str) {
        let minute = self.minute();
        let mut failures = self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *failures.entry((client.to_owned(), minute)).or_insert(0) += 1;
    }

    /// Writes one `auth.failures` row per address for each minute that has ended (every
    /// minute when `all`, at shutdown). Counts that cannot be written are kept for the next
    /// flush.
    ///
    /// # Errors
    /// The store's failure.
    pub async fn flush_failures(&self, all: bool) -> Result<usize, StoreError> {
        let now_minute = self.minute();
        let ended: Vec<((String, DateTime<Utc>), u64)> = {
            let mut failures = self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let done: Vec<(String, DateTime<Utc>)> =
                failures.keys().filter(|(_, minute)| all || *minute < now_minute).cloned().collect();
            done.into_iter().filter_map(|k| failures.remove(&k).map(|n| (k, n))).collect()
        };
        if ended.is_empty() {
            return Ok(0);
        }
        let entries: Vec<AuditEntry> = ended
            .iter()
            .map(|((client, minute), count)| {
                let mut e = AuditEntry::new(
                    *minute,
                    None,
                    None,
                    AuditAction::AuthFailures,
                    client.clone(),
                    RequestOrigin { request_id: None, client: Some(client.clone()) },
                )
                .with("count", *count)
                .with("minute", minute.to_rfc3339());
                e.outcome = AuditOutcome::Denied;
                e
            })
            .collect();
        if let Err(e) = self.store.append_audit(&entries).await {
            let mut failures = self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            for (key, count) in ended {
                *failures.entry(key).or_insert(0) += count;
            }
            return Err(e);
        }
        Ok(entries.len())
    }

    fn minute(&self) -> DateTime<Utc> {
        let now = self.clock.now();
        now.duration_trunc(Duration::minutes(1)).unwrap_or(now)
    }
}

#[cfg(test)]
mod tests;
