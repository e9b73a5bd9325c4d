//! `api_keys` on SQLite.

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use cloacina_domain::audit::AuditEntry;
use cloacina_domain::ports::{KeyStore, RevokeOutcome, StoreError};
use cloacina_domain::{ApiKeyId, Authority, KeyDigest, KeyName, KeyRecord, NewKey, StoredSecret, TenantName};
use rusqlite::types::Type;
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};

use crate::SqliteDb;
use crate::audit::append;

const COLUMNS: &str = "id, name, tenant, role, is_admin, hash_kind, key_hash, created_at, created_by, \
                       revoked, revoked_at, expires_at, last_used_at";
const ACTIVE_GOD: &str = "is_admin = 1 AND revoked = 0 AND (expires_at IS NULL OR expires_at > ?1)";

/// Timestamps are stored as fixed-width RFC 3339 UTC text, so text order is time order.
pub(crate) fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn conv<E: std::error::Error + Send + Sync + 'static>(col: usize, e: E) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(col, Type::Text, Box::new(e))
}

fn get_ts(row: &Row<'_>, col: usize) -> rusqlite::Result<Option<DateTime<Utc>>> {
    row.get::<_, Option<String>>(col)?
        .map(|s| DateTime::parse_from_rfc3339(&s).map(|t| t.with_timezone(&Utc)).map_err(|e| conv(col, e)))
        .transpose()
}

fn get_id(row: &Row<'_>, col: usize) -> rusqlite::Result<Option<ApiKeyId>> {
    row.get::<_, Option<String>>(col)?.map(|s| s.parse::<ApiKeyId>().map_err(|e| conv(col, e))).transpose()
}

fn row_to_record(row: &Row<'_>) -> rusqlite::Result<KeyRecord> {
    let tenant: Option<String> = row.get(2)?;
    let role: String = row.get(3)?;
    let is_admin: bool = row.get(4)?;
    let authority = if is_admin {
        Authority::God
    } else {
        let tenant = tenant.ok_or_else(|| conv(2, std::fmt::Error))?;
        Authority::Tenant {
            tenant: TenantName::parse(&tenant).map_err(|e| conv(2, e))?,
            role: role.parse().map_err(|e| conv(3, e))?,
        }
    };
    let kind: String = row.get(5)?;
    let hash: String = row.get(6)?;
    let secret = match kind.as_str() {
        "sha256" => {
            let mut bytes = [0u8; 32];
            hex::decode_to_slice(&hash, &mut bytes).map_err(|e| conv(6, e))?;
            StoredSecret::Sha256(KeyDigest::from_bytes(bytes))
        }
        _ => StoredSecret::Argon2(hash),
    };
    Ok(KeyRecord {
        id: get_id(row, 0)?.ok_or_else(|| conv(0, std::fmt::Error))?,
        name: KeyName::parse(&row.get::<_, String>(1)?).map_err(|e| conv(1, e))?,
        authority,
        secret,
        created_at: get_ts(row, 7)?.ok_or_else(|| conv(7, std::fmt::Error))?,
        created_by: get_id(row, 8)?,
        revoked: row.get(9)?,
        revoked_at: get_ts(row, 10)?,
        expires_at: get_ts(row, 11)?,
        last_used_at: get_ts(row, 12)?,
    })
}

fn insert_row(conn: &Connection, key: &NewKey) -> rusqlite::Result<()> {
    let (kind, hash) = match &key.secret {
        StoredSecret::Sha256(d) => ("sha256", hex::encode(d.as_bytes())),
        StoredSecret::Argon2(phc) => ("argon2id", phc.clone()),
    };
    conn.execute(
        "INSERT INTO api_keys (id, name, tenant, role, is_admin, hash_kind, key_hash, created_at, created_by, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            key.id.to_string(),
            key.name.as_str(),
            key.authority.tenant().map(TenantName::as_str),
            key.authority.role().as_str(),
            key.authority.is_god(),
            kind,
            hash,
            ts(key.created_at),
            key.created_by.map(|id| id.to_string()),
            key.expires_at.map(ts),
        ],
    )?;
    Ok(())
}

fn find_row(conn: &Connection, id: ApiKeyId) -> rusqlite::Result<Option<KeyRecord>> {
    conn.query_row(&format!("SELECT {COLUMNS} FROM api_keys WHERE id = ?1"), [id.to_string()], row_to_record).optional()
}

fn count_god(conn: &Connection, now: DateTime<Utc>) -> rusqlite::Result<u64> {
    let n: i64 =
        conn.query_row(&format!("SELECT count(*) FROM api_keys WHERE {ACTIVE_GOD}"), [ts(now)], |r| r.get(0))?;
    Ok(n.unsigned_abs())
}

#[async_trait]
impl KeyStore for SqliteDb {
    async fn insert(&self, key: &NewKey, audit: &AuditEntry) -> Result<(), StoreError> {
        let (key, audit) = (key.clone(), audit.clone());
        self.write(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            insert_row(&tx, &key)?;
            append(&tx, &audit)?;
            tx.commit()
        })
        .await
    }

    async fn insert_first_god_key(
        &self,
        key: &NewKey,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<bool, StoreError> {
        let (key, audit) = (key.clone(), audit.clone());
        self.write(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if count_god(&tx, now)? > 0 {
                return Ok(false);
            }
            // Every god key left has expired: one holding the new key's name is retired with it.
            tx.execute(
                "UPDATE api_keys SET revoked = 1, revoked_at = ?2 WHERE is_admin = 1 AND revoked = 0 AND name = ?1",
                params![key.name.as_str(), ts(now)],
            )?;
            insert_row(&tx, &key)?;
            append(&tx, &audit)?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn find(&self, id: ApiKeyId) -> Result<Option<KeyRecord>, StoreError> {
        self.read(move |conn| find_row(conn, id)).await
    }

    async fn list(&self, tenant: Option<TenantName>) -> Result<Vec<KeyRecord>, StoreError> {
        self.read(move |conn| {
            let (sql, arg) = match &tenant {
                None => (format!("SELECT {COLUMNS} FROM api_keys ORDER BY created_at, id"), None),
                Some(t) => (
                    format!("SELECT {COLUMNS} FROM api_keys WHERE tenant = ?1 ORDER BY created_at, id"),
                    Some(t.as_str().to_owned()),
                ),
            };
            let mut stmt = conn.prepare_cached(&sql)?;
            match arg {
                None => stmt.query_map([], row_to_record)?.collect(),
                Some(t) => stmt.query_map([t], row_to_record)?.collect(),
            }
        })
        .await
    }

    async fn active_supplied_keys(&self, now: DateTime<Utc>) -> Result<Vec<KeyRecord>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM api_keys WHERE hash_kind = 'argon2id' AND revoked = 0
                 AND (expires_at IS NULL OR expires_at > ?1) ORDER BY created_at"
            ))?;
            stmt.query_map([ts(now)], row_to_record)?.collect()
        })
        .await
    }

    async fn count_active_god_keys(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        self.read(move |conn| count_god(conn, now)).await
    }

    async fn revoke(&self, id: ApiKeyId, at: DateTime<Utc>, audit: &AuditEntry) -> Result<RevokeOutcome, StoreError> {
        let audit = audit.clone();
        self.write(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let Some(record) = find_row(&tx, id)? else { return Ok(RevokeOutcome::NotFound) };
            if record.revoked {
                return Ok(RevokeOutcome::AlreadyRevoked(record));
            }
            if record.authority.is_god() && record.is_active(at) && count_god(&tx, at)? <= 1 {
                return Ok(RevokeOutcome::LastGodKey);
            }
            tx.execute(
                "UPDATE api_keys SET revoked = 1, revoked_at = ?2 WHERE id = ?1",
                params![id.to_string(), ts(at)],
            )?;
            append(&tx, &audit)?;
            tx.commit()?;
            Ok(RevokeOutcome::Revoked(record))
        })
        .await
    }

    async fn record_last_used(&self, uses: Vec<(ApiKeyId, DateTime<Utc>)>) -> Result<(), StoreError> {
        self.write(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            {
                let mut stmt = tx.prepare_cached(
                    "UPDATE api_keys SET last_used_at = ?2 WHERE id = ?1 AND (last_used_at IS NULL OR last_used_at < ?2)",
                )?;
                for (id, at) in &uses {
                    stmt.execute(params![id.to_string(), ts(*at)])?;
                }
            }
            tx.commit()
        })
        .await
    }
}
