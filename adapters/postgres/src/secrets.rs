//! Tenant secrets on PostgreSQL: ciphertext and the wrapped data key, in the tenant's schema.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cloacina_domain::TenantName;
use cloacina_domain::audit::AuditEntry;
use cloacina_domain::ports::{Lookup, SealedForTask, SecretMode, SecretPut, SecretStore, StoreError};
use cloacina_domain::secrets::{SealedSecret, SecretName, SecretRecord, SecretWrite, WrappedKey};
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::{AssertSqlSafe, PgConnection, Row};

use crate::PgDb;
use crate::audit::append;
use crate::db::translate;

const COLUMNS: &str = "id, name, field_names, created_at, updated_at";

fn decode(e: impl std::fmt::Display) -> sqlx::Error {
    sqlx::Error::Decode(e.to_string().into())
}

fn record(row: &PgRow) -> Result<SecretRecord, sqlx::Error> {
    let names: Json<Vec<String>> = row.try_get(2)?;
    Ok(SecretRecord {
        id: row.try_get(0)?,
        name: SecretName::parse(&row.try_get::<String, _>(1)?).map_err(decode)?,
        field_names: names.0,
        created_at: row.try_get(3)?,
        updated_at: row.try_get(4)?,
    })
}

fn nonce(bytes: Vec<u8>) -> Result<[u8; 12], sqlx::Error> {
    bytes.try_into().map_err(|_| decode("a nonce is 12 bytes"))
}

async fn data_key(tx: &mut PgConnection, lock: bool) -> Result<Option<WrappedKey>, StoreError> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    let row: Option<(String, Vec<u8>, Vec<u8>)> =
        sqlx::query_as(AssertSqlSafe(format!("SELECT master_id, nonce, sealed FROM secret_key{lock}")))
            .fetch_optional(&mut *tx)
            .await
            .map_err(translate)?;
    row.map(|(master_id, n, sealed)| Ok(WrappedKey { master_id, nonce: nonce(n)?, sealed }))
        .transpose()
        .map_err(translate)
}

async fn find(tx: &mut PgConnection, name: &SecretName, lock: bool) -> Result<Option<SecretRecord>, StoreError> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    let row = sqlx::query(AssertSqlSafe(format!("SELECT {COLUMNS} FROM secrets WHERE name = $1{lock}")))
        .bind(name.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(translate)?;
    row.map(|r| record(&r)).transpose().map_err(translate)
}

#[async_trait]
impl SecretStore for PgDb {
    async fn data_key(&self, tenant: &TenantName) -> Result<Option<Option<WrappedKey>>, StoreError> {
        let Some(mut tx) = self.begin_tenant(tenant).await? else { return Ok(None) };
        let key = data_key(&mut tx, false).await?;
        tx.commit().await.map_err(translate)?;
        Ok(Some(key))
    }

    async fn put_secret(
        &self,
        tenant: &TenantName,
        w: &SecretWrite,
        key: &WrappedKey,
        first_key: bool,
        mode: SecretMode,
        audit: &AuditEntry,
    ) -> Result<Option<SecretPut>, StoreError> {
        let Some(mut tx) = self.begin_tenant(tenant).await? else { return Ok(None) };
        if first_key {
            // The first data key wins; a loser learns the winner's.
            sqlx::query(
                "INSERT INTO secret_key (master_id, nonce, sealed, created_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT DO NOTHING",
            )
            .bind(&key.master_id)
            .bind(key.nonce.as_slice())
            .bind(&key.sealed)
            .bind(w.record.updated_at)
            .execute(&mut *tx)
            .await
            .map_err(translate)?;
        }
        match data_key(&mut tx, true).await? {
            Some(stored) if stored == *key => {}
            Some(stored) => return Ok(Some(SecretPut::KeyChanged(stored))),
            None => return Err(StoreError::Unexpected("the tenant has no data key".into())),
        }
        let r = &w.record;
        let existing = find(&mut tx, &r.name, true).await?;
        let stored = match (mode, existing) {
            (SecretMode::Create, Some(_)) => return Ok(Some(SecretPut::Exists)),
            (SecretMode::Rotate, None) => return Ok(Some(SecretPut::Missing)),
            (SecretMode::Create, None) => {
                sqlx::query(
                    "INSERT INTO secrets (id, name, field_names, nonce, sealed, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(r.id)
                .bind(r.name.as_str())
                .bind(Json(&r.field_names))
                .bind(w.sealed.nonce.as_slice())
                .bind(&w.sealed.sealed)
                .bind(r.created_at)
                .bind(r.updated_at)
                .execute(&mut *tx)
                .await
                .map_err(translate)?;
                r.clone()
            }
            (SecretMode::Rotate, Some(old)) => {
                sqlx::query(
                    "UPDATE secrets SET field_names = $2, nonce = $3, sealed = $4, updated_at = $5 WHERE name = $1",
                )
                .bind(r.name.as_str())
                .bind(Json(&r.field_names))
                .bind(w.sealed.nonce.as_slice())
                .bind(&w.sealed.sealed)
                .bind(r.updated_at)
                .execute(&mut *tx)
                .await
                .map_err(translate)?;
                SecretRecord { id: old.id, created_at: old.created_at, ..r.clone() }
            }
        };
        append(&mut tx, audit).await?;
        tx.commit().await.map_err(translate)?;
        Ok(Some(SecretPut::Stored(stored)))
    }

    async fn list_secrets(&self, tenant: &TenantName) -> Result<Option<Vec<SecretRecord>>, StoreError> {
        let Some(mut tx) = self.begin_tenant(tenant).await? else { return Ok(None) };
        let rows = sqlx::query(AssertSqlSafe(format!("SELECT {COLUMNS} FROM secrets ORDER BY name")))
            .fetch_all(&mut *tx)
            .await
            .map_err(translate)?;
        tx.commit().await.map_err(translate)?;
        rows.iter().map(record).collect::<Result<Vec<_>, _>>().map(Some).map_err(translate)
    }

    async fn get_secret(&self, tenant: &TenantName, name: &SecretName) -> Result<Lookup<SecretRecord>, StoreError> {
        let Some(mut tx) = self.begin_tenant(tenant).await? else { return Ok(Lookup::NoTenant) };
        let found = find(&mut tx, name, false).await?;
        tx.commit().await.map_err(translate)?;
        Ok(Lookup::from_option(found))
    }

    async fn delete_secret(
        &self,
        tenant: &TenantName,
        name: &SecretName,
        audit: &AuditEntry,
    ) -> Result<Lookup<SecretRecord>, StoreError> {
        let Some(mut tx) = self.begin_tenant(tenant).await? else { return Ok(Lookup::NoTenant) };
        let gone = sqlx::query(AssertSqlSafe(format!("DELETE FROM secrets WHERE name = $1 RETURNING {COLUMNS}")))
            .bind(name.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(translate)?;
        let Some(gone) = gone else { return Ok(Lookup::Missing) };
        let gone = record(&gone).map_err(translate)?;
        append(&mut tx, audit).await?;
        tx.commit().await.map_err(translate)?;
        Ok(Lookup::Found(gone))
    }

    async fn sealed_secrets(
        &self,
        tenant: &TenantName,
        names: &[SecretName],
    ) -> Result<Option<SealedForTask>, StoreError> {
        let Some(mut tx) = self.begin_tenant(tenant).await? else { return Ok(None) };
        let key = data_key(&mut tx, false).await?;
        let wanted: Vec<&str> = names.iter().map(SecretName::as_str).collect();
        let rows: Vec<(String, Vec<u8>, Vec<u8>)> =
            sqlx::query_as("SELECT name, nonce, sealed FROM secrets WHERE name = ANY($1)")
                .bind(&wanted)
                .fetch_all(&mut *tx)
                .await
                .map_err(translate)?;
        tx.commit().await.map_err(translate)?;
        let mut found = Vec::with_capacity(rows.len());
        for (name, n, sealed) in rows {
            let name = SecretName::parse(&name).map_err(StoreError::Unexpected)?;
            found.push((name, SealedSecret { nonce: nonce(n).map_err(translate)?, sealed }));
        }
        Ok(Some(SealedForTask { key, secrets: found }))
    }

    async fn rewrap_data_key(
        &self,
        tenant: &TenantName,
        old: &WrappedKey,
        new: &WrappedKey,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let Some(mut tx) = self.begin_tenant(tenant).await? else { return Ok(false) };
        if data_key(&mut tx, true).await?.as_ref() != Some(old) {
            return Ok(false);
        }
        sqlx::query("UPDATE secret_key SET master_id = $1, nonce = $2, sealed = $3, rewrapped_at = $4")
            .bind(&new.master_id)
            .bind(new.nonce.as_slice())
            .bind(&new.sealed)
            .bind(at)
            .execute(&mut *tx)
            .await
            .map_err(translate)?;
        tx.commit().await.map_err(translate)?;
        Ok(true)
    }
}
