//! The storage backend the server runs on: embedded SQLite or PostgreSQL, opened from a
//! database URL and handed to the services as port trait objects.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use cloacina_cli::args::DbArgs;
use cloacina_domain::ports::{
    AuditStore, CensusStore, DatabaseHealth, EventFeed, ExecutionStore, KeyStore, PackageStore, SecretStore,
    SigningStore, TaskQueue, TenantArchive, TenantDirectory, TenantStore, TicketStore, TriggerStore, WorkflowStore,
};
use cloacina_postgres::{PgDb, PgSettings};
use cloacina_sqlite::SqliteDb;

use cloacina_domain::secrets::MasterKey;
use cloacina_system::{OsKeyGenerator, SystemClock};

use crate::database::DatabaseUrl;

/// An open database.
#[derive(Debug, Clone)]
pub enum Backend {
    Sqlite(SqliteDb),
    Postgres(PgDb),
}

/// What a migration run did, for the log and `cloacinactl migrate`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Applied {
    pub control: usize,
    pub tenant: usize,
    pub tenants: usize,
}

impl Backend {
    /// Opens the database `url` names.
    ///
    /// # Errors
    /// What went wrong, naming the host or file but never a password.
    pub async fn open(url: &DatabaseUrl, db: &DbArgs) -> anyhow::Result<Self> {
        match url {
            DatabaseUrl::Sqlite(location) => {
                tracing::info!(database = ?location, "opening SQLite database");
                Ok(Backend::Sqlite(SqliteDb::open(location).map_err(|e| anyhow::anyhow!("{e}"))?))
            }
            DatabaseUrl::Postgres(secret) => {
                let settings = settings(db);
                let pg = PgDb::connect(secret, &settings).await?;
                tracing::info!(database = ?pg, max_connections = settings.max_connections, "connected to PostgreSQL");
                warn_if_privileged(&pg).await;
                Ok(Backend::Postgres(pg))
            }
        }
    }

    /// Applies every pending migration.
    ///
    /// # Errors
    /// The failing step's error; nothing of that step stays applied.
    pub async fn migrate(&self) -> anyhow::Result<Applied> {
        Ok(match self {
            Backend::Sqlite(db) => {
                Applied { control: db.migrate().await.context("applying SQLite migrations")?, tenant: 0, tenants: 1 }
            }
            Backend::Postgres(db) => {
                let r = db.migrate().await.context("applying PostgreSQL migrations")?;
                Applied { control: r.control, tenant: r.tenant, tenants: r.tenants }
            }
        })
    }

    /// What the database lacks, one line per schema that is behind; empty when current.
    ///
    /// # Errors
    /// The database's error.
    pub async fn pending(&self) -> anyhow::Result<Vec<String>> {
        Ok(match self {
            Backend::Sqlite(db) => match db.pending_migrations().await? {
                0 => Vec::new(),
                n => vec![format!("{n} SQLite migration(s)")],
            },
            Backend::Postgres(db) => {
                let p = db.pending_migrations().await?;
                let mut lines = Vec::new();
                if p.control > 0 {
                    lines.push(format!("{} control-schema migration(s)", p.control));
                }
                lines.extend(p.tenants.iter().map(|t| format!("tenant '{t}'")));
                lines
            }
        })
    }

    /// Rewraps every tenant's data key from `old` to `new` (`secrets rewrap`).
    ///
    /// # Errors
    /// The database's error, or a data key neither key opens.
    pub async fn rewrap(&self, old: &MasterKey, new: &MasterKey) -> anyhow::Result<cloacina_ports::Rewrapped> {
        let storage = self.storage();
        let tenants: Vec<_> = storage.list_tenants().await?.into_iter().map(|t| t.name).collect();
        let done = cloacina_ports::secrets::rewrap(storage.as_ref(), &tenants, old, new, &OsKeyGenerator, &SystemClock)
            .await?;
        Ok(done)
    }

    /// Every storage port of the open database, as one object the services take slices of.
    pub fn storage(&self) -> Arc<dyn Storage> {
        match self {
            Backend::Sqlite(db) => Arc::new(db.clone()),
            Backend::Postgres(db) => Arc::new(db.clone()),
        }
    }
}

/// Everything a storage backend provides.
pub trait Storage:
    AuditStore
    + KeyStore
    + TenantDirectory
    + TenantStore
    + WorkflowStore
    + PackageStore
    + SigningStore
    + SecretStore
    + CensusStore
    + TenantArchive
    + ExecutionStore
    + TaskQueue
    + TriggerStore
    + EventFeed
    + TicketStore
    + DatabaseHealth
    + 'static
{
}
impl<T> Storage for T where
    T: AuditStore
        + KeyStore
        + TenantDirectory
        + TenantStore
        + WorkflowStore
        + PackageStore
        + SigningStore
        + SecretStore
        + CensusStore
        + TenantArchive
        + ExecutionStore
        + TaskQueue
        + TriggerStore
        + EventFeed
        + TicketStore
        + DatabaseHealth
        + 'static
{
}

/// Pool settings from the flags.
pub fn settings(db: &DbArgs) -> PgSettings {
    PgSettings {
        max_connections: db.db_max_connections,
        statement_timeout: Duration::from_secs(db.db_statement_timeout),
        connect_timeout: Duration::from_secs(db.db_connect_timeout),
        max_lifetime: Duration::from_secs(db.db_max_lifetime),
    }
}

/// docs/postgres.md: the login role should have CREATEROLE and NOINHERIT, and neither SUPERUSER
/// nor BYPASSRLS.
async fn warn_if_privileged(pg: &PgDb) {
    match pg.login_role().await {
        Ok(role) => {
            if role.superuser {
                tracing::warn!(
                    "the database login role is a superuser: tenant isolation then rests on this server alone; \
                     log in as a role with CREATEROLE and NOINHERIT (docs/postgres.md)"
                );
            }
            if role.bypass_rls {
                tracing::warn!("the database login role has BYPASSRLS; it needs neither that nor SUPERUSER");
            }
            if role.inherit && !role.superuser {
                tracing::warn!(
                    "the database login role INHERITs: it holds every tenant role's rights standing; \
                     ALTER ROLE … NOINHERIT (docs/postgres.md)"
                );
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not read the login role's attributes"),
    }
}
