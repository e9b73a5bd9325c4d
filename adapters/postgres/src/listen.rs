//! Cache invalidation and worker wake-ups across replicas: PostgreSQL `LISTEN`/`NOTIFY`.
//!
//! Changes that caches must see (a revoked key, a deleted tenant) send a
//! notification in the same transaction as the change, so it is delivered exactly when the
//! change commits. Every server listens on one dedicated connection, started before the
//! server takes requests. When that connection drops, the server is told to forget
//! everything (notifications may have been missed) and listens again; once listening again
//! it is told once more, as something may have changed while it was reconnecting. The
//! caches' TTL is the backstop for a connection that hangs without dropping.

use std::sync::Arc;
use std::time::Duration;

use cloacina_domain::ports::{Invalidation, StoreError};
use cloacina_domain::{ApiKeyId, TenantName};
use sqlx::PgConnection;
use sqlx::postgres::{PgListener, PgPoolOptions};
use tokio::sync::watch;

use crate::PgDb;
use crate::executions::WORK_CHANNEL;
use crate::triggers::TRIGGER_CHANNEL;

/// The notification channel.
pub const CHANNEL: &str = "cloacina_invalidate";

/// The channel that says a tenant has new events (or task output); its payload is the
/// tenant's name, never anything of the rows.
pub const EVENTS_CHANNEL: &str = "cloacina_events";

/// Tells every listening server, when the caller's transaction commits, that `tenant` has new
/// events. Repeats within one transaction are folded into one by PostgreSQL.
pub(crate) async fn ring(conn: &mut PgConnection, tenant: &TenantName) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(EVENTS_CHANNEL)
        .bind(tenant.as_str())
        .execute(conn)
        .await
        .map(drop)
        .map_err(crate::db::translate)
}

/// What a notification is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Topic {
    Key(ApiKeyId),
    Tenant(TenantName),
}

impl Topic {
    fn payload(&self) -> String {
        match self {
            Topic::Key(id) => format!("key:{id}"),
            Topic::Tenant(t) => format!("tenant:{t}"),
        }
    }
}

/// Sends a notification as part of the caller's transaction.
pub(crate) async fn notify(conn: &mut PgConnection, topic: &Topic) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_notify($1, $2)").bind(CHANNEL).bind(topic.payload()).execute(conn).await.map(drop)
}

/// Reads a payload; anything unrecognised means "forget everything", the safe answer.
fn parse(payload: &str) -> Invalidation {
    let parsed = match payload.split_once(':') {
        Some(("key", id)) => id.parse().ok().map(Invalidation::Key),
        Some(("tenant", t)) => TenantName::parse(t).ok().map(Invalidation::Tenant),
        _ => None,
    };
    parsed.unwrap_or(Invalidation::Everything)
}

/// A handler for invalidations.
pub type OnInvalidation = Arc<dyn Fn(Invalidation) + Send + Sync>;

impl PgDb {
    /// Starts listening; returns once the first `LISTEN` is in place (so nothing committed
    /// after this returns can be missed), with the task that keeps listening until `stop`.
    /// Tenant invalidations also clear this handle's own tenant cache.
    ///
    /// # Errors
    /// The connection error if the first `LISTEN` fails.
    pub async fn listen(
        &self,
        on: OnInvalidation,
        mut stop: watch::Receiver<bool>,
    ) -> Result<tokio::task::JoinHandle<()>, sqlx::Error> {
        let mut listener = self.listener().await?;
        let db = self.clone();
        Ok(tokio::spawn(async move {
            loop {
                tokio::select! {
                    received = listener.try_recv() => match received {
                        Ok(Some(n)) if n.channel() == WORK_CHANNEL => db.work.notify_one(),
                        Ok(Some(n)) if n.channel() == TRIGGER_CHANNEL => db.triggers.notify_one(),
                        Ok(Some(n)) if n.channel() == EVENTS_CHANNEL => {
                            if let Ok(tenant) = TenantName::parse(n.payload()) {
                                db.bell.ring(&tenant);
                            }
                        }
                        Ok(Some(n)) => db.deliver(&on, parse(n.payload())),
                        Ok(None) | Err(_) => {
                            tracing::warn!("lost the invalidation listener's connection; forgetting cached keys and listening again");
                            db.deliver(&on, Invalidation::Everything);
                            listener = match db.relisten(&mut stop).await {
                                Some(l) => l,
                                None => return,
                            };
                            db.deliver(&on, Invalidation::Everything);
                            // Wake-ups may have been missed too.
                            db.work.notify_one();
                            db.triggers.notify_one();
                            tracing::info!("invalidation listener is back");
                        }
                    },
                    _ = stop.changed() => return,
                }
            }
        }))
    }

    fn deliver(&self, on: &OnInvalidation, what: Invalidation) {
        if !matches!(what, Invalidation::Key(_)) {
            self.forget_tenants();
        }
        on(what);
    }

    async fn listener(&self) -> Result<PgListener, sqlx::Error> {
        // A connection of its own, outside the pool ("plus one for notifications" in
        // docs/postgres.md): held for the server's life, a pool slot would leave every
        // request one connection fewer, and a small pool none to spare.
        let own = PgPoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            .max_lifetime(None)
            .idle_timeout(None)
            .acquire_timeout(self.pool.options().get_acquire_timeout())
            .connect_with((*self.pool.connect_options()).clone().application_name("cloacina-listen"))
            .await?;
        let mut listener = PgListener::connect_with(&own).await?;
        // A dropped connection surfaces from try_recv (Ok(None)); we reconnect ourselves so
        // we know when listening resumed.
        listener.ignore_pool_close_event(false);
        listener.listen_all([CHANNEL, WORK_CHANNEL, TRIGGER_CHANNEL, EVENTS_CHANNEL]).await?;
        Ok(listener)
    }

    /// Listens again, retrying with backoff until it works or the server stops.
    async fn relisten(&self, stop: &mut watch::Receiver<bool>) -> Option<PgListener> {
        let mut wait = Duration::from_millis(100);
        loop {
            match self.listener().await {
                Ok(l) => return Some(l),
                Err(e) => tracing::debug!(error = %e, "invalidation listener not back yet"),
            }
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                _ = stop.changed() => return None,
            }
            wait = (wait * 2).min(Duration::from_secs(5));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_committed_ring_reaches_another_servers_bell_and_a_rolled_back_one_does_not() {
        let db = cloacina_testpg::TestPg::shared().database().await;
        let url = cloacina_domain::Secret::new(db.url);
        let a = PgDb::connect(&url, &crate::PgSettings::default()).await.unwrap();
        a.migrate().await.unwrap();
        let b = PgDb::connect(&url, &crate::PgSettings::default()).await.unwrap();
        let (rung, mut heard) = tokio::sync::mpsc::unbounded_channel();
        b.bell.hang(Arc::new(move |t: &TenantName| {
            let _ = rung.send(t.clone());
        }));
        let (_stop, stop) = watch::channel(false);
        let listening = b.listen(Arc::new(|_| {}), stop).await.unwrap();
        let acme = TenantName::parse("acme").unwrap();

        let mut tx = a.pool.begin().await.unwrap();
        ring(&mut tx, &TenantName::public()).await.unwrap();
        tx.rollback().await.unwrap();
        let mut tx = a.pool.begin().await.unwrap();
        ring(&mut tx, &acme).await.unwrap();
        ring(&mut tx, &acme).await.unwrap();
        tx.commit().await.unwrap();
        let got = tokio::time::timeout(Duration::from_secs(10), heard.recv()).await.unwrap().unwrap();
        assert_eq!(got, acme, "the rolled-back ring never arrives; the committed one does");
        assert!(
            tokio::time::timeout(Duration::from_millis(300), heard.recv()).await.is_err(),
            "two rings in one transaction arrive once"
        );
        listening.abort();
    }

    #[test]
    fn payloads_round_trip_and_unknown_ones_mean_everything() {
        let id: ApiKeyId = "6f9619ff-8b86-d011-b42d-00c04fc964ff".parse().unwrap();
        assert_eq!(parse(&Topic::Key(id).payload()), Invalidation::Key(id));
        let t = TenantName::parse("acme").unwrap();
        assert_eq!(parse(&Topic::Tenant(t.clone()).payload()), Invalidation::Tenant(t));
        assert_eq!(parse("key:nonsense"), Invalidation::Everything);
        assert_eq!(parse("what"), Invalidation::Everything);
    }
}
