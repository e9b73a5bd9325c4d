//! Single-use WebSocket tickets, kept as digests.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::key::ApiKeyId;

use super::StoreError;

/// The `ws_tickets` table: the SHA-256 of each ticket, the key it stands for, and until when.
///
/// # Errors
/// Every method fails with [`StoreError::Unavailable`] when the database cannot be reached
/// and [`StoreError::Unexpected`] for anything it cannot explain.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait TicketStore: Send + Sync {
    /// Stores a ticket; tickets expired at `now` are deleted in the same step.
    async fn insert_ticket(
        &self,
        digest: [u8; 32],
        key: ApiKeyId,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Takes the ticket: its key, deleting it in the same atomic step, if it exists and has
    /// not expired at `now`. Of concurrent redeemers of one ticket exactly one MUST get the
    /// key; an unknown, used or expired ticket MUST give `None`.
    async fn redeem_ticket(&self, digest: [u8; 32], now: DateTime<Utc>) -> Result<Option<ApiKeyId>, StoreError>;
}
