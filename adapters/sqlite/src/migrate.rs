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
    (8, "key_names", include_str!("../../../migrations/sqlite/0008_key_names.sql")),
    (9, "task_log_pieces", include_str!("../../../migrations/sqlite/0009_task_log_pieces.sql")),
    (10, "ws_tickets", include_str!("../../../migrations/sqlite/0010_ws_tickets.sql")),
    (11, "tenant_rate_limits", include_str!("../../../migrations/sqlite/0011_tenant_rate_limits.sql")),
    (12, "audit_log", include_str!("../../../migrations/sqlite/0012_audit_log.sql")),
    (13, "signing", include_str!("../../../migrations/sqlite/0013_signing.sql")),
    (14, "secrets", include_str!("../../../migrations/sqlite/0014_secrets.sql")),
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

#[cfg(test)]
mod tests {
    use super::MIGRATIONS;

    /// Migration 8 on a database holding unrevoked duplicate names: the oldest keeps its name,
    /// the others get their id's first 8 characters, a revoked one is left as it was.
    #[test]
    fn key_names_made_unique_keep_the_oldest_its_name() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        for (version, _, sql) in MIGRATIONS.iter().filter(|m| m.0 < 8) {
            conn.execute_batch(sql).unwrap_or_else(|e| panic!("migration {version}: {e}"));
        }
        let insert = |id: &str, name: &str, tenant: Option<&str>, at: &str, revoked: bool| {
            let god = tenant.is_none();
            conn.execute(
                "INSERT INTO api_keys (id, name, tenant, role, is_admin, hash_kind, key_hash, created_at, revoked)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'sha256', 'h', ?6, ?7)",
                rusqlite::params![id, name, tenant, if god { "admin" } else { "read" }, god, at, revoked],
            )
            .unwrap();
        };
        insert("aaaaaaaa-0000", "ci", Some("public"), "2026-01-01T00:00:00Z", false);
        insert("bbbbbbbb-0000", "ci", Some("public"), "2026-01-02T00:00:00Z", false);
        insert("cccccccc-0000", "ci", Some("public"), "2026-01-03T00:00:00Z", true);
        insert("dddddddd-0000", "ci", None, "2026-01-04T00:00:00Z", false);
        conn.execute_batch(MIGRATIONS.iter().find(|m| m.0 == 8).unwrap().2).unwrap();
        let names: Vec<String> = conn
            .prepare("SELECT name FROM api_keys ORDER BY created_at")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(names, ["ci", "ci-bbbbbbbb", "ci", "ci"]);
    }
}
