//! The connections periodic per-tenant work runs on ("lanes": the trigger scheduler's passes
//! and the executions census), each serving a fixed share of the tenants.
//!
//! On a pooled connection a pass enters the tenant by setting `search_path` for its
//! transaction, and PostgreSQL throws away every cached plan planned under another
//! `search_path`: each of a pass's statements was parsed and planned again every minute, a
//! third of the database's work in a burst of fires (docs/benchmarks.md, B11). A lane's session
//! keeps one empty `search_path` and generic plans instead, and a pass's statements name the
//! tenant's schema, so each statement of a tenant is planned once per lane and its plan serves
//! every later pass. A tenant always goes to the same lane (the one serving fewest when first met): each lane's
//! backend caches the statements, catalog entries and relation files of its share of the
//! tenants only.
//!
//! Trigger passes come first: background work on the lanes (the census) takes a lane only
//! while no pass waits for one or holds one ([`Lanes::acquire_when_quiet`]), so a `/metrics`
//! scrape at the top of a minute does not put 1,000 census statements among the minute's
//! passes.
//!
//! The role is still set per transaction (`set_config('role', …, true)`), which leaves plans
//! alone. A pass that fails or is cancelled midway closes its lane's connection instead of
//! returning it; the next pass on that lane connects afresh. A lane idle for
//! [`IDLE_CLOSE`] is closed. Lanes are part of `--db-max-connections` (docs/postgres.md).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use cloacina_domain::TenantName;
use sqlx::postgres::PgConnectOptions;
use sqlx::{AssertSqlSafe, Connection, PgConnection};
use tokio::sync::{Mutex, MutexGuard, Notify};

/// A lane idle longer than this is checked before use (as the shared pool does).
const IDLE_BEFORE_PING: Duration = Duration::from_secs(1);
/// A lane idle longer than this is closed: past two minutes, no minutely schedule uses it.
const IDLE_CLOSE: Duration = Duration::from_secs(150);
/// Statements a lane's driver keeps prepared (besides the passes' named ones, [`Named`]): a
/// version's manifest read and the census, one each per tenant; past that the least
/// recently used are closed and planned again.
const STATEMENTS: usize = 4096;

/// Tenants a lane's session prepares named statements for (a pass's read and write), past
/// which the least recently used tenant's are deallocated.
const NAMED_TENANTS: usize = 800;

/// A lane's open connection.
struct Open {
    conn: PgConnection,
    since: Instant,
    named: Named,
}

/// The named statements a lane's session prepared, by the key of what they serve (a tenant's
/// schema): each key has a number of its own, which names its statements.
#[derive(Default)]
pub(crate) struct Named {
    /// Key → (number, last use).
    keys: HashMap<String, (u32, u64)>,
    next: u32,
    uses: u64,
}

/// What [`Lane::named`] found.
pub(crate) struct Naming {
    /// The number naming the key's statements.
    pub(crate) id: u32,
    /// The session has not prepared them yet: prepare them before use.
    pub(crate) new: bool,
    /// Another key's number whose statements are to be deallocated first.
    pub(crate) evicted: Option<u32>,
}

impl Named {
    /// The number of `key`'s statements; past `cap` keys the least recently used gives its up.
    fn name(&mut self, key: &str, cap: usize) -> Naming {
        self.uses += 1;
        if let Some((id, used)) = self.keys.get_mut(key) {
            *used = self.uses;
            return Naming { id: *id, new: false, evicted: None };
        }
        let evicted = if self.keys.len() >= cap.max(1) {
            let oldest = self.keys.iter().min_by_key(|(_, (_, used))| *used).map(|(k, _)| k.clone());
            oldest.and_then(|k| self.keys.remove(&k)).map(|(id, _)| id)
        } else {
            None
        };
        let id = self.next;
        self.next += 1;
        self.keys.insert(key.to_owned(), (id, self.uses));
        Naming { id, new: true, evicted }
    }
}

/// The trigger-pass connections of one server.
pub(crate) struct Lanes {
    options: PgConnectOptions,
    /// Run on every new lane connection: its session's prepared statements.
    session: Vec<String>,
    lanes: Box<[Mutex<Option<Open>>]>,
    connect_timeout: Duration,
    /// Passes waiting for a lane or holding one.
    passes: AtomicUsize,
    /// Rung when `passes` falls to nought.
    quiet: Notify,
    /// Tenants a lane's session keeps named statements for ([`NAMED_TENANTS`]).
    named_tenants: AtomicUsize,
    /// Which lane serves each tenant met so far.
    shares: std::sync::Mutex<Shares>,
}

/// The tenants each lane serves: a tenant met for the first time goes to the lane serving the
/// fewest, and stays there while the server runs (its plans live on that lane's session).
/// A hash of the name would do without memory, but spreads unevenly (1,000 tenants over four
/// lanes by the standard hasher: 271, 270, 227, 232), and the fullest lane sets when a
/// minute's burst of passes ends.
#[derive(Default)]
struct Shares {
    lane: HashMap<TenantName, usize>,
    count: Vec<usize>,
}

impl Shares {
    fn lane_of(&mut self, tenant: &TenantName, lanes: usize) -> usize {
        if let Some(&lane) = self.lane.get(tenant) {
            return lane;
        }
        self.count.resize(lanes, 0);
        let lane = (0..lanes).min_by_key(|&i| self.count[i]).unwrap_or(0);
        self.count[lane] += 1;
        self.lane.insert(tenant.clone(), lane);
        lane
    }

    fn forget(&mut self, tenant: &TenantName) {
        if let Some(lane) = self.lane.remove(tenant) {
            self.count[lane] -= 1;
        }
    }
}

/// Why a lane could not be had.
#[derive(Debug)]
pub(crate) enum LaneError {
    /// Connecting failed.
    Connect(sqlx::Error),
    /// No connection within the connect timeout.
    Busy,
}

impl LaneError {
    /// As the ports report it.
    pub(crate) fn into_store(self) -> cloacina_domain::ports::StoreError {
        match self {
            Self::Connect(e) => crate::db::translate(e),
            Self::Busy => {
                cloacina_domain::ports::StoreError::Unavailable("no lane connection within the connect timeout".into())
            }
        }
    }
}

impl Lanes {
    pub(crate) fn new(
        options: PgConnectOptions,
        count: usize,
        connect_timeout: Duration,
        session: Vec<String>,
    ) -> Arc<Self> {
        // Passes send literals in simple-protocol text (`crate::triggers::pass`): whatever the
        // server's default, backslashes in a string literal are characters, not escapes.
        let options = options
            .statement_cache_capacity(STATEMENTS)
            .options([("plan_cache_mode", "force_generic_plan"), ("standard_conforming_strings", "on")]);
        let lanes = Arc::new(Self {
            options,
            session,
            lanes: (0..count.max(1)).map(|_| Mutex::new(None)).collect(),
            connect_timeout,
            passes: AtomicUsize::new(0),
            quiet: Notify::new(),
            named_tenants: AtomicUsize::new(NAMED_TENANTS),
            shares: std::sync::Mutex::default(),
        });
        sweep_idle(Arc::downgrade(&lanes));
        lanes
    }

    /// Keeps named statements for `n` tenants a lane instead of [`NAMED_TENANTS`].
    #[cfg(test)]
    pub(crate) fn name_at_most(&self, n: usize) {
        self.named_tenants.store(n, Ordering::Relaxed);
    }

    /// The tenant is gone: its lane's share is one fewer.
    pub(crate) fn forget(&self, tenant: &TenantName) {
        self.shares.lock().unwrap_or_else(std::sync::PoisonError::into_inner).forget(tenant);
    }

    /// How many lanes there are.
    pub(crate) fn count(&self) -> usize {
        self.lanes.len()
    }

    /// (open, idle) connections; a lane in use counts as open.
    pub(crate) fn connections(&self) -> (usize, usize) {
        let (mut open, mut idle) = (0, 0);
        for lane in &*self.lanes {
            match lane.try_lock() {
                Ok(slot) if slot.is_some() => {
                    open += 1;
                    idle += 1;
                }
                Ok(_) => {}
                Err(_) => open += 1,
            }
        }
        (open, idle)
    }

    /// Closes the idle lanes (the server is stopping, or the database restarted).
    pub(crate) fn close_idle(&self) {
        for lane in &*self.lanes {
            if let Ok(mut slot) = lane.try_lock() {
                slot.take();
            }
        }
    }

    /// Counts a pass as under way until the count is dropped: from its very start (a pass
    /// looks up the tenant's place before it asks for a lane), so background work does not
    /// slip in while the passes of a burst are between their steps.
    pub(crate) fn pass_begins(&self) -> PassCount<'_> {
        self.passes.fetch_add(1, Ordering::AcqRel);
        PassCount(self)
    }

    /// The tenant's lane for a trigger pass, connected, with its session's `search_path`
    /// empty. Waits while another pass of the same lane runs; counts as a pass while it waits
    /// and while it holds the lane.
    pub(crate) async fn acquire(&self, tenant: &TenantName) -> Result<Lane<'_>, LaneError> {
        let pass = self.pass_begins();
        let mut lane = self.lane(tenant).await?;
        lane.pass = Some(pass);
        Ok(lane)
    }

    /// The tenant's lane for background work: first waits until no pass waits for a lane or
    /// holds one, however long that takes.
    pub(crate) async fn acquire_when_quiet(&self, tenant: &TenantName) -> Result<Lane<'_>, LaneError> {
        loop {
            let quiet = self.quiet.notified();
            if self.passes.load(Ordering::Acquire) == 0 {
                break;
            }
            quiet.await;
        }
        self.lane(tenant).await
    }

    /// The lane serving the tenant (the one serving fewest, the first time it is met).
    pub(crate) fn lane_of(&self, tenant: &TenantName) -> usize {
        self.shares.lock().unwrap_or_else(std::sync::PoisonError::into_inner).lane_of(tenant, self.lanes.len())
    }

    async fn lane(&self, tenant: &TenantName) -> Result<Lane<'_>, LaneError> {
        let slot = &self.lanes[self.lane_of(tenant)];
        let mut slot = tokio::time::timeout(self.connect_timeout, slot.lock()).await.map_err(|_| LaneError::Busy)?;
        let kept = match slot.take() {
            Some(open) if open.since.elapsed() < IDLE_CLOSE => {
                let Open { mut conn, since, named } = open;
                // One that idled may have died with a database restart: connect afresh.
                if since.elapsed() <= IDLE_BEFORE_PING || conn.ping().await.is_ok() {
                    Some((conn, named))
                } else {
                    None
                }
            }
            _ => None,
        };
        let (conn, named) = match kept {
            Some(kept) => kept,
            None => (self.connect().await?, Named::default()),
        };
        let cap = self.named_tenants.load(Ordering::Relaxed);
        Ok(Lane { slot, conn: Some(conn), named, cap, pass: None })
    }

    async fn connect(&self) -> Result<PgConnection, LaneError> {
        let mut conn = tokio::time::timeout(self.connect_timeout, PgConnection::connect_with(&self.options))
            .await
            .map_err(|_| LaneError::Busy)?
            .map_err(LaneError::Connect)?;
        // No schema at all, as pg_dump sets it: a table name that is not qualified fails
        // instead of reaching `public`.
        sqlx::query("SELECT set_config('search_path', '', false)")
            .execute(&mut conn)
            .await
            .map_err(LaneError::Connect)?;
        for statement in &self.session {
            sqlx::raw_sql(AssertSqlSafe(statement.clone())).execute(&mut conn).await.map_err(LaneError::Connect)?;
        }
        Ok(conn)
    }
}

/// A lane held by one pass. Unless [`Lane::keep`] returns it, its connection is closed when
/// dropped: after an error or a cancellation its state is unknown.
pub(crate) struct Lane<'a> {
    slot: MutexGuard<'a, Option<Open>>,
    conn: Option<PgConnection>,
    named: Named,
    cap: usize,
    /// A pass's count, given back when the lane is (after the slot's lock: fields drop in order).
    pass: Option<PassCount<'a>>,
}

/// One pass counted in [`Lanes::passes`] until dropped.
pub(crate) struct PassCount<'a>(&'a Lanes);

impl Drop for PassCount<'_> {
    fn drop(&mut self) {
        if self.0.passes.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.quiet.notify_waiters();
        }
    }
}

impl Lane<'_> {
    /// The connection.
    pub(crate) fn conn(&mut self) -> &mut PgConnection {
        self.conn.as_mut().expect("a lane holds its connection until it is kept or dropped")
    }

    /// The number naming `key`'s statements in this session, and whether they are yet to be
    /// prepared (counted as prepared from now: if the pass fails, the lane is not kept).
    pub(crate) fn named(&mut self, key: &str) -> Naming {
        self.named.name(key, self.cap)
    }

    /// The pass went well: the connection stays open for the lane's next pass.
    pub(crate) fn keep(mut self) {
        let named = std::mem::take(&mut self.named);
        *self.slot = self.conn.take().map(|conn| Open { conn, since: Instant::now(), named });
    }
}

/// Closes lanes idle past [`IDLE_CLOSE`], until the lanes are gone.
fn sweep_idle(lanes: Weak<Lanes>) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(IDLE_CLOSE / 2);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let Some(lanes) = lanes.upgrade() else { return };
            for lane in &*lanes.lanes {
                let Ok(mut slot) = lane.try_lock() else { continue };
                if slot.as_ref().is_some_and(|open| open.since.elapsed() >= IDLE_CLOSE)
                    && let Some(open) = slot.take()
                {
                    let _ = open.conn.close().await;
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_always_goes_to_the_same_lane_and_new_tenants_to_the_lane_serving_fewest() {
        let names: Vec<TenantName> = (0..1000).map(|i| TenantName::parse(&format!("t{i:04}")).unwrap()).collect();
        let mut shares = Shares::default();
        let mut per_lane = [0usize; 4];
        for n in &names {
            per_lane[shares.lane_of(n, 4)] += 1;
        }
        assert_eq!(per_lane, [250; 4]);
        for n in &names {
            let lane = shares.lane_of(n, 4);
            assert_eq!(lane, shares.lane_of(n, 4));
        }
        let gone = shares.lane_of(&names[5], 4);
        shares.forget(&names[5]);
        shares.forget(&names[5]);
        let new = TenantName::parse("newcomer").unwrap();
        assert_eq!(shares.lane_of(&new, 4), gone, "the lane a deleted tenant left serves the next new one");
    }

    #[test]
    fn a_session_names_a_key_once_and_past_its_cap_gives_up_the_least_recently_used_name() {
        let mut named = Named::default();
        let a = named.name("a", 3);
        assert!(a.new && a.evicted.is_none());
        let b = named.name("b", 3);
        let c = named.name("c", 3);
        assert_eq!([a.id, b.id, c.id].iter().collect::<std::collections::HashSet<_>>().len(), 3);
        let again = named.name("a", 3);
        assert!(!again.new && again.evicted.is_none());
        assert_eq!(again.id, a.id);
        // "b" is now the least recently used.
        let d = named.name("d", 3);
        assert!(d.new);
        assert_eq!(d.evicted, Some(b.id));
        assert!(![a.id, b.id, c.id].contains(&d.id), "a new number, never one given up");
        let b_again = named.name("b", 3);
        assert!(b_again.new, "a key given up is prepared afresh");
        assert_eq!(b_again.evicted, Some(c.id));
    }
}
