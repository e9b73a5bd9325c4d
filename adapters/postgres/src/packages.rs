//! Uploaded packages on PostgreSQL: in the tenant's schema, as the tenant's role.

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
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::{AssertSqlSafe, PgConnection, Row};
use uuid::Uuid;

use crate::PgDb;
use crate::db::translate;

/// The columns a [`PackageRecord`] is read from, in order.
macro_rules! columns {
    () => {
        "id, name, version, description, content_hash, size_bytes, workflows, uploaded_at, uploaded_by"
    };
}
const COLUMNS: &str = columns!();

fn decode<E: std::error::Error + Send + Sync + 'static>(e: E) -> sqlx::Error {
    sqlx::Error::Decode(Box::new(e))
}

fn record(row: &PgRow) -> Result<PackageRecord, sqlx::Error> {
    let name: String = row.try_get(1)?;
    let version: String = row.try_get(2)?;
    let workflows: Json<Vec<String>> = row.try_get(6)?;
    Ok(PackageRecord {
        id: row.try_get(0)?,
        name: PackageName::parse(&name).map_err(decode)?,
        version: semver::Version::parse(&version).map_err(decode)?,
        description: row.try_get(3)?,
        content_hash: row.try_get(4)?,
        size_bytes: row.try_get::<i64, _>(5)?.unsigned_abs(),
        workflows: workflows.0,
        uploaded_at: row.try_get(7)?,
        uploaded_by: row.try_get::<Option<Uuid>, _>(8)?.map(ApiKeyId::from_uuid),
    })
}

/// The package that owns each of `workflows`' names now, by workflow name.
async fn owners(tx: &mut PgConnection, workflows: &[WorkflowRow]) -> Result<HashMap<String, String>, StoreError> {
    let names: Vec<&str> = workflows.iter().map(|w| w.name.as_str()).collect();
    let rows: Vec<(String, String)> = sqlx::query_as("SELECT name, package_name FROM workflows WHERE name = ANY($1)")
        .bind(&names)
        .fetch_all(&mut *tx)
        .await
        .map_err(translate)?;
    Ok(rows.into_iter().collect())
}

/// Makes `workflows` the ones in force for `package`: upserted, paused flags kept, the
/// package's other workflows removed.
async fn put_in_force(tx: &mut PgConnection, package: &str, workflows: &[&WorkflowRow]) -> Result<(), StoreError> {
    let mut kept = Vec::new();
    for w in workflows {
        sqlx::query(
            "INSERT INTO workflows (name, package_name, version, description, tasks, paused, updated_at)
             VALUES ($1, $2, $3, $4, $5, false, $6)
             ON CONFLICT (name) DO UPDATE SET version = excluded.version, description = excluded.description,
                 tasks = excluded.tasks, updated_at = excluded.updated_at",
        )
        .bind(&w.name)
        .bind(&w.package_name)
        .bind(&w.version)
        .bind(&w.description)
        .bind(Json(&w.tasks))
        .bind(w.updated_at)
        .execute(&mut *tx)
        .await
        .map_err(translate)?;
        kept.push(w.name.clone());
    }
    sqlx::query("DELETE FROM workflows WHERE package_name = $1 AND NOT (name = ANY($2))")
        .bind(package)
        .bind(&kept)
        .execute(&mut *tx)
        .await
        .map_err(translate)?;
    Ok(())
}

/// Deletes one version under its package's lock. The row goes first (so that an execution
/// being created for it waits on it, then finds it gone), then the domain decides on what
/// is in use: a refusal returns before the caller commits, and the rollback undoes it.
async fn delete(
    tx: &mut PgConnection,
    name: &str,
    version: &str,
    at: DateTime<Utc>,
) -> Result<(Lookup<PackageDeleted>, Option<DateTime<Utc>>), StoreError> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('cloacina-package:' || $1))")
        .bind(name)
        .execute(&mut *tx)
        .await
        .map_err(translate)?;
    let row = sqlx::query(AssertSqlSafe(format!(
        "DELETE FROM packages WHERE name = $1 AND version = $2 RETURNING {COLUMNS}"
    )))
    .bind(name)
    .bind(version)
    .fetch_optional(&mut *tx)
    .await
    .map_err(translate)?;
    let Some(row) = row else { return Ok((Lookup::Missing, None)) };
    let rec = record(&row).map_err(translate)?;
    let unfinished: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM executions WHERE package_id = $1 AND status IN ('pending', 'running')",
    )
    .bind(rec.id)
    .fetch_one(&mut *tx)
    .await
    .map_err(translate)?;
    if let Err(refused) = rec.check_delete(unfinished.unsigned_abs()) {
        return Ok((Lookup::Found(PackageDeleted::Refused(refused)), None));
    }
    let in_force: Option<String> = sqlx::query_scalar("SELECT version FROM workflows WHERE package_name = $1 LIMIT 1")
        .bind(name)
        .fetch_optional(&mut *tx)
        .await
        .map_err(translate)?;
    let mut due = None;
    if rec.was_in_force(in_force.as_deref()) {
        let rest: Vec<(String, String)> = sqlx::query_as("SELECT version, manifest FROM packages WHERE name = $1")
            .bind(name)
            .fetch_all(&mut *tx)
            .await
            .map_err(translate)?;
        let workflows = workflows_of_newest(rest, at)
            .map_err(|e| StoreError::Unexpected(format!("stored manifest of {name} no longer parses: {e}")))?;
        let owners = owners(tx, &workflows).await?;
        let kept = workflows_in_force(name, &workflows, &owners, false).unwrap_or_default();
        put_in_force(tx, name, &kept).await?;
        // Not strict: a trigger name another package holds stays its owner's.
        due = crate::triggers::put_in_force(tx, name, &kept, at, false).await?.unwrap_or_default();
    }
    Ok((Lookup::Found(PackageDeleted::Deleted(rec)), due))
}

/// The size of the chunks archives are stored in.
const CHUNK: usize = 1 << 20;

/// Copies the archive file into `package_chunks`, one chunk in memory at a time.
async fn store_chunks(tx: &mut PgConnection, id: Uuid, path: &std::path::Path) -> Result<(), StoreError> {
    use tokio::io::AsyncReadExt as _;
    let unreadable = |e: std::io::Error| StoreError::Unexpected(format!("cannot read the upload: {e}"));
    let mut file = tokio::fs::File::open(path).await.map_err(unreadable)?;
    let mut buf = vec![0u8; CHUNK];
    for seq in 0i32.. {
        let mut filled = 0;
        while filled < CHUNK {
            match file.read(&mut buf[filled..]).await.map_err(unreadable)? {
                0 => break,
                n => filled += n,
            }
        }
        if filled == 0 {
            break;
        }
        sqlx::query("INSERT INTO package_chunks (package_id, seq, bytes) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(seq)
            .bind(&buf[..filled])
            .execute(&mut *tx)
            .await
            .map_err(translate)?;
        if filled < CHUNK {
            break;
        }
    }
    Ok(())
}

/// Stores an upload; with it, the earliest due time of the triggers it put in force.
async fn store(tx: &mut PgConnection, new: &NewPackage) -> Result<(PackageStored, Option<DateTime<Utc>>), StoreError> {
    let rec = new.record();
    // Serialise uploads of one package, so "is this the newest version" stays true to commit,
    // and look for the same bytes only under the lock: a concurrent upload of them has either
    // committed (found here) or not begun.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('cloacina-package:' || $1))")
        .bind(rec.name.as_str())
        .execute(&mut *tx)
        .await
        .map_err(translate)?;
    let verified = match crate::signing::check_upload(tx, new).await? {
        Ok(verified) => verified,
        Err(refused) => return Ok((PackageStored::Unsigned(refused), None)),
    };
    let same_bytes = sqlx::query(AssertSqlSafe(format!("SELECT {COLUMNS} FROM packages WHERE content_hash = $1")))
        .bind(&new.content_hash)
        .fetch_optional(&mut *tx)
        .await
        .map_err(translate)?
        .map(|row| record(&row))
        .transpose()
        .map_err(translate)?;
    let versions: Vec<String> = sqlx::query_scalar("SELECT version FROM packages WHERE name = $1")
        .bind(rec.name.as_str())
        .fetch_all(&mut *tx)
        .await
        .map_err(translate)?;
    let in_force = match new.plan_upload(same_bytes, &versions) {
        Ok(UploadPlan::Existing(found)) => return Ok((PackageStored::Existing(found), None)),
        Ok(UploadPlan::Store { in_force }) => in_force,
        Err(refused) => return Ok((PackageStored::Refused(refused), None)),
    };
    let rows = new.workflow_rows();
    let kept = if in_force {
        let owners = owners(tx, &rows).await?;
        match workflows_in_force(rec.name.as_str(), &rows, &owners, true) {
            Ok(kept) => Some(kept),
            Err(refused) => return Ok((PackageStored::Refused(refused), None)),
        }
    } else {
        None
    };
    sqlx::query(
        "INSERT INTO packages (id, name, version, description, content_hash, size_bytes, manifest, workflows, archive,
                               uploaded_at, uploaded_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(rec.id)
    .bind(rec.name.as_str())
    .bind(rec.version.to_string())
    .bind(&rec.description)
    .bind(&rec.content_hash)
    .bind(i64::try_from(rec.size_bytes).unwrap_or(i64::MAX))
    .bind(&new.manifest_text)
    .bind(Json(&rec.workflows))
    .bind(Vec::<u8>::new())
    .bind(rec.uploaded_at)
    .bind(rec.uploaded_by.map(|k| k.as_uuid()))
    .execute(&mut *tx)
    .await
    .map_err(translate)?;
    store_chunks(tx, rec.id, &new.archive).await?;
    if let Some(v) = &verified {
        crate::signing::record_signature(tx, rec.id, v, rec.uploaded_at).await?;
    }
    let mut due = None;
    if let Some(kept) = kept {
        put_in_force(tx, rec.name.as_str(), &kept).await?;
        match crate::triggers::put_in_force(tx, rec.name.as_str(), &kept, rec.uploaded_at, true).await? {
            Ok(next) => due = next,
            Err(refused) => return Ok((PackageStored::Refused(refused), None)),
        }
    }
    Ok((PackageStored::Created(rec), due))
}

#[async_trait]
impl PackageStore for PgDb {
    async fn store_package(
        &self,
        tenant: &TenantName,
        new: &NewPackage,
        audit: &AuditEntry,
    ) -> Result<Option<PackageStored>, StoreError> {
        let Some(mut tx) = self.begin_tenant(tenant).await? else { return Ok(None) };
        let (stored, due) = store(&mut tx, new).await?;
        if matches!(stored, PackageStored::Created(_)) {
            crate::audit::append(&mut tx, audit).await?;
        }
        // A refusal stored nothing; dropping the transaction rolls back its lock.
        if let Some(due) = due {
            // Triggers came into force: every scheduler learns when (last, as the login role).
            crate::triggers::wake_schedulers(&mut tx, tenant, due).await?;
        }
        if !matches!(stored, PackageStored::Refused(_) | PackageStored::Unsigned(_)) {
            tx.commit().await.map_err(translate)?;
        }
        Ok(Some(stored))
    }

    async fn list_packages(&self, tenant: &TenantName) -> Result<Option<Vec<PackageRecord>>, StoreError> {
        let Some(rows) = self.tenant_read(tenant, concat!("SELECT ", columns!(), " FROM packages")).await? else {
            return Ok(None);
        };
        let mut records = rows.iter().map(record).collect::<Result<Vec<_>, _>>().map_err(translate)?;
        records.sort_by(|a, b| a.name.cmp(&b.name).then(b.version.cmp(&a.version)));
        Ok(Some(records))
    }

    async fn delete_package(
        &self,
        tenant: &TenantName,
        name: &str,
        version: &str,
        at: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<Lookup<PackageDeleted>, StoreError> {
        let Some(mut tx) = self.begin_tenant(tenant).await? else { return Ok(Lookup::NoTenant) };
        let (deleted, due) = delete(&mut tx, name, version, at).await?;
        // A refused delete is undone by dropping the transaction uncommitted.
        if matches!(deleted, Lookup::Found(PackageDeleted::Deleted(_))) {
            crate::audit::append(&mut tx, audit).await?;
            if let Some(due) = due {
                crate::triggers::wake_schedulers(&mut tx, tenant, due).await?;
            }
            tx.commit().await.map_err(translate)?;
        }
        Ok(deleted)
    }

    async fn package_manifest(
        &self,
        tenant: &TenantName,
        name: &str,
        version: &str,
    ) -> Result<Lookup<StoredManifest>, StoreError> {
        let Some(mut tx) = self.begin_tenant(tenant).await? else { return Ok(Lookup::NoTenant) };
        let found: Option<(Uuid, String)> =
            sqlx::query_as("SELECT id, manifest FROM packages WHERE name = $1 AND version = $2")
                .bind(name)
                .bind(version)
                .fetch_optional(&mut *tx)
                .await
                .map_err(translate)?;
        tx.commit().await.map_err(translate)?;
        Ok(Lookup::from_option(found.map(|(id, manifest)| StoredManifest { id, manifest })))
    }

    async fn package_archive(&self, tenant: &TenantName, id: Uuid) -> Result<Lookup<StoredArchive>, StoreError> {
        let Some(mut tx) = self.begin_tenant(tenant).await? else { return Ok(Lookup::NoTenant) };
        let found: Option<(String, Vec<u8>)> =
            sqlx::query_as("SELECT content_hash, archive FROM packages WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(translate)?;
        let Some((content_hash, mut bytes)) = found else { return Ok(Lookup::Missing) };
        // Versions uploaded since chunks exist keep their bytes there.
        let chunks: Vec<Vec<u8>> =
            sqlx::query_scalar("SELECT bytes FROM package_chunks WHERE package_id = $1 ORDER BY seq")
                .bind(id)
                .fetch_all(&mut *tx)
                .await
                .map_err(translate)?;
        tx.commit().await.map_err(translate)?;
        for c in chunks {
            bytes.extend_from_slice(&c);
        }
        Ok(Lookup::Found(StoredArchive { content_hash, bytes }))
    }
}
