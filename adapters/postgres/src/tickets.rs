//! [`TicketStore`] on PostgreSQL: `public.ws_tickets`, shared by every replica.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cloacina_domain::ApiKeyId;
use cloacina_domain::ports::{StoreError, TicketStore};
use uuid::Uuid;

use crate::PgDb;
use crate::db::translate;

#[async_trait]
impl TicketStore for PgDb {
    async fn insert_ticket(
        &self,
        digest: [u8; 32],
        key: ApiKeyId,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "WITH expired AS (DELETE FROM ws_tickets WHERE expires_at <= $4)
             INSERT INTO ws_tickets (digest, key_id, expires_at) VALUES ($1, $2, $3)",
        )
        .bind(&digest[..])
        .bind(key.as_uuid())
        .bind(expires_at)
        .bind(now)
        .execute(&self.pool)
        .await
        .map(drop)
        .map_err(translate)
    }

    async fn redeem_ticket(&self, digest: [u8; 32], now: DateTime<Utc>) -> Result<Option<ApiKeyId>, StoreError> {
        let key: Option<Uuid> =
            sqlx::query_scalar("DELETE FROM ws_tickets WHERE digest = $1 AND expires_at > $2 RETURNING key_id")
                .bind(&digest[..])
                .bind(now)
                .fetch_optional(&self.pool)
                .await
                .map_err(translate)?;
        Ok(key.map(ApiKeyId::from_uuid))
    }
}
