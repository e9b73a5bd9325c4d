//! One tenant's tail: the task that reads a tenant's new events, and its tasks' new output,
//! once for every socket on this server watching it, puts each stream in order ([`InOrder`])
//! and hands them out: output first, so that a task's last piece, committed with the event
//! that ends its execution, reaches a socket before that event closes it.
//!
//! It reads when the storage adapter's bell rings (a commit here, or on PostgreSQL a
//! `NOTIFY` from any replica), while ids are held back by a missing one, and on a timer as a
//! backstop. A tenant nobody watches for [`IDLE`] has its tail stopped.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use cloacina_domain::TenantName;
use cloacina_domain::execution::{EventRecord, OutputRecord};
use cloacina_domain::ports::StoreError;
use tokio::sync::{Notify, broadcast};

use super::Hub;
use super::order::InOrder;

/// How many rows one read takes.
pub(super) const PAGE: u32 = 500;

/// How soon a tail looks again while an id is missing.
const RECHECK: Duration = Duration::from_millis(50);

/// How long a tail nobody watches lives on.
const IDLE: Duration = Duration::from_secs(10);

/// What a tail hands out.
#[derive(Clone, Debug)]
pub(super) enum Item {
    Event(Arc<EventRecord>),
    Output(Arc<OutputRecord>),
    /// The tenant is gone: every socket on it closes.
    Gone,
}

/// The last event id and the last output piece id handed out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Released {
    pub(super) events: i64,
    pub(super) output: i64,
}

pub(super) struct Tail {
    pub(super) tenant: TenantName,
    sender: broadcast::Sender<Item>,
    /// The last ids handed out; held while handing out, so a new subscriber starts exactly
    /// between two batches.
    released: Mutex<Released>,
    wake: Notify,
    done: AtomicBool,
}

impl Tail {
    /// Starts the tail of `tenant` after the ids `released`.
    pub(super) fn start(
        hub: Weak<Hub>,
        tenant: TenantName,
        released: Released,
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

    /// A receiver of everything handed out after the ids returned with it.
    pub(super) fn subscribe(&self) -> (broadcast::Receiver<Item>, Released) {
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

    fn publish(&self, output: Vec<OutputRecord>, events: Vec<EventRecord>, now_released: Released) {
        let mut released = self.released.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // No receiver is not an error: they may all have just left.
        for piece in output {
            let _ = self.sender.send(Item::Output(Arc::new(piece)));
        }
        for e in events {
            let _ = self.sender.send(Item::Event(Arc::new(e)));
        }
        *released = now_released;
    }
}

async fn run(tail: Arc<Tail>, hub: Weak<Hub>, released: Released, backstop: Duration) {
    let mut events = InOrder::after(released.events);
    let mut output = InOrder::after(released.output);
    let mut idle_since: Option<Instant> = None;
    loop {
        let wait = if events.holding() || output.holding() { RECHECK } else { backstop };
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
            let (events_read, output_read) = match read(&hub, &tail.tenant, &events, &output).await {
                Ok(Some(read)) => read,
                Ok(None) => {
                    tracing::info!(tenant = %tail.tenant, "tenant gone: closing its live sockets");
                    let _ = tail.sender.send(Item::Gone);
                    hub.retire_gone(&tail);
                    return;
                }
                Err(e) => {
                    tracing::warn!(tenant = %tail.tenant, error = %e, "live feed could not read; trying again");
                    break;
                }
            };
            let full = events_read.len() >= PAGE as usize || output_read.len() >= PAGE as usize;
            let now = Instant::now();
            let (new_events, new_output) = (events.offer(events_read, now), output.offer(output_read, now));
            let progressed = !(new_events.is_empty() && new_output.is_empty());
            tail.publish(new_output, new_events, Released { events: events.released(), output: output.released() });
            if !(full && progressed) {
                break;
            }
        }
    }
}

/// One read of both streams, events first: output committed with an event read is then seen
/// too. `None` when the tenant is gone.
async fn read(
    hub: &Hub,
    tenant: &TenantName,
    events: &InOrder<EventRecord>,
    output: &InOrder<OutputRecord>,
) -> Result<Option<(Vec<EventRecord>, Vec<OutputRecord>)>, StoreError> {
    let Some(new_events) = hub.feed.tenant_events(tenant, events.released(), PAGE).await? else { return Ok(None) };
    let Some(new_output) = hub.feed.tenant_output(tenant, output.released(), PAGE).await? else { return Ok(None) };
    Ok(Some((new_events, new_output)))
}
