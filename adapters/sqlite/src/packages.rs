//! Uploaded packages on SQLite (the single tenant, `public`).

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cloacina_domain::audit::AuditEntry;
use cloacina_domain::package::{
    NewPackage, PackageDeleted, PackageName, PackageRecord, PackageStored, StoredArchive, StoredManifest, UploadPlan,
    workflows_in_force, workflows_of_newest,
};
use cloacina_domain::ports::{Lookup, PackageStore, StoreError};
use cloacina_domain::{ApiKeyId, TenantName, workflow::WorkflowRow};
use rusqlite::types::Type;
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};

use crate::SqliteDb;
use crate::audit::append;
use crate::db::translate;
use crate::keys::ts;

const COLUMNS: &str = "id, name, version, description, content_hash, size_bytes, workflows, uploaded_at, uploaded_by";

fn conv<E: std::error::Error + Send + Sync + 'static>(col: usize, e: E) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(col, Type::Text, Box::new(e))
}

fn record(row: &Row<'_>) -> rusqlite::Result<PackageRecord> {
    let text = |col: usize| row.get::<_, String>(col);
    let uploaded: String = text(7)?;
    Ok(PackageRecord {
        id: text(0)?.parse().map_err(|e| conv(0, e))?,
        name: PackageName::parse(&text(1)?).map_err(|e| conv(1, e))?,
        version: semver::Version::parse(&text(2)?).map_err(|e| conv(2, e))?,
        description: row.get(3)?,
        content_hash: text(4)?,
        size_bytes: row.get::<_, i64>(5)?.unsigned_abs(),
        workflows: serde_json::from_str(&text(6)?).map_err(|e| conv(6, e))?,
        uploaded_at: DateTime::parse_from_rfc3339(&uploaded).map(|t| t.with_timezone(&Utc)).map_err(|e| conv(7, e))?,
        uploaded_by: row
            .get::<_, Option<String>>(8)?
            .map(|s| s.parse::<ApiKeyId>().map_err(|e| conv(8, e)))
            .transpose()?,
    })
}

/// The stored versions of package `name`, as text.
fn versions(conn: &Connection, name: &str) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare_cached("SELECT version FROM packages WHERE name = ?1")?;
    stmt.query_map([name], |r| r.get::<_, String>(0))?.collect()
}

/// The package that owns each of `workflows`' names now, by workflow name.
fn owners(conn: &Connection, workflows: &[WorkflowRow]) -> rusqlite::Result<HashMap<String, String>> {
    let names = serde_json::to_string(&workflows.iter().map(|w| &w.name).collect::<Vec<_>>()).unwrap_or_default();
    let mut stmt = conn
        .prepare_cached("SELECT name, package_name FROM workflows WHERE name IN (SELECT value FROM json_each(?1))")?;
    stmt.query_map([names], |r| Ok((r.get(0)?, r.get(1)?)))?.collect()
}

/// Makes `workflows` the ones in force for `package`: upserted, paused flags kept, and the
/// package's other workflows removed.
fn put_in_force(conn: &Connection, package: &str, workflows: &[&WorkflowRow]) -> rusqlite::Result<()> {
    let mut kept = Vec::new();
    for w in workflows {
        conn.execute(
            "INSERT INTO workflows (name, package_name, version, description, tasks, paused, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6)
             ON CONFLICT (name) DO UPDATE SET version = excluded.version, description = excluded.description,
                 tasks = excluded.tasks, updated_at = excluded.updated_at",
            params![
                w.name,
                w.package_name,
                w.version,
                w.description,
                serde_json::to_string(&w.tasks).unwrap_or_else(|_| "[]".into()),
                ts(w.updated_at)
            ],
        )?;
        kept.push(w.name.clone());
    }
    let keep = serde_json::to_string(&kept).unwrap_or_else(|_| "[]".into());
    conn.execute(
        "DELETE FROM workflows WHERE package_name = ?1 AND name NOT IN (SELECT value FROM json_each(?2))",
        params![package, keep],
    )?;
    Ok(())
}

fn delete(
    conn: &mut Connection,
    name: &str,
    version: &str,
    at: DateTime<Utc>,
    audit: &AuditEntry,
) -> Result<Lookup<PackageDeleted>, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(translate)?;
    let Some(rec) = tx
        .query_row(
            &format!("SELECT {COLUMNS} FROM packages WHERE name = ?1 AND version = ?2"),
            params![name, version],
            record,
        )
        .optional()
        .map_err(translate)?
    else {
        return Ok(Lookup::Missing);
    };
    let unfinished: i64 = tx
        .query_row(
            "SELECT count(*) FROM executions WHERE package_id = ?1 AND status IN ('pending', 'running')",
            [rec.id.to_string()],
            |r| r.get(0),
        )
        .map_err(translate)?;
    if let Err(refused) = rec.check_delete(unfinished.unsigned_abs()) {
        return Ok(Lookup::Found(PackageDeleted::Refused(refused)));
    }
    tx.execute("DELETE FROM packages WHERE id = ?1", [rec.id.to_string()]).map_err(translate)?;
    let in_force: Option<String> = tx
        .query_row("SELECT version FROM workflows WHERE package_name = ?1 LIMIT 1", [name], |r| r.get(0))
        .optional()
        .map_err(translate)?;
    if rec.was_in_force(in_force.as_deref()) {
        let mut stmt =
            tx.prepare_cached("SELECT version, manifest FROM packages WHERE name = ?1").map_err(translate)?;
        let rest = stmt
            .query_map([name], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .and_then(Iterator::collect::<Result<Vec<_>, _>>)
            .map_err(translate)?;
        drop(stmt);
        let workflows = workflows_of_newest(rest, at)
            .map_err(|e| StoreError::Unexpected(format!("stored manifest of {name} no longer parses: {e}")))?;
        let owners = owners(&tx, &workflows).map_err(translate)?;
        let kept = workflows_in_force(name, &workflows, &owners, false).unwrap_or_default();
        put_in_force(&tx, name, &kept).map_err(translate)?;
        // Not strict: a trigger name another package holds stays its owner's.
        let _ = crate::triggers::put_in_force(&tx, name, &kept, at, false)?;
    }
    append(&tx, audit).map_err(translate)?;
    tx.commit().map_err(translate)?;
    Ok(Lookup::Found(PackageDeleted::Deleted(rec)))
}

/// The size of the chunks archives are stored in.
const CHUNK: usize = 1 << 20;

/// Copies the archive file into `package_chunks`, one chunk in memory at a time.
fn store_chunks(tx: &Connection, id: &str, path: &std::path::Path) -> Result<(), StoreError> {
    use std::io::Read as _;
    let mut file =
        std::fs::File::open(path).map_err(|e| StoreError::Unexpected(format!("cannot read the upload: {e}")))?;
    let mut insert = tx
        .prepare_cached("INSERT INTO package_chunks (package_id, seq, bytes) VALUES (?1, ?2, ?3)")
        .map_err(translate)?;
    let mut buf = vec![0u8; CHUNK];
    for seq in 0i64.. {
        let mut filled = 0;
        while filled < CHUNK {
            match file.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) => return Err(StoreError::Unexpected(format!("cannot read the upload: {e}"))),
            }
        }
        if filled == 0 {
            break;
        }
        insert.execute(params![id, seq, &buf[..filled]]).map_err(translate)?;
        if filled < CHUNK {
            break;
        }
    }
    Ok(())
}

fn store(conn: &mut Connection, new: &NewPackage, audit: &AuditEntry) -> Result<PackageStored, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(translate)?;
    let verified = match crate::signing::check_upload(&tx, new).map_err(translate)? {
        Ok(verified) => verified,
        Err(refused) => return Ok(PackageStored::Unsigned(refused)),
    };
    let same_bytes = tx
        .query_row(&format!("SELECT {COLUMNS} FROM packages WHERE content_hash = ?1"), [&new.content_hash], record)
        .optional()
        .map_err(translate)?;
    let rec = new.record();
    let stored_versions = versions(&tx, rec.name.as_str()).map_err(translate)?;
    let in_force = match new.plan_upload(same_bytes, &stored_versions) {
        Ok(UploadPlan::Existing(found)) => return Ok(PackageStored::Existing(found)),
        Ok(UploadPlan::Store { in_force }) => in_force,
        Err(refused) => return Ok(PackageStored::Refused(refused)),
    };
    let rows = new.workflow_rows();
    let kept = if in_force {
        let owners = owners(&tx, &rows).map_err(translate)?;
        match workflows_in_force(rec.name.as_str(), &rows, &owners, true) {
            Ok(kept) => Some(kept),
            Err(refused) => return Ok(PackageStored::Refused(refused)),
        }
    } else {
        None
    };
    tx.execute(
        "INSERT INTO packages (id, name, version, description, content_hash, size_bytes, manifest, workflows, archive,
                               uploaded_at, uploaded_by)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
            rec.id.to_string(),
            rec.name.as_str(),
            rec.version.to_string(),
            rec.description,
            rec.content_hash,
            i64::try_from(rec.size_bytes).unwrap_or(i64::MAX),
            new.manifest_text,
            serde_json::to_string(&rec.workflows).unwrap_or_else(|_| "[]".into()),
            Vec::<u8>::new(),
            ts(rec.uploaded_at),
            rec.uploaded_by.map(|k| k.to_string()),
        ],
    )
    .map_err(translate)?;
    store_chunks(&tx, &rec.id.to_string(), &new.archive)?;
    if let Some(v) = &verified {
        crate::signing::record_signature(&tx, &rec.id.to_string(), v, rec.uploaded_at).map_err(translate)?;
    }
    if let Some(kept) = kept {
        put_in_force(&tx, rec.name.as_str(), &kept).map_err(translate)?;
        if let Err(refused) = crate::triggers::put_in_force(&tx, rec.name.as_str(), &kept, rec.uploaded_at, true)? {
            return Ok(PackageStored::Refused(refused));
        }
    }
    append(&tx, audit).map_err(translate)?;
    tx.commit().map_err(translate)?;
    Ok(PackageStored::Created(rec))
}

#[async_trait]
impl PackageStore for SqliteDb {
    async fn store_package(
        &self,
        tenant: &TenantName,
        new: &NewPackage,
        audit: &AuditEntry,
    ) -> Result<Option<PackageStored>, StoreError> {
        if !tenant.is_public() {
            return Ok(None);
        }
        let (new, audit) = (new.clone(), audit.clone());
        let stored = self.write_store(move |conn| store(conn, &new, &audit)).await?;
        self.inner.triggers.notify_one();
        Ok(Some(stored))
    }

    async fn list_packages(&self, tenant: &TenantName) -> Result<Option<Vec<PackageRecord>>, StoreError> {
        if !tenant.is_public() {
            return Ok(None);
        }
        let mut rows = self
            .read(|conn| {
                let mut stmt = conn.prepare_cached(&format!("SELECT {COLUMNS} FROM packages"))?;
                stmt.query_map([], record)?.collect::<Result<Vec<_>, _>>()
            })
            .await?;
        rows.sort_by(|a, b| a.name.cmp(&b.name).then(b.version.cmp(&a.version)));
        Ok(Some(rows))
    }

    async fn delete_package(
        &self,
        tenant: &TenantName,
        name: &str,
        version: &str,
        at: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<Lookup<PackageDeleted>, StoreError> {
        if !tenant.is_public() {
            return Ok(Lookup::NoTenant);
        }
        let (name, version, audit) = (name.to_owned(), version.to_owned(), audit.clone());
        let deleted = self.write_store(move |conn| delete(conn, &name, &version, at, &audit)).await?;
        self.inner.triggers.notify_one();
        Ok(deleted)
    }

    async fn package_manifest(
        &self,
        tenant: &TenantName,
        name: &str,
        version: &str,
    ) -> Result<Lookup<StoredManifest>, StoreError> {
        if !tenant.is_public() {
            return Ok(Lookup::NoTenant);
        }
        let (name, version) = (name.to_owned(), version.to_owned());
        let found: Option<(String, String)> = self
            .read(move |conn| {
                conn.prepare_cached("SELECT id, manifest FROM packages WHERE name = ?1 AND version = ?2")?
                    .query_row(params![name, version], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
            })
            .await?;
        found
            .map(|(id, manifest)| {
                id.parse()
                    .map(|id| StoredManifest { id, manifest })
                    .map_err(|e: uuid::Error| StoreError::Unexpected(e.to_string()))
            })
            .transpose()
            .map(Lookup::from_option)
    }

    async fn package_archive(&self, tenant: &TenantName, id: uuid::Uuid) -> Result<Lookup<StoredArchive>, StoreError> {
        if !tenant.is_public() {
            return Ok(Lookup::NoTenant);
        }
        self.read(move |conn| {
            let Some(mut found) = conn
                .prepare_cached("SELECT content_hash, archive FROM packages WHERE id = ?1")?
                .query_row([id.to_string()], |r| Ok(StoredArchive { content_hash: r.get(0)?, bytes: r.get(1)? }))
                .optional()?
            else {
                return Ok(None);
            };
            // Versions uploaded since chunks exist keep their bytes there.
            let mut stmt =
                conn.prepare_cached("SELECT bytes FROM package_chunks WHERE package_id = ?1 ORDER BY seq")?;
            let mut rows = stmt.query([id.to_string()])?;
            while let Some(row) = rows.next()? {
                found.bytes.extend_from_slice(row.get_ref(0)?.as_blob()?);
            }
            Ok(Some(found))
        })
        .await
        .map(Lookup::from_option)
    }
}
