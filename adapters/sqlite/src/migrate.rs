//! Embedded migrations (`migrations/sqlite/`), applied in order, each in its own transaction.

use cloacina_domain::ports::StoreError;
use rusqlite::{Connection, OptionalExtension};

use crate::SqliteDb;

/// Every migration: (version, name, SQL). Append only.
pub const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "api_keys", include_str!("../../../migrations/sqlite/0001_api_keys.sql")),
    (2, "workflows", include_str!("../../../migrations/sqlite/0002_workflows.sql")),
    (3, "packages", include_str!("../../../migrations/sqlite/0003_packages.sql")),
    (4, "executions", include_str!("../../../migrations/sqlite/0004_executions.sql")),
    (5, "package_chunks", include_str!("../../../migrations/sqlite/0005_package_chunks.sql")),
    (6, "tenant_settings", include_str!("../../../migrations/sqlite/0006_tenant_settings.sql")),
    (7, "triggers", include_str!("../../../migrations/sqlite/0007_triggers.sql")),
];

/// The version this binary expects.
pub fn latest() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.0)
}

const LEDGER: &str = "CREATE TABLE IF NOT EXISTS _cloacina_migrations (
    version INTEGER PRIMARY KEY NOT NULL, name TEXT NOT NULL, applied_at TEXT NOT NULL)";

pub(crate) fn current_version(conn: &Connection) -> Result<i64, rusqlite::Error> {
    let exists: Option<i64> = conn
        .query_row("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_cloacina_migrations'", [], |r| {
            r.get(0)
        })
        .optional()?;
    if exists.is_none() {
        return Ok(0);
    }
    conn.query_row("SELECT coalesce(max(version), 0) FROM _cloacina_migrations", [], |r| r.get(0))
}

impl SqliteDb {
    /// Applies every pending migration; returns how many ran. A failing migration rolls back
    /// whole and stops the run.
    ///
    /// # Errors
    /// The store error of the failing step.
    pub async fn migrate(&self) -> Result<usize, StoreError> {
        self.write(|conn| {
            conn.execute_batch(LEDGER)?;
            let mut applied = 0;
            for (version, name, sql) in MIGRATIONS {
                // The version is read again inside the write lock: another process sharing the
                // file may have applied this step since we looked.
                let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                if current_version(&tx)? >= *version {
                    continue;
                }
                tx.execute_batch(sql)?;
                tx.execute(
                    "INSERT INTO _cloacina_migrations (version, name, applied_at) VALUES (?1, ?2, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
                    rusqlite::params![version, name],
                )?;
                tx.commit()?;
                tracing::info!(version, name, "applied SQLite migration");
                applied += 1;
            }
            Ok(applied)
        })
        .await
    }

    /// How many migrations this binary has that the database lacks.
    ///
    /// # Errors
    /// The store error if the database cannot be read.
    pub async fn pending_migrations(&self) -> Result<usize, StoreError> {
        let current = self.read(current_version).await?;
        Ok(MIGRATIONS.iter().filter(|m| m.0 > current).count())
    }
}
