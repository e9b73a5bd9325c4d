//! The audit contract's cases that need SQLite's own access: an audit insert made to fail, and
//! rows changed behind the server's back (the append-only triggers dropped first, as someone
//! with the file could).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cloacina_domain::ports::StoreError;
use rusqlite::Connection;

use crate::{SqliteDb, SqliteLocation};

async fn on_file() -> (cloacina_contract::Store, PathBuf) {
    let path = tempfile::tempdir().unwrap().keep().join("cloacina.db");
    let db = SqliteDb::open(&SqliteLocation::File(path.clone())).unwrap();
    db.migrate().await.unwrap();
    (Arc::new(db), path)
}

/// Runs `sql` on the file through a connection of its own.
fn behind_the_back(path: &Path, sql: &str) -> rusqlite::Result<()> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.execute_batch(sql)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_whose_audit_row_cannot_be_written_is_rolled_back() {
    let (store, path) = on_file().await;
    let sabotage = async move {
        behind_the_back(
            &path,
            "CREATE TRIGGER sabotage BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'sabotage'); END;",
        )
        .unwrap();
    };
    cloacina_contract::audit::changes_fail_closed(store, sabotage).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_or_deleted_row_is_found_at_its_place() {
    let (store, path) = on_file().await;
    let unguard = "DROP TRIGGER IF EXISTS audit_log_no_update; DROP TRIGGER IF EXISTS audit_log_no_delete;";
    let (a, b) = (path.clone(), path);
    cloacina_contract::audit::tampering_is_found(
        store,
        move |seq| async move {
            behind_the_back(
                &a,
                &format!("{unguard} UPDATE audit_log SET target = 'forged' WHERE chain = 'public' AND seq = {seq};"),
            )
            .unwrap();
        },
        move |seq| async move {
            behind_the_back(&b, &format!("{unguard} DELETE FROM audit_log WHERE chain = 'public' AND seq = {seq};"))
                .unwrap();
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordinary_statements_cannot_change_or_remove_audit_rows() {
    let (store, path) = on_file().await;
    let attempt = move || async move {
        let refused = |r: rusqlite::Result<()>| r.map_err(|e| StoreError::Unexpected(e.to_string()));
        (
            refused(behind_the_back(&path, "UPDATE audit_log SET target = 'x';")),
            refused(behind_the_back(&path, "DELETE FROM audit_log;")),
        )
    };
    cloacina_contract::audit::rows_are_append_only(store, attempt).await;
}
