//! Tenant reads on connections of their own, each bound to one tenant at a time.
//!
//! A read through the shared pool costs PostgreSQL a parse and plan of the role switch and
//! the query on every request (the two travel as one simple-protocol message), and sqlx
//! pings every pooled connection as it goes back. Here a connection is bound to a tenant at
//! the session level (`role` and `search_path` set once, not per transaction) and kept for
//! that tenant's next reads, so a read is one round trip of a prepared, cached statement.
//!
//! The session-level role is why these connections are private to this module: no other code
//! can borrow one, so nothing runs on a tenant's connection but that tenant's reads. A
//! connection is bound again before it serves another tenant, or the same tenant after any
//! tenant changed anywhere (a deleted and re-created tenant has a new role of the same name).
//! A read that fails or is cancelled midway closes its connection instead of returning it.
//! These connections are part of `--db-max-connections` (docs/postgres.md).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgRow};
use sqlx::{Connection, PgConnection};
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::db::{TenantPlace, ident};

/// A connection idle longer than this is checked before use (as the shared pool does).
const IDLE_BEFORE_PING: Duration = Duration::from_secs(1);
/// A connection idle longer than this is closed.
const IDLE_CLOSE: Duration = Duration::from_secs(60);

/// Which tenant a connection's session runs as, and under which generation of the tenant
/// registry it was bound.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Binding {
    role: String,
    schema: String,
    generation: u64,
}

struct Idle {
    conn: PgConnection,
    binding: Binding,
    born: Instant,
    since: Instant,
}

impl Idle {
    /// Neither idle too long nor older than the connection lifetime.
    fn fresh(&self, max_lifetime: Duration) -> bool {
        self.since.elapsed() < IDLE_CLOSE && self.born.elapsed() < max_lifetime
    }
}

/// The tenant-read connections of one server.
pub(crate) struct Reads {
    options: PgConnectOptions,
    permits: Semaphore,
    idle: Mutex<Vec<Idle>>,
    size: usize,
    generation: AtomicU64,
    connect_timeout: Duration,
    max_lifetime: Duration,
}

/// Why a read failed: binding the connection to the tenant, or the query.
#[derive(Debug)]
pub(crate) enum ReadError {
    Bind(sqlx::Error),
    Query(sqlx::Error),
    /// No connection within the connect timeout.
    Busy,
}

impl Reads {
    pub(crate) fn new(
        options: PgConnectOptions,
        size: usize,
        connect_timeout: Duration,
        max_lifetime: Duration,
    ) -> Arc<Self> {
        let reads = Arc::new(Self {
            options,
            permits: Semaphore::new(size),
            idle: Mutex::new(Vec::with_capacity(size)),
            size,
            generation: AtomicU64::new(0),
            connect_timeout,
            max_lifetime,
        });
        sweep_idle(Arc::downgrade(&reads));
        reads
    }

    /// Every binding made before this is stale: a tenant was created, changed or deleted.
    pub(crate) fn forget_bindings(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Closes the idle connections: after a failure they may all be dead.
    pub(crate) fn close_idle(&self) {
        drop(std::mem::take(&mut *self.lock_idle()));
    }

    /// (open, idle) connections; a read that is still connecting counts as open.
    pub(crate) fn connections(&self) -> (usize, usize) {
        let idle = self.lock_idle().len();
        (idle + self.size.saturating_sub(self.permits.available_permits()), idle)
    }

    /// Closes every idle connection and refuses further reads.
    pub(crate) fn close(&self) {
        self.permits.close();
        self.close_idle();
    }

    /// Runs one `select` without parameters as the tenant, on a connection bound to it.
    pub(crate) async fn fetch_all(&self, place: &TenantPlace, select: &'static str) -> Result<Vec<PgRow>, ReadError> {
        let mut conn = self.acquire(place).await?;
        let rows = sqlx::query(select).fetch_all(&mut conn.conn).await.map_err(ReadError::Query)?;
        conn.keep();
        Ok(rows)
    }

    async fn acquire(&self, place: &TenantPlace) -> Result<ReadConn<'_>, ReadError> {
        let permit = tokio::time::timeout(self.connect_timeout, self.permits.acquire())
            .await
            .map_err(|_| ReadError::Busy)?
            .map_err(|_| ReadError::Busy)?;
        let want = Binding {
            role: place.role.clone(),
            schema: place.schema.clone(),
            generation: self.generation.load(Ordering::Acquire),
        };
        let (conn, born, bound, idle_for) = match self.take_idle(&want) {
            Some(idle) => (idle.conn, idle.born, idle.binding == want, idle.since.elapsed()),
            None => {
                let conn = tokio::time::timeout(self.connect_timeout, PgConnection::connect_with(&self.options))
                    .await
                    .map_err(|_| ReadError::Busy)?
                    .map_err(ReadError::Bind)?;
                (conn, Instant::now(), false, Duration::ZERO)
            }
        };
        let mut held = ReadConn { reads: self, conn, binding: want, born, _permit: permit };
        if bound {
            if idle_for > IDLE_BEFORE_PING {
                held.conn.ping().await.map_err(ReadError::Bind)?;
            }
        } else {
            let (role, schema) = (held.binding.role.clone(), ident(&held.binding.schema));
            sqlx::query("SELECT set_config('role', $1, false), set_config('search_path', $2, false)")
                .bind(role)
                .bind(schema)
                .execute(&mut held.conn)
                .await
                .map_err(ReadError::Bind)?;
        }
        Ok(held)
    }

    /// An idle connection bound as `want` (the most recent), else the one idle longest, to be
    /// bound again; closes the expired ones on the way.
    fn take_idle(&self, want: &Binding) -> Option<Idle> {
        let mut idle = self.lock_idle();
        idle.retain(|i| i.fresh(self.max_lifetime));
        let at = idle.iter().rposition(|i| &i.binding == want).or_else(|| (!idle.is_empty()).then_some(0))?;
        Some(idle.remove(at))
    }

    fn lock_idle(&self) -> std::sync::MutexGuard<'_, Vec<Idle>> {
        // The list is consistent at every step (a push or a remove), so a panic elsewhere
        // while it was held leaves nothing half-done.
        self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A connection out for one read, with its permit. Unless [`ReadConn::keep`] returns it, it
/// is closed when dropped: after an error or a cancellation its state is unknown.
struct ReadConn<'a> {
    reads: &'a Reads,
    conn: PgConnection,
    binding: Binding,
    born: Instant,
    _permit: SemaphorePermit<'a>,
}

impl ReadConn<'_> {
    /// The read went well: the connection goes back, bound as it is, unless it is too old.
    fn keep(self) {
        if self.born.elapsed() < self.reads.max_lifetime {
            let Self { reads, conn, binding, born, _permit } = self;
            reads.lock_idle().push(Idle { conn, binding, born, since: Instant::now() });
        }
    }
}

/// Closes connections idle past [`IDLE_CLOSE`] while nothing reads, until the reads are gone.
fn sweep_idle(reads: Weak<Reads>) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(IDLE_CLOSE / 2);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let Some(reads) = reads.upgrade() else { return };
            let expired: Vec<Idle> = {
                let mut idle = reads.lock_idle();
                let (keep, expired) = std::mem::take(&mut *idle).into_iter().partition(|i| i.fresh(reads.max_lifetime));
                *idle = keep;
                expired
            };
            for i in expired {
                let _ = i.conn.close().await;
            }
        }
    });
}
