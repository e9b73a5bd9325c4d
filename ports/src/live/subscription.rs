//! One socket's view of a tenant's events (and, for an execution's socket that asks, its
//! tasks' output): what it missed (from `since`), then live.

use std::collections::VecDeque;
use std::sync::{Arc, Weak};

use chrono::{DateTime, Utc};
use cloacina_domain::execution::{EventRecord, ExecutionId, OutputRecord};
use cloacina_domain::ports::Lookup;
use cloacina_domain::{ApiKeyId, TenantName};
use tokio::sync::{broadcast, watch};

use super::Hub;
use super::tail::{Item, PAGE, Released};

/// Which events a socket gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// One execution's.
    Execution(ExecutionId),
    /// Every execution's of the tenant.
    Tenant,
}

impl Scope {
    fn holds(self, execution: ExecutionId) -> bool {
        match self {
            Scope::Execution(id) => execution == id,
            Scope::Tenant => true,
        }
    }
}

/// Why a subscription ended. Each has its WebSocket close code (docs/live.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Closed {
    /// The socket fell further behind than its buffer; resume with `since`.
    SlowConsumer,
    /// The key was revoked (or is gone) since the socket opened.
    KeyRevoked,
    /// The key expired while the socket was open.
    KeyExpired,
    /// The tenant (or the execution) no longer exists.
    Gone,
    /// The server is shutting down; resume elsewhere with `since`.
    ShuttingDown,
    /// The database could not be read; resume with `since`.
    Unavailable,
}

/// What [`Subscription::next`] gives.
#[derive(Clone, Debug)]
pub enum Next {
    Event(Arc<EventRecord>),
    /// A piece of a task's output, for a subscription that asked for output.
    Output(Arc<OutputRecord>),
    Closed(Closed),
}

/// A socket's subscription. Dropping it unregisters the socket.
pub struct Subscription {
    pub(super) hub: Weak<Hub>,
    pub(super) id: u64,
    pub(super) tenant: TenantName,
    pub(super) key: ApiKeyId,
    pub(super) scope: Scope,
    pub(super) rx: broadcast::Receiver<Item>,
    pub(super) close: watch::Receiver<Option<Closed>>,
    pub(super) expires_at: Option<DateTime<Utc>>,
    /// What was missed: ids above the first and up to the second, not yet read.
    pub(super) behind: Option<(i64, i64)>,
    pub(super) backlog: VecDeque<Arc<EventRecord>>,
    /// The last id given; nothing at or below it is given again.
    pub(super) last: i64,
    /// Output too (an execution's socket that asked): the same three for output pieces.
    pub(super) output: Option<OutputCursor>,
}

/// Where a subscription is in its execution's output.
#[derive(Debug, Default)]
pub(super) struct OutputCursor {
    pub(super) behind: Option<(i64, i64)>,
    pub(super) backlog: VecDeque<Arc<OutputRecord>>,
    pub(super) last: i64,
}

impl OutputCursor {
    pub(super) fn after(since: i64, released: Released) -> Self {
        Self {
            behind: (since < released.output).then_some((since, released.output)),
            backlog: VecDeque::new(),
            last: since,
        }
    }
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription").field("tenant", &self.tenant).field("scope", &self.scope).finish_non_exhaustive()
    }
}

impl Subscription {
    /// The tenant watched.
    pub fn tenant(&self) -> &TenantName {
        &self.tenant
    }

    /// The key the socket was opened with.
    pub fn key(&self) -> ApiKeyId {
        self.key
    }

    /// The last event id given (the `since` to resume from).
    pub fn last(&self) -> i64 {
        self.last
    }

    /// The last output piece id given (the `output_since` to resume from), if output is on.
    pub fn last_output(&self) -> Option<i64> {
        self.output.as_ref().map(|o| o.last)
    }

    /// The next event, in id order, none twice; or why the subscription ended.
    pub async fn next(&mut self) -> Next {
        loop {
            if let Some(closed) = *self.close.borrow() {
                return Next::Closed(closed);
            }
            // What was missed of the output first: it was committed before the events that
            // follow it, the final one included.
            if let Some(out) = &mut self.output {
                if let Some(piece) = out.backlog.pop_front() {
                    out.last = piece.id;
                    return Next::Output(piece);
                }
                if let Some((from, upto)) = out.behind {
                    match self.catch_up_output(from, upto).await {
                        Ok(()) => continue,
                        Err(closed) => return Next::Closed(closed),
                    }
                }
            }
            if let Some(e) = self.backlog.pop_front() {
                self.last = e.id;
                return Next::Event(e);
            }
            if let Some((from, upto)) = self.behind {
                match self.catch_up(from, upto).await {
                    Ok(()) => continue,
                    Err(closed) => return Next::Closed(closed),
                }
            }
            let expiry = self.expires_at.map(|at| (at - Utc::now()).to_std().unwrap_or_default());
            tokio::select! {
                biased;
                _ = self.close.changed() => {}
                () = sleep_for(expiry) => return Next::Closed(Closed::KeyExpired),
                item = self.rx.recv() => match item {
                    Ok(Item::Event(e)) => {
                        if e.id > self.last && self.scope.holds(e.execution_id) {
                            self.last = e.id;
                            return Next::Event(e);
                        }
                    }
                    Ok(Item::Output(piece)) => {
                        if let Some(out) = &mut self.output
                            && piece.id > out.last
                            && self.scope.holds(piece.execution_id)
                        {
                            out.last = piece.id;
                            return Next::Output(piece);
                        }
                    }
                    Ok(Item::Gone) | Err(broadcast::error::RecvError::Closed) => return Next::Closed(Closed::Gone),
                    Err(broadcast::error::RecvError::Lagged(_)) => return Next::Closed(Closed::SlowConsumer),
                },
            }
        }
    }

    /// Reads one page of what was missed.
    async fn catch_up(&mut self, from: i64, upto: i64) -> Result<(), Closed> {
        let hub = self.hub.upgrade().ok_or(Closed::ShuttingDown)?;
        let page = match self.scope {
            Scope::Execution(id) => match hub.executions.execution_events(&self.tenant, id, from, PAGE).await {
                Ok(Lookup::Found(page)) => page,
                Ok(_) => return Err(Closed::Gone),
                Err(_) => return Err(Closed::Unavailable),
            },
            Scope::Tenant => match hub.feed.tenant_events(&self.tenant, from, PAGE).await {
                Ok(Some(page)) => page,
                Ok(None) => return Err(Closed::Gone),
                Err(_) => return Err(Closed::Unavailable),
            },
        };
        let full = page.len() >= PAGE as usize;
        let mut next = from;
        for e in page {
            next = e.id;
            if e.id <= upto && e.id > self.last {
                self.backlog.push_back(Arc::new(e));
            }
        }
        self.behind = (full && next < upto).then_some((next, upto));
        Ok(())
    }
}

impl Subscription {
    /// Reads one page of the output that was missed (an execution's socket only).
    async fn catch_up_output(&mut self, from: i64, upto: i64) -> Result<(), Closed> {
        let hub = self.hub.upgrade().ok_or(Closed::ShuttingDown)?;
        let Scope::Execution(id) = self.scope else { return Ok(()) };
        let page = match hub.feed.execution_output(&self.tenant, id, from, PAGE).await {
            Ok(Lookup::Found(page)) => page,
            Ok(_) => return Err(Closed::Gone),
            Err(_) => return Err(Closed::Unavailable),
        };
        let Some(out) = &mut self.output else { return Ok(()) };
        let full = page.len() >= PAGE as usize;
        let mut next = from;
        for piece in page {
            next = piece.id;
            if piece.id <= upto && piece.id > out.last {
                out.backlog.push_back(Arc::new(piece));
            }
        }
        out.behind = (full && next < upto).then_some((next, upto));
        Ok(())
    }
}

async fn sleep_for(d: Option<std::time::Duration>) {
    match d {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(hub) = self.hub.upgrade() {
            hub.unregister(self.id);
        }
    }
}
