//! `api_keys` on PostgreSQL.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cloacina_domain::audit::AuditEntry;
use cloacina_domain::ports::{KeyStore, RevokeOutcome, StoreError};
use cloacina_domain::{ApiKeyId, Authority, KeyDigest, KeyName, KeyRecord, NewKey, StoredSecret, TenantName};
use sqlx::AssertSqlSafe;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use crate::PgDb;
use crate::db::translate;
use crate::listen::{Topic, notify};

const COLUMNS: &str = "id, name, tenant, role, is_admin, hash_kind, key_hash, created_at, created_by, \
                       revoked, revoked_at, expires_at, last_used_at";
const ACTIVE_GOD: &str = "is_admin AND NOT revoked AND (expires_at IS NULL OR expires_at > $1)";

const BOOTSTRAP_LOCK: i64 = crate::locks::BOOTSTRAP;

fn decode<E: std::error::Error + Send + Sync + 'static>(e: E) -> sqlx::Error {
    sqlx::Error::Decode(Box::new(e))
}

fn row_to_record(row: &PgRow) -> Result<KeyRecord, sqlx::Error> {
    let tenant: Option<String> = row.try_get(2)?;
    let role: String = row.try_get(3)?;
    let is_admin: bool = row.try_get(4)?;
    let authority = if is_admin {
        Authority::God
    } else {
        let tenant = tenant.ok_or_else(|| decode(std::fmt::Error))?;
        Authority::Tenant { tenant: TenantName::parse(&tenant).map_err(decode)?, role: role.parse().map_err(decode)? }
    };
    let kind: String = row.try_get(5)?;
    let hash: String = row.try_get(6)?;
    let secret = match kind.as_str() {
        "sha256" => {
            let mut bytes = [0u8; 32];
            hex::decode_to_slice(&hash, &mut bytes).map_err(decode)?;
            StoredSecret::Sha256(KeyDigest::from_bytes(bytes))
        }
        _ => StoredSecret::Argon2(hash),
    };
    let name: String = row.try_get(1)?;
    Ok(KeyRecord {
        id: ApiKeyId::from_uuid(row.try_get(0)?),
        name: KeyName::parse(&name).map_err(decode)?,
        authority,
        secret,
        created_at: row.try_get(7)?,
        created_by: row.try_get::<Option<Uuid>, _>(8)?.map(ApiKeyId::from_uuid),
        revoked: row.try_get(9)?,
        revoked_at: row.try_get(10)?,
        expires_at: row.try_get(11)?,
        last_used_at: row.try_get(12)?,
    })
}

async fn insert_row(conn: &mut PgConnection, key: &NewKey) -> Result<(), sqlx::Error> {
    let (kind, hash) = match &key.secret {
        StoredSecret::Sha256(d) => ("sha256", hex::encode(d.as_bytes())),
        StoredSecret::Argon2(phc) => ("argon2id", phc.clone()),
    };
    sqlx::query(
        "INSERT INTO api_keys (id, name, tenant, role, is_admin, hash_kind, key_hash, created_at, created_by, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(key.id.as_uuid())
    .bind(key.name.as_str())
    .bind(key.authority.tenant().map(TenantName::as_str))
    .bind(key.authority.role().as_str())
    .bind(key.authority.is_god())
    .bind(kind)
    .bind(hash)
    .bind(key.created_at)
    .bind(key.created_by.map(|id| id.as_uuid()))
    .bind(key.expires_at)
    .execute(conn)
    .await
    .map(drop)
}

async fn count_god(conn: &mut PgConnection, now: DateTime<Utc>) -> Result<u64, sqlx::Error> {
    let n: i64 = sqlx::query_scalar(AssertSqlSafe(format!("SELECT count(*) FROM api_keys WHERE {ACTIVE_GOD}")))
        .bind(now)
        .fetch_one(conn)
        .await?;
    Ok(n.unsigned_abs())
}

async fn find_row(conn: &mut PgConnection, id: ApiKeyId, lock: bool) -> Result<Option<KeyRecord>, sqlx::Error> {
    let suffix = if lock { " FOR UPDATE" } else { "" };
    sqlx::query(AssertSqlSafe(format!("SELECT {COLUMNS} FROM api_keys WHERE id = $1{suffix}")))
        .bind(id.as_uuid())
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(row_to_record)
        .transpose()
}

#[async_trait]
impl KeyStore for PgDb {
    async fn insert(&self, key: &NewKey, audit: &AuditEntry) -> Result<(), StoreError> {
        let place = self.audit_place(audit).await?;
        let mut tx = self.pool.begin().await.map_err(translate)?;
        insert_row(&mut tx, key).await.map_err(translate)?;
        crate::audit::append_to_tenant(&mut tx, place.as_ref(), audit).await?;
        tx.commit().await.map_err(translate)
    }

    async fn insert_first_god_key(
        &self,
        key: &NewKey,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(translate)?;
        // Replicas starting together queue here; the first inserts, the rest see its key.
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(BOOTSTRAP_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(translate)?;
        if count_god(&mut tx, now).await.map_err(translate)? > 0 {
            return Ok(false);
        }
        // Every god key left has expired: one holding the new key's name is retired with it.
        sqlx::query("UPDATE api_keys SET revoked = true, revoked_at = $2 WHERE is_admin AND NOT revoked AND name = $1")
            .bind(key.name.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(translate)?;
        insert_row(&mut tx, key).await.map_err(translate)?;
        crate::audit::append(&mut tx, audit).await?;
        tx.commit().await.map_err(translate)?;
        Ok(true)
    }

    async fn find(&self, id: ApiKeyId) -> Result<Option<KeyRecord>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(translate)?;
        find_row(&mut conn, id, false).await.map_err(translate)
    }

    async fn list(&self, tenant: Option<TenantName>) -> Result<Vec<KeyRecord>, StoreError> {
        let rows = match &tenant {
            None => {
                sqlx::query(AssertSqlSafe(format!("SELECT {COLUMNS} FROM api_keys ORDER BY created_at, id")))
                    .fetch_all(&self.pool)
                    .await
            }
            Some(t) => {
                sqlx::query(AssertSqlSafe(format!(
                    "SELECT {COLUMNS} FROM api_keys WHERE tenant = $1 ORDER BY created_at, id"
                )))
                .bind(t.as_str())
                .fetch_all(&self.pool)
                .await
            }
        }
        .map_err(translate)?;
        rows.iter().map(row_to_record).collect::<Result<_, _>>().map_err(translate)
    }

    async fn active_supplied_keys(&self, now: DateTime<Utc>) -> Result<Vec<KeyRecord>, StoreError> {
        sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM api_keys WHERE hash_kind = 'argon2id' AND NOT revoked
             AND (expires_at IS NULL OR expires_at > $1) ORDER BY created_at"
        )))
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .map_err(translate)?
        .iter()
        .map(row_to_record)
        .collect::<Result<_, _>>()
        .map_err(translate)
    }

    async fn count_active_god_keys(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(translate)?;
        count_god(&mut conn, now).await.map_err(translate)
    }

    async fn revoke(&self, id: ApiKeyId, at: DateTime<Utc>, audit: &AuditEntry) -> Result<RevokeOutcome, StoreError> {
        let place = self.audit_place(audit).await?;
        let mut tx = self.pool.begin().await.map_err(translate)?;
        let Some(record) = find_row(&mut tx, id, true).await.map_err(translate)? else {
            return Ok(RevokeOutcome::NotFound);
        };
        if record.revoked {
            return Ok(RevokeOutcome::AlreadyRevoked(record));
        }
        if record.authority.is_god() && record.is_active(at) {
            // Two god keys revoked at once must not both pass the "another remains" check.
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(BOOTSTRAP_LOCK)
                .execute(&mut *tx)
                .await
                .map_err(translate)?;
            if count_god(&mut tx, at).await.map_err(translate)? <= 1 {
                return Ok(RevokeOutcome::LastGodKey);
            }
        }
        sqlx::query("UPDATE api_keys SET revoked = true, revoked_at = $2 WHERE id = $1")
            .bind(id.as_uuid())
            .bind(at)
            .execute(&mut *tx)
            .await
            .map_err(translate)?;
        notify(&mut tx, &Topic::Key(id)).await.map_err(translate)?;
        crate::audit::append_to_tenant(&mut tx, place.as_ref(), audit).await?;
        tx.commit().await.map_err(translate)?;
        Ok(RevokeOutcome::Revoked(record))
    }

    async fn record_last_used(&self, uses: Vec<(ApiKeyId, DateTime<Utc>)>) -> Result<(), StoreError> {
        let (ids, times): (Vec<Uuid>, Vec<DateTime<Utc>>) = uses.into_iter().map(|(id, at)| (id.as_uuid(), at)).unzip();
        sqlx::query(
            "UPDATE api_keys AS k SET last_used_at = u.at
             FROM unnest($1::uuid[], $2::timestamptz[]) AS u(id, at)
             WHERE k.id = u.id AND (k.last_used_at IS NULL OR k.last_used_at < u.at)",
        )
        .bind(ids)
        .bind(times)
        .execute(&self.pool)
        .await
        .map(drop)
        .map_err(translate)
    }
}
