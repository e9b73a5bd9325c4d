//! One tenant's tail: the task that reads a tenant's new events once for every socket on this
//! server watching it, puts them in order ([`InOrder`]) and hands them out.
//!
//! It reads when the storage adapter's bell rings (a commit here, or on PostgreSQL a
//! `NOTIFY` from any replica), while ids are held back by a missing one, and on a timer as a
//! backstop. A tenant nobody watches for [`IDLE`] has its tail stopped.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use cloacina_domain::TenantName;
use cloacina_domain::execution::EventRecord;
use tokio::sync::{Notify, broadcast};

use super::Hub;
use super::order::InOrder;

/// How many events one read takes.
pub(super) const PAGE: u32 = 500;

/// How soon a tail looks again while an id is missing.
const RECHECK: Duration = Duration::from_millis(50);

/// How long a tail nobody watches lives on.
const IDLE: Duration = Duration::from_secs(10);

/// What a tail hands out.
#[derive(Clone, Debug)]
pub(super) enum Item {
    Event(Arc<EventRecord>),
    /// The tenant is gone: every socket on it closes.
    Gone,
}

pub(super) struct Tail {
    pub(super) tenant: TenantName,
    sender: broadcast::Sender<Item>,
    /// The last id handed out; held while handing out, so a new subscriber starts exactly
    /// between two batches.
    released: Mutex<i64>,
    wake: Notify,
    done: AtomicBool,
}

impl Tail {
    /// Starts the tail of `tenant` after id `released`.
    pub(super) fn start(
        hub: Weak<Hub>,
        tenant: TenantName,
        released: i64,
        buffer: usize,
        backstop: Duration,
    ) -> Arc<Self> {
        let (sender, _) = broadcast::channel(buffer.max(16));
        let tail = Arc::new(Self {
            tenant,
            sender,
            released: Mutex::new(released),
            wake: Notify::new(),
            done: AtomicBool::new(false),
        });
        tokio::spawn(run(tail.clone(), hub, released, backstop));
        tail
    }

    /// A receiver of everything handed out after the id returned with it.
    pub(super) fn subscribe(&self) -> (broadcast::Receiver<Item>, i64) {
        let released = self.released.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        (self.sender.subscribe(), *released)
    }

    pub(super) fn ring(&self) {
        self.wake.notify_one();
    }

    pub(super) fn is_done(&self) -> bool {
        self.done.load(Ordering::SeqCst)
    }

    pub(super) fn watchers(&self) -> usize {
        self.sender.receiver_count()
    }

    pub(super) fn finish(&self) {
        self.done.store(true, Ordering::SeqCst);
    }

    fn publish(&self, events: Vec<EventRecord>, now_released: i64) {
        let mut released = self.released.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for e in events {
            // No receiver is not an error: they may all have just left.
            let _ = self.sender.send(Item::Event(Arc::new(e)));
        }
        *released = now_released;
    }
}

async fn run(tail: Arc<Tail>, hub: Weak<Hub>, released: i64, backstop: Duration) {
    let mut order = InOrder::after(released);
    let mut idle_since: Option<Instant> = None;
    loop {
        let wait = if order.holding() { RECHECK } else { backstop };
        tokio::select! {
            () = tail.wake.notified() => {}
            () = tokio::time::sleep(wait) => {}
        }
        let Some(hub) = hub.upgrade() else { return };
        if tail.watchers() == 0 {
            let since = *idle_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= IDLE && hub.retire(&tail) {
                return;
            }
        } else {
            idle_since = None;
        }
        loop {
            match hub.feed.tenant_events(&tail.tenant, order.released(), PAGE).await {
                Ok(None) => {
                    tracing::info!(tenant = %tail.tenant, "tenant gone: closing its live sockets");
                    let _ = tail.sender.send(Item::Gone);
                    hub.retire_gone(&tail);
                    return;
                }
                Ok(Some(events)) => {
                    let full = events.len() >= PAGE as usize;
                    let out = order.offer(events, Instant::now());
                    let progressed = !out.is_empty();
                    tail.publish(out, order.released());
                    if !(full && progressed) {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(tenant = %tail.tenant, error = %e, "live feed could not read events; trying again");
                    break;
                }
            }
        }
    }
}
