//! Tenant secrets on SQLite: ciphertext and the wrapped data key of tenant `public`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cloacina_domain::TenantName;
use cloacina_domain::audit::AuditEntry;
use cloacina_domain::ports::{Lookup, SealedForTask, SecretMode, SecretPut, SecretStore, StoreError};
use cloacina_domain::secrets::{SealedSecret, SecretName, SecretRecord, SecretWrite, WrappedKey};
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};

use crate::SqliteDb;
use crate::audit::append;
use crate::keys::ts;

const COLUMNS: &str = "id, name, field_names, created_at, updated_at";

fn conv(col: usize, e: impl std::fmt::Display) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(col, rusqlite::types::Type::Text, e.to_string().into())
}

fn time(row: &Row<'_>, col: usize) -> rusqlite::Result<DateTime<Utc>> {
    let t: String = row.get(col)?;
    DateTime::parse_from_rfc3339(&t).map(|t| t.with_timezone(&Utc)).map_err(|e| conv(col, e))
}

fn record(row: &Row<'_>) -> rusqlite::Result<SecretRecord> {
    let names: String = row.get(2)?;
    Ok(SecretRecord {
        id: row.get::<_, String>(0)?.parse().map_err(|e| conv(0, e))?,
        name: SecretName::parse(&row.get::<_, String>(1)?).map_err(|e| conv(1, e))?,
        field_names: serde_json::from_str(&names).map_err(|e| conv(2, e))?,
        created_at: time(row, 3)?,
        updated_at: time(row, 4)?,
    })
}

fn nonce(bytes: Vec<u8>, col: usize) -> rusqlite::Result<[u8; 12]> {
    bytes.try_into().map_err(|_| conv(col, "a nonce is 12 bytes"))
}

fn data_key(conn: &Connection) -> rusqlite::Result<Option<WrappedKey>> {
    conn.query_row("SELECT master_id, nonce, sealed FROM secret_key", [], |r| {
        Ok(WrappedKey { master_id: r.get(0)?, nonce: nonce(r.get(1)?, 1)?, sealed: r.get(2)? })
    })
    .optional()
}

fn find(conn: &Connection, name: &SecretName) -> rusqlite::Result<Option<SecretRecord>> {
    conn.query_row(&format!("SELECT {COLUMNS} FROM secrets WHERE name = ?1"), [name.as_str()], record).optional()
}

fn put(
    conn: &mut Connection,
    w: &SecretWrite,
    key: &WrappedKey,
    first_key: bool,
    mode: SecretMode,
    audit: &AuditEntry,
) -> rusqlite::Result<SecretPut> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    match data_key(&tx)? {
        None if first_key => {
            tx.execute(
                "INSERT INTO secret_key (master_id, nonce, sealed, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![key.master_id, key.nonce.as_slice(), key.sealed, ts(w.record.updated_at)],
            )?;
        }
        Some(stored) if stored == *key => {}
        Some(stored) => return Ok(SecretPut::KeyChanged(stored)),
        None => return Err(conv(0, "the tenant has no data key, yet the write was not sealed under a new one")),
    }
    let existing = find(&tx, &w.record.name)?;
    let r = &w.record;
    let names = serde_json::to_string(&r.field_names).unwrap_or_default();
    let stored = match (mode, existing) {
        (SecretMode::Create, Some(_)) => return Ok(SecretPut::Exists),
        (SecretMode::Rotate, None) => return Ok(SecretPut::Missing),
        (SecretMode::Create, None) => {
            tx.execute(
                "INSERT INTO secrets (id, name, field_names, nonce, sealed, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    r.id.to_string(),
                    r.name.as_str(),
                    names,
                    w.sealed.nonce.as_slice(),
                    w.sealed.sealed,
                    ts(r.created_at),
                    ts(r.updated_at)
                ],
            )?;
            r.clone()
        }
        (SecretMode::Rotate, Some(old)) => {
            tx.execute(
                "UPDATE secrets SET field_names = ?2, nonce = ?3, sealed = ?4, updated_at = ?5 WHERE name = ?1",
                params![r.name.as_str(), names, w.sealed.nonce.as_slice(), w.sealed.sealed, ts(r.updated_at)],
            )?;
            SecretRecord { id: old.id, created_at: old.created_at, ..r.clone() }
        }
    };
    append(&tx, audit)?;
    tx.commit()?;
    Ok(SecretPut::Stored(stored))
}

#[async_trait]
impl SecretStore for SqliteDb {
    async fn data_key(&self, tenant: &TenantName) -> Result<Option<Option<WrappedKey>>, StoreError> {
        if !tenant.is_public() {
            return Ok(None);
        }
        self.read(|conn| data_key(conn).map(Some)).await
    }

    async fn put_secret(
        &self,
        tenant: &TenantName,
        write: &SecretWrite,
        key: &WrappedKey,
        first_key: bool,
        mode: SecretMode,
        audit: &AuditEntry,
    ) -> Result<Option<SecretPut>, StoreError> {
        if !tenant.is_public() {
            return Ok(None);
        }
        let (write, key, audit) = (write.clone(), key.clone(), audit.clone());
        self.write(move |conn| put(conn, &write, &key, first_key, mode, &audit).map(Some)).await
    }

    async fn list_secrets(&self, tenant: &TenantName) -> Result<Option<Vec<SecretRecord>>, StoreError> {
        if !tenant.is_public() {
            return Ok(None);
        }
        self.read(|conn| {
            conn.prepare_cached(&format!("SELECT {COLUMNS} FROM secrets ORDER BY name"))?
                .query_map([], record)?
                .collect::<Result<Vec<_>, _>>()
                .map(Some)
        })
        .await
    }

    async fn get_secret(&self, tenant: &TenantName, name: &SecretName) -> Result<Lookup<SecretRecord>, StoreError> {
        if !tenant.is_public() {
            return Ok(Lookup::NoTenant);
        }
        let name = name.clone();
        self.read(move |conn| find(conn, &name).map(Lookup::from_option)).await
    }

    async fn delete_secret(
        &self,
        tenant: &TenantName,
        name: &SecretName,
        audit: &AuditEntry,
    ) -> Result<Lookup<SecretRecord>, StoreError> {
        if !tenant.is_public() {
            return Ok(Lookup::NoTenant);
        }
        let (name, audit) = (name.clone(), audit.clone());
        self.write(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let Some(found) = find(&tx, &name)? else { return Ok(Lookup::Missing) };
            tx.execute("DELETE FROM secrets WHERE name = ?1", [name.as_str()])?;
            append(&tx, &audit)?;
            tx.commit()?;
            Ok(Lookup::Found(found))
        })
        .await
    }

    async fn sealed_secrets(
        &self,
        tenant: &TenantName,
        names: &[SecretName],
    ) -> Result<Option<SealedForTask>, StoreError> {
        if !tenant.is_public() {
            return Ok(None);
        }
        let names = names.to_vec();
        self.read(move |conn| {
            let key = data_key(conn)?;
            let mut found = Vec::new();
            let mut stmt = conn.prepare_cached("SELECT nonce, sealed FROM secrets WHERE name = ?1")?;
            for name in names {
                let sealed = stmt
                    .query_row([name.as_str()], |r| Ok(SealedSecret { nonce: nonce(r.get(0)?, 0)?, sealed: r.get(1)? }))
                    .optional()?;
                if let Some(s) = sealed {
                    found.push((name, s));
                }
            }
            Ok(Some(SealedForTask { key, secrets: found }))
        })
        .await
    }

    async fn rewrap_data_key(
        &self,
        tenant: &TenantName,
        old: &WrappedKey,
        new: &WrappedKey,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        if !tenant.is_public() {
            return Ok(false);
        }
        let (old, new) = (old.clone(), new.clone());
        self.write(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if data_key(&tx)?.as_ref() != Some(&old) {
                return Ok(false);
            }
            tx.execute(
                "UPDATE secret_key SET master_id = ?1, nonce = ?2, sealed = ?3, rewrapped_at = ?4",
                params![new.master_id, new.nonce.as_slice(), new.sealed, ts(at)],
            )?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }
}
