//! Connecting, the pool, and translating database errors.

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cloacina_domain::ports::{BellSlot, Constraint, ConstraintKind, StoreError};
use cloacina_domain::{Secret, TenantName};
use quick_cache::sync::Cache;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use crate::lanes::Lanes;
use crate::reads::Reads;

/// Pool and session settings, from `serve`'s flags.
#[derive(Debug, Clone)]
pub struct PgSettings {
    /// The most connections the server holds, whatever the number of tenants.
    pub max_connections: u32,
    /// Every statement is cancelled after this (0: no limit).
    pub statement_timeout: Duration,
    /// How long to wait for a connection, new or pooled.
    pub connect_timeout: Duration,
    /// Connections are closed after this age, so the per-connection catalog cache that grows
    /// with every tenant a connection touches stays bounded.
    pub max_lifetime: Duration,
}

impl Default for PgSettings {
    fn default() -> Self {
        Self {
            max_connections: 16,
            statement_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            max_lifetime: Duration::from_secs(600),
        }
    }
}

/// The database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("invalid PostgreSQL URL: {0}")]
    Url(String),
    #[error("cannot connect to PostgreSQL at {target}: {cause}")]
    Connect { target: String, cause: String },
}

/// What the server's login role may do (docs/postgres.md wants CREATEROLE and NOINHERIT, and
/// neither SUPERUSER nor BYPASSRLS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginRole {
    pub superuser: bool,
    pub bypass_rls: bool,
    pub inherit: bool,
    pub create_role: bool,
}

/// Where a tenant's data lives and which role reaches it.
#[derive(Debug, Clone)]
pub(crate) struct TenantPlace {
    pub schema: String,
    pub role: String,
    loaded: Instant,
}

/// A pooled connection idle longer than this is checked before use.
const IDLE_BEFORE_PING: Duration = Duration::from_secs(1);

/// How long a cached tenant place is trusted without a notification. A place follows from the
/// tenant's name (its schema and role names), so a cached one is never wrong while the
/// tenant lives, and a pass that meets a deleted tenant's role gone forgets it; any tenant
/// notification or a reconnect of the listener empties the cache. Longer than a minute: at
/// 30 s, every minutely trigger pass of every tenant looked its place up again.
const PLACE_TTL: Duration = Duration::from_secs(300);

/// A handle to the PostgreSQL backend. Cheap to clone.
#[derive(Clone)]
pub struct PgDb {
    pub(crate) pool: PgPool,
    /// `host:port/database`, for logs.
    target: Arc<str>,
    /// Tenant name → schema and role, for tenant-scoped transactions; forgotten on every
    /// tenant notification.
    pub(crate) places: Arc<Cache<TenantName, TenantPlace>>,
    /// Wakes this server's workers: a commit here, or a `cloacina_work` notification from
    /// any replica, readied tasks.
    pub(crate) work: Arc<tokio::sync::Notify>,
    /// Wakes this server's trigger scheduler: a `cloacina_triggers` notification.
    pub(crate) triggers: Arc<tokio::sync::Notify>,
    /// Rung on a `cloacina_events` notification: a replica committed events of a tenant.
    pub(crate) bell: BellSlot,
    /// Connections bound to one tenant at a time, for one-statement reads (`reads`).
    pub(crate) reads: Arc<Reads>,
    /// The connections trigger passes run on, each serving a fixed share of the tenants.
    pub(crate) lanes: Arc<Lanes>,
    /// Package versions as trigger passes read them, by id: a version never changes, and its
    /// manifest was parsed again on every pass.
    pub(crate) versions: Arc<Cache<uuid::Uuid, Arc<cloacina_domain::trigger::StoredVersion>>>,
    /// `--db-max-connections`: the pool's, the reads' and the lanes' connections together.
    max_connections: u32,
}

impl std::fmt::Debug for PgDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgDb").field("target", &self.target).finish_non_exhaustive()
    }
}

/// `host:port/database`: where we connect, without the user or password.
pub(crate) fn target(o: &PgConnectOptions) -> String {
    format!("{}:{}/{}", o.get_host(), o.get_port(), o.get_database().unwrap_or("(default)"))
}

impl PgDb {
    /// Opens a pool and checks that the server answers.
    ///
    /// # Errors
    /// [`ConnectError`], naming host, port and database but never the password.
    pub async fn connect(url: &Secret, settings: &PgSettings) -> Result<Self, ConnectError> {
        let mut options =
            PgConnectOptions::from_str(url.expose()).map_err(|e| ConnectError::Url(redact(&e.to_string(), url)))?;
        let timeout_ms = settings.statement_timeout.as_millis().to_string();
        options = options.application_name("cloacina").options([("statement_timeout", timeout_ms.as_str())]);
        let Split { total: max_connections, pool: pooled, reads, lanes } = split(settings.max_connections);
        let pool = PgPoolOptions::new()
            .max_connections(pooled)
            .min_connections(0)
            .acquire_timeout(settings.connect_timeout)
            .max_lifetime(Some(settings.max_lifetime))
            .idle_timeout(Some(Duration::from_secs(60)))
            // sqlx pings every connection it hands out unless told otherwise: a round trip per
            // request. Ping only a connection that sat idle (after an outage every pooled
            // connection has; under load none has), so stale ones are still weeded out.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for > IDLE_BEFORE_PING {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
            .connect_with(options.clone())
            .await
            .map_err(|e| ConnectError::Connect { target: target(&options), cause: redact(&e.to_string(), url) })?;
        Ok(Self {
            pool,
            target: target(&options).into(),
            places: Arc::new(Cache::new(10_000)),
            work: Arc::new(tokio::sync::Notify::new()),
            triggers: Arc::new(tokio::sync::Notify::new()),
            bell: BellSlot::default(),
            reads: Reads::new(options.clone(), reads, settings.connect_timeout, settings.max_lifetime),
            lanes: Lanes::new(options, lanes, settings.connect_timeout, crate::triggers::pass::session_statements()),
            versions: Arc::new(Cache::new(4096)),
            max_connections,
        })
    }

    /// The pool, for the adapter's own tests and tools.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.reads.close();
        self.lanes.close_idle();
        self.pool.close().await;
    }

    /// How many connections the server holds now, the pool's, the reads' and the lanes':
    /// (all, idle).
    pub fn connections(&self) -> (u32, u32) {
        let (reads, reads_idle) = self.reads.connections();
        let (lanes, lanes_idle) = self.lanes.connections();
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        (self.pool.size() + count(reads + lanes), count(self.pool.num_idle() + reads_idle + lanes_idle))
    }

    /// How many trigger passes can run at once: one a lane.
    pub fn trigger_lanes(&self) -> usize {
        self.lanes.count()
    }

    /// The most connections the server opens (`--db-max-connections`).
    pub fn max_connections(&self) -> u32 {
        self.max_connections
    }

    pub(crate) fn cached_place(&self, tenant: &TenantName) -> Option<TenantPlace> {
        self.places.get(tenant).filter(|p| p.loaded.elapsed() < PLACE_TTL)
    }

    pub(crate) fn remember_place(&self, tenant: TenantName, schema: String, role: String) -> TenantPlace {
        let place = TenantPlace { schema, role, loaded: Instant::now() };
        self.places.insert(tenant, place.clone());
        place
    }

    /// The attributes of the role the server logs in as.
    ///
    /// # Errors
    /// The store error if the database cannot be read.
    pub async fn login_role(&self) -> Result<LoginRole, StoreError> {
        let (superuser, bypass_rls, inherit, create_role) = sqlx::query_as(
            "SELECT rolsuper, rolbypassrls, rolinherit, rolcreaterole FROM pg_roles WHERE rolname = current_user",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(translate)?;
        Ok(LoginRole { superuser, bypass_rls, inherit, create_role })
    }

    /// Forgets what is cached about tenants (another replica created or deleted one).
    pub fn forget_tenants(&self) {
        self.places.clear();
        self.reads.forget_bindings();
    }

    /// Forgets where one tenant lives (it was deleted, or its role is gone).
    pub(crate) fn forget_place(&self, tenant: &TenantName) {
        self.places.remove(tenant);
        self.reads.forget_bindings();
    }
}

/// How `--db-max-connections` is shared out.
#[derive(Debug, PartialEq, Eq)]
struct Split {
    total: u32,
    pool: u32,
    reads: usize,
    lanes: usize,
}

/// Splits `--db-max-connections` (at least 4) into the shared pool, the tenant reads and the
/// trigger lanes: a quarter each for the reads and the lanes, at least one each; the rest,
/// at least half and at least two (a migration holds its lock on one and works on another),
/// is the pool's.
fn split(max_connections: u32) -> Split {
    let total = max_connections.max(4);
    let share = (total / 4).max(1);
    Split { total, pool: total - 2 * share, reads: share as usize, lanes: share as usize }
}

/// Removes the URL's password from a message, should a driver ever echo it.
fn redact(message: &str, url: &Secret) -> String {
    match PgConnectOptions::from_str(url.expose()).ok().and_then(|_| password_of(url.expose())) {
        Some(pw) if !pw.is_empty() => message.replace(&pw, "[redacted]"),
        _ => message.to_owned(),
    }
}

fn password_of(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let userinfo = rest.split('@').next().filter(|_| rest.contains('@'))?;
    userinfo.split_once(':').map(|(_, pw)| pw.to_owned())
}

/// Database errors by SQLSTATE, never by message text.
pub(crate) fn translate(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            let text = format!("SQLSTATE {code}: {}", db.message());
            let kind = match code.as_str() {
                "23505" => Some(ConstraintKind::Unique),
                "23503" => Some(ConstraintKind::ForeignKey),
                "23514" => Some(ConstraintKind::Check),
                "23502" => Some(ConstraintKind::NotNull),
                c if c.starts_with("23") => Some(ConstraintKind::Other),
                _ => None,
            };
            if let Some(kind) = kind {
                tracing::debug!(cause = %text, "constraint violation");
                return StoreError::Constraint(Constraint { kind, name: db.constraint().map(str::to_owned) });
            }
            match code.as_str() {
                c if c.starts_with("08") || c.starts_with("57P") || c == "53300" => StoreError::Unavailable(text),
                "57014" => StoreError::Unavailable(format!("statement timeout or cancel: {text}")),
                _ => StoreError::Unexpected(text),
            }
        }
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => StoreError::Unavailable(e.to_string()),
        _ => StoreError::Unexpected(e.to_string()),
    }
}

/// The SQLSTATE of a database error, if it is one.
pub(crate) fn sqlstate(e: &sqlx::Error) -> Option<String> {
    match e {
        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
        _ => None,
    }
}

/// A quoted SQL identifier. Our identifiers are generated from validated names, so they
/// never hold a quote; doubling any that did keeps this correct regardless.
pub(crate) fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_is_removed_from_messages() {
        let url = Secret::new("postgres://u:hunter2secret@db.example.com/x");
        assert_eq!(redact("failed for hunter2secret", &url), "failed for [redacted]");
    }

    #[test]
    fn a_quarter_of_the_connections_serve_tenant_reads_and_a_quarter_trigger_passes() {
        let s = |total, pool, reads, lanes| Split { total, pool, reads, lanes };
        assert_eq!(split(16), s(16, 8, 4, 4));
        assert_eq!(split(8), s(8, 4, 2, 2));
        assert_eq!(split(5), s(5, 3, 1, 1));
        assert_eq!(split(4), s(4, 2, 1, 1));
        assert_eq!(split(1), s(4, 2, 1, 1));
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(ident("tenant_acme-x"), "\"tenant_acme-x\"");
        assert_eq!(ident("a\"b"), "\"a\"\"b\"");
    }
}
