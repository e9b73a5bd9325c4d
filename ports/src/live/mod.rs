//! Live: a tenant's execution events sent to sockets as they are committed (docs/live.md).
//!
//! Each server keeps one [`tail`] per tenant someone watches: it reads the tenant's new events
//! once, puts them in id order ([`order`]) and hands them to that tenant's sockets, each a
//! [`Subscription`] that first reads what it missed (`since`) and then takes the tail's events
//! with no gap and none twice. The storage adapter's bell wakes the tails (on PostgreSQL
//! every replica's, by `NOTIFY`); the rows are always read from the tenant's own schema.
//!
//! Every open socket is registered with its key: when the authenticator forgets a key (a
//! revoke, here or on another replica) or everything (a tenant deleted, a lost listener), the
//! keys are looked up again and the sockets of a revoked or vanished key are told to close.

pub mod order;
mod subscription;
mod tail;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::Utc;
use cloacina_domain::authz::authorize;
use cloacina_domain::ports::{EventBell, EventFeed, ExecutionStore, KeyStore, StoreError};
use cloacina_domain::{ApiKeyId, Denied, Permission, Principal, TenantName};
use tokio::sync::watch;

pub use subscription::{Closed, Next, Scope, Subscription};
use tail::Tail;

/// How the live feed behaves.
#[derive(Debug, Clone, Copy)]
pub struct LiveConfig {
    /// How often a tail reads without being rung: what another process on the same SQLite
    /// file, or a lost notification, costs in delay at most.
    pub backstop: Duration,
    /// Events a socket may fall behind by before it is closed as a slow consumer.
    pub buffer: usize,
    /// Open sockets per key.
    pub per_key: usize,
}

impl Default for LiveConfig {
    fn default() -> Self {
        Self { backstop: Duration::from_secs(1), buffer: 4096, per_key: 64 }
    }
}

/// Why a socket cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error("no tenant named '{0}'")]
    NoTenant(TenantName),
    #[error("this key has {0} live sockets open already, the most it may")]
    TooMany(usize),
    #[error("the server is shutting down")]
    ShuttingDown,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The live feed of this server. Cheap to clone.
#[derive(Clone)]
pub struct Live(Arc<Hub>);

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live").field("config", &self.0.config).finish_non_exhaustive()
    }
}

pub(crate) struct Hub {
    feed: Arc<dyn EventFeed>,
    executions: Arc<dyn ExecutionStore>,
    keys: Arc<dyn KeyStore>,
    config: LiveConfig,
    tails: Mutex<HashMap<TenantName, Arc<Tail>>>,
    sockets: Mutex<Sockets>,
    closing: AtomicBool,
}

#[derive(Default)]
struct Sockets {
    next: u64,
    open: HashMap<u64, Socket>,
}

struct Socket {
    key: ApiKeyId,
    tenant: TenantName,
    close: watch::Sender<Option<Closed>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Live {
    pub fn new(
        feed: Arc<dyn EventFeed>,
        executions: Arc<dyn ExecutionStore>,
        keys: Arc<dyn KeyStore>,
        config: LiveConfig,
    ) -> Self {
        Self(Arc::new(Hub {
            feed,
            executions,
            keys,
            config,
            tails: Mutex::default(),
            sockets: Mutex::default(),
            closing: AtomicBool::new(false),
        }))
    }

    /// The bell for the storage adapter: wakes the tenant's tail, if this server has one.
    pub fn bell(&self) -> EventBell {
        let hub = Arc::downgrade(&self.0);
        Arc::new(move |tenant: &TenantName| {
            if let Some(hub) = hub.upgrade()
                && let Some(tail) = lock(&hub.tails).get(tenant)
            {
                tail.ring();
            }
        })
    }

    /// Opens a subscription to `tenant`'s events in `scope` with an id above `since`; without
    /// `since`, an execution's from its first event, the tenant's from now on.
    ///
    /// # Errors
    /// [`LiveError`]: not allowed, no such tenant, too many sockets for the key, shutting
    /// down, the store.
    pub async fn subscribe(
        &self,
        caller: &Principal,
        tenant: &TenantName,
        scope: Scope,
        since: Option<i64>,
    ) -> Result<Subscription, LiveError> {
        self.subscribe_with_output(caller, tenant, scope, since, None).await
    }

    /// [`Live::subscribe`], and with `output_since` for an execution's socket, its tasks'
    /// output pieces with an id above it too.
    ///
    /// # Errors
    /// As [`Live::subscribe`].
    pub async fn subscribe_with_output(
        &self,
        caller: &Principal,
        tenant: &TenantName,
        scope: Scope,
        since: Option<i64>,
        output_since: Option<i64>,
    ) -> Result<Subscription, LiveError> {
        authorize(caller, Permission::ExecutionRead, Some(tenant))?;
        let hub = &self.0;
        if hub.closing.load(Ordering::SeqCst) {
            return Err(LiveError::ShuttingDown);
        }
        let (id, close) = hub.register(caller.key_id, tenant)?;
        let joined = hub.join(tenant).await;
        let (rx, released) = match joined {
            Ok(j) => j,
            Err(e) => {
                hub.unregister(id);
                return Err(e);
            }
        };
        let since = since.unwrap_or(match scope {
            Scope::Execution(_) => 0,
            Scope::Tenant => released.events,
        });
        let output = match scope {
            Scope::Execution(_) => output_since.map(|o| subscription::OutputCursor::after(o, released)),
            Scope::Tenant => None,
        };
        Ok(Subscription {
            hub: Arc::downgrade(hub),
            id,
            tenant: tenant.clone(),
            key: caller.key_id,
            scope,
            rx,
            close,
            expires_at: caller.expires_at,
            behind: (since < released.events).then_some((since, released.events)),
            backlog: Default::default(),
            last: since,
            output,
        })
    }

    /// The authenticator forgot `key` (created, revoked, here or on another server): its
    /// sockets close if it is no longer valid.
    pub fn key_changed(&self, key: ApiKeyId) {
        if !lock(&self.0.sockets).open.values().any(|s| s.key == key) {
            return;
        }
        let hub = self.0.clone();
        tokio::spawn(async move { hub.recheck(vec![key]).await });
    }

    /// The authenticator forgot everything (a tenant deleted, a lost listener): every key
    /// with a socket is looked up again, and every tail reads (and sees a tenant gone).
    pub fn everything_changed(&self) {
        let hub = self.0.clone();
        for tail in lock(&hub.tails).values() {
            tail.ring();
        }
        tokio::spawn(async move {
            let keys: Vec<ApiKeyId> = {
                let mut keys: Vec<ApiKeyId> = lock(&hub.sockets).open.values().map(|s| s.key).collect();
                keys.sort_unstable();
                keys.dedup();
                keys
            };
            hub.recheck(keys).await;
        });
    }

    /// Shutdown: refuses new sockets and tells every open one to close.
    pub fn close_all(&self) {
        self.0.closing.store(true, Ordering::SeqCst);
        for s in lock(&self.0.sockets).open.values() {
            let _ = s.close.send(Some(Closed::ShuttingDown));
        }
    }

    /// The highest event id the tenant has (the delivery protocol's `max_known_id`).
    ///
    /// # Errors
    /// [`LiveError::NoTenant`], or the store's.
    pub async fn last_event_id(&self, tenant: &TenantName) -> Result<i64, LiveError> {
        self.0.feed.last_event_id(tenant).await?.ok_or_else(|| LiveError::NoTenant(tenant.clone()))
    }

    /// Open sockets now.
    pub fn open_sockets(&self) -> usize {
        lock(&self.0.sockets).open.len()
    }

    /// Tenants with a tail on this server now.
    pub fn tails(&self) -> usize {
        lock(&self.0.tails).len()
    }
}

impl Hub {
    fn register(
        &self,
        key: ApiKeyId,
        tenant: &TenantName,
    ) -> Result<(u64, watch::Receiver<Option<Closed>>), LiveError> {
        let mut sockets = lock(&self.sockets);
        let held = sockets.open.values().filter(|s| s.key == key).count();
        if held >= self.config.per_key {
            return Err(LiveError::TooMany(held));
        }
        sockets.next += 1;
        let id = sockets.next;
        let (close, rx) = watch::channel(None);
        sockets.open.insert(id, Socket { key, tenant: tenant.clone(), close });
        Ok((id, rx))
    }

    pub(crate) fn unregister(&self, id: u64) {
        lock(&self.sockets).open.remove(&id);
    }

    /// Subscribes to the tenant's tail, starting one if needed. Under the tails lock, so a
    /// tail being retired for want of watchers cannot take a new one with it.
    async fn join(
        self: &Arc<Self>,
        tenant: &TenantName,
    ) -> Result<(tokio::sync::broadcast::Receiver<tail::Item>, tail::Released), LiveError> {
        if let Some(tail) = lock(&self.tails).get(tenant).filter(|t| !t.is_done()) {
            return Ok(tail.subscribe());
        }
        let no_tenant = || LiveError::NoTenant(tenant.clone());
        let events = self.feed.last_event_id(tenant).await?.ok_or_else(no_tenant)?;
        let output = self.feed.last_output_id(tenant).await?.ok_or_else(no_tenant)?;
        let last = tail::Released { events, output };
        let mut tails = lock(&self.tails);
        if let Some(tail) = tails.get(tenant).filter(|t| !t.is_done()) {
            return Ok(tail.subscribe());
        }
        let tail = Tail::start(Arc::downgrade(self), tenant.clone(), last, self.config.buffer, self.config.backstop);
        let joined = tail.subscribe();
        tails.insert(tenant.clone(), tail);
        Ok(joined)
    }

    /// Stops `tail` if nobody watches it; whether it did.
    fn retire(&self, tail: &Arc<Tail>) -> bool {
        let mut tails = lock(&self.tails);
        if tail.watchers() > 0 {
            return false;
        }
        tail.finish();
        if tails.get(&tail.tenant).is_some_and(|t| Arc::ptr_eq(t, tail)) {
            tails.remove(&tail.tenant);
        }
        true
    }

    /// The tail's tenant is gone.
    fn retire_gone(&self, tail: &Arc<Tail>) {
        let mut tails = lock(&self.tails);
        tail.finish();
        if tails.get(&tail.tenant).is_some_and(|t| Arc::ptr_eq(t, tail)) {
            tails.remove(&tail.tenant);
        }
        drop(tails);
        for s in lock(&self.sockets).open.values().filter(|s| s.tenant == tail.tenant) {
            let _ = s.close.send(Some(Closed::Gone));
        }
    }

    /// Looks the keys up afresh and closes the sockets of those no longer valid. A key that
    /// cannot be looked up (the database is away) keeps its sockets.
    async fn recheck(&self, keys: Vec<ApiKeyId>) {
        let now = Utc::now();
        for key in keys {
            let why = match self.keys.find(key).await {
                Ok(None) => Some(Closed::KeyRevoked),
                Ok(Some(r)) if r.revoked => Some(Closed::KeyRevoked),
                Ok(Some(r)) if r.expires_at.is_some_and(|e| e <= now) => Some(Closed::KeyExpired),
                Ok(Some(_)) => None,
                Err(e) => {
                    tracing::warn!(key_id = %key, error = %e, "could not check a live socket's key");
                    None
                }
            };
            if let Some(why) = why {
                for s in lock(&self.sockets).open.values().filter(|s| s.key == key) {
                    let _ = s.close.send(Some(why));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
