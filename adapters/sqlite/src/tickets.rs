//! [`TicketStore`] on SQLite: the `ws_tickets` table.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cloacina_domain::ApiKeyId;
use cloacina_domain::ports::{StoreError, TicketStore};
use rusqlite::{OptionalExtension, params};

use crate::SqliteDb;
use crate::keys::ts;

#[async_trait]
impl TicketStore for SqliteDb {
    async fn insert_ticket(
        &self,
        digest: [u8; 32],
        key: ApiKeyId,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.write(move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            tx.prepare_cached("DELETE FROM ws_tickets WHERE expires_at <= ?1")?.execute([ts(now)])?;
            tx.prepare_cached("INSERT INTO ws_tickets (digest, key_id, expires_at) VALUES (?1, ?2, ?3)")?
                .execute(params![&digest[..], key.to_string(), ts(expires_at)])?;
            tx.commit()
        })
        .await
    }

    async fn redeem_ticket(&self, digest: [u8; 32], now: DateTime<Utc>) -> Result<Option<ApiKeyId>, StoreError> {
        let key: Option<String> = self
            .write(move |conn| {
                conn.prepare_cached("DELETE FROM ws_tickets WHERE digest = ?1 AND expires_at > ?2 RETURNING key_id")?
                    .query_row(params![&digest[..], ts(now)], |r| r.get(0))
                    .optional()
            })
            .await?;
        key.map(|k| k.parse::<ApiKeyId>().map_err(|e| StoreError::Unexpected(format!("stored ticket key: {e}"))))
            .transpose()
    }
}
