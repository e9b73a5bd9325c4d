//! The leader lock (docs/engine.md, "One leader"): a session advisory lock held on a
//! connection of its own, outside the pool, so that no request ever runs on it and the lock
//! ends with the session. A leader that dies closes its socket and PostgreSQL frees the lock
//! at once; one whose host vanishes is cut off by the session's `idle_session_timeout`, which
//! the holder's once-a-second check never lets expire while it lives.

use std::time::Duration;

use async_trait::async_trait;
use cloacina_domain::ports::{LeaderLock, StoreError};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection};
use tokio::sync::Mutex;

use crate::PgDb;
use crate::db::translate;

const LEADER_LOCK: i64 = crate::locks::LEADER;
/// How long one connect or check may take before the holder counts the lock as lost.
const CHECK_TIMEOUT: Duration = Duration::from_secs(3);
/// The session ends (freeing the lock) after this long without a statement: a holder whose
/// process or host vanished without closing its socket.
const IDLE_SESSION: &str = "10s";

/// The leader lock of one server.
pub struct PgLeaderLock {
    options: PgConnectOptions,
    /// The lock's connection, and whether it holds the lock.
    conn: Mutex<Option<(PgConnection, bool)>>,
}

impl std::fmt::Debug for PgLeaderLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PgLeaderLock")
    }
}

impl PgLeaderLock {
    /// A lock that connects (with the pool's settings) when first asked.
    pub fn new(db: &PgDb) -> Self {
        let options = (*db.pool.connect_options())
            .clone()
            .application_name("cloacina-leader")
            .options([
                ("idle_session_timeout", IDLE_SESSION),
                ("tcp_keepalives_idle", "5"),
                ("tcp_keepalives_interval", "2"),
            ])
            .disable_statement_logging();
        Self { options, conn: Mutex::new(None) }
    }

    async fn step(&self, slot: &mut Option<(PgConnection, bool)>) -> Result<bool, StoreError> {
        if slot.is_none() {
            let conn = PgConnection::connect_with(&self.options).await.map_err(translate)?;
            *slot = Some((conn, false));
        }
        let Some((conn, held)) = slot.as_mut() else { return Ok(false) };
        if *held {
            sqlx::query("SELECT 1").execute(&mut *conn).await.map_err(translate)?;
        } else {
            *held = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                .bind(LEADER_LOCK)
                .fetch_one(&mut *conn)
                .await
                .map_err(translate)?;
        }
        Ok(*held)
    }
}

#[async_trait]
impl LeaderLock for PgLeaderLock {
    async fn hold(&self) -> Result<bool, StoreError> {
        let mut slot = self.conn.lock().await;
        let outcome = match tokio::time::timeout(CHECK_TIMEOUT, self.step(&mut slot)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(StoreError::Unavailable("the leader lock's check timed out".into())),
        };
        if outcome.is_err() {
            // Whatever the session still holds dies with it; the next call starts afresh.
            *slot = None;
        }
        outcome
    }

    async fn release(&self) {
        if let Some((mut conn, _)) = self.conn.lock().await.take() {
            // Unlocked first, so the lock is free when this returns: closing the session frees
            // it too, but only once its backend has gone, a moment later.
            let unlock = sqlx::query("SELECT pg_advisory_unlock_all()").execute(&mut conn);
            let _ = tokio::time::timeout(CHECK_TIMEOUT, unlock).await;
            let _ = tokio::time::timeout(CHECK_TIMEOUT, conn.close()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_server_holds_the_lock_and_another_takes_it_when_its_session_ends() {
        let db = crate::tests::fresh().await;
        let (first, second) = (PgLeaderLock::new(&db), PgLeaderLock::new(&db));
        assert!(first.hold().await.unwrap(), "a free lock is taken");
        assert!(!second.hold().await.unwrap(), "a held lock is not");
        // Leading blocks none of the backend's other locks (a shared key made god-key
        // revocation wait for as long as a server led).
        for other in [crate::locks::MIGRATE, crate::locks::BOOTSTRAP, crate::locks::TENANT_DDL] {
            let mut tx = db.pool().begin().await.unwrap();
            let free: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
                .bind(other)
                .fetch_one(&mut *tx)
                .await
                .unwrap();
            assert!(free, "lock {other:#x} is free while a server leads");
        }
        assert!(first.hold().await.unwrap(), "the holder keeps it");
        assert!(!second.hold().await.unwrap());

        // The holder's session is cut, as when its process dies.
        let killed: i64 = sqlx::query_scalar(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'cloacina-leader' \
             AND datname = current_database() AND pid IN (SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted)",
        )
        .fetch_one(db.pool())
        .await
        .unwrap();
        assert_eq!(killed, 1, "exactly one session holds the leader lock");
        // pg_terminate_backend signals the session; it ends a moment later.
        let cut = std::time::Instant::now();
        while !second.hold().await.unwrap() {
            assert!(cut.elapsed() < Duration::from_secs(5), "the lock is free once the holder's session is gone");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(first.hold().await.is_err(), "the old holder finds its session gone");
        assert!(!first.hold().await.unwrap(), "and, reconnected, does not get the lock back");

        second.release().await;
        assert!(first.hold().await.unwrap(), "a released lock is free at once");
    }
}
