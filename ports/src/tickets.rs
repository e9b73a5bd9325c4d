//! WebSocket tickets (docs/live.md): a browser cannot set `Authorization` on a WebSocket, so a
//! key exchanges itself for a ticket that opens one socket, once, within a minute. Only the
//! ticket's SHA-256 is stored; redeeming deletes it and looks the key up afresh, so a key
//! revoked in the meantime opens nothing.

use std::sync::Arc;

use cloacina_domain::ports::{Clock, KeyGenerator, KeyStore, StoreError, TicketStore};
use cloacina_domain::{Principal, Secret};
use sha2::{Digest, Sha256};

use crate::AuthError;

/// How long a ticket can be redeemed.
pub const TICKET_TTL_SECS: u64 = 60;

/// What every ticket starts with, so one is never taken for an API key.
const PREFIX: &str = "clt_";

/// Issuing and redeeming tickets.
#[derive(Clone)]
pub struct Tickets {
    store: Arc<dyn TicketStore>,
    keys: Arc<dyn KeyStore>,
    clock: Arc<dyn Clock>,
    keygen: Arc<dyn KeyGenerator>,
}

impl std::fmt::Debug for Tickets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tickets")
    }
}

/// A ticket just issued.
#[derive(Debug)]
pub struct Issued {
    pub ticket: Secret,
    pub expires_in_seconds: u64,
}

fn digest(ticket: &str) -> [u8; 32] {
    Sha256::digest(ticket.as_bytes()).into()
}

impl Tickets {
    pub fn new(
        store: Arc<dyn TicketStore>,
        keys: Arc<dyn KeyStore>,
        clock: Arc<dyn Clock>,
        keygen: Arc<dyn KeyGenerator>,
    ) -> Self {
        Self { store, keys, clock, keygen }
    }

    /// A ticket standing for the caller's key (and so its tenant and role).
    ///
    /// # Errors
    /// The store's.
    pub async fn issue(&self, caller: &Principal) -> Result<Issued, StoreError> {
        use base64::Engine as _;
        let text = format!("{PREFIX}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(self.keygen.secret()));
        let now = self.clock.now();
        let ttl = chrono::Duration::seconds(TICKET_TTL_SECS as i64);
        self.store.insert_ticket(digest(&text), caller.key_id, now + ttl, now).await?;
        Ok(Issued { ticket: Secret::new(text), expires_in_seconds: TICKET_TTL_SECS })
    }

    /// The key a ticket stands for, as it is now; the ticket is used up.
    ///
    /// # Errors
    /// [`AuthError::Malformed`] for what is not a ticket, [`AuthError::Unknown`] for an
    /// unknown, used or expired one, [`AuthError::Revoked`] or [`AuthError::Expired`] for its
    /// key, [`AuthError::Store`].
    pub async fn redeem(&self, ticket: &str) -> Result<Arc<Principal>, AuthError> {
        if !ticket.starts_with(PREFIX) || ticket.len() > 128 {
            return Err(AuthError::Malformed);
        }
        let now = self.clock.now();
        let key = self.store.redeem_ticket(digest(ticket), now).await?.ok_or(AuthError::Unknown)?;
        let record = self.keys.find(key).await?.ok_or(AuthError::Unknown)?;
        if record.revoked {
            return Err(AuthError::Revoked);
        }
        if record.expires_at.is_some_and(|e| e <= now) {
            return Err(AuthError::Expired);
        }
        Ok(Arc::new(record.principal()))
    }
}
