//! Revoke an API key. A soft flag: rows are never deleted, other tables point at them.

use cloacina_domain::audit::AuditAction;
use cloacina_domain::authz::authorize_key_access;
use cloacina_domain::ports::{RevokeOutcome, StoreError};
use cloacina_domain::{ApiKeyId, Denied, KeyRecord, Permission, Principal};

use crate::{KeyScope, Keys};

/// Why a key was not revoked.
#[derive(Debug, thiserror::Error)]
pub enum RevokeKeyError {
    #[error(transparent)]
    Denied(#[from] Denied),
    /// No such key in the scope, or it is revoked already.
    #[error("key not found or already revoked")]
    NotFound,
    #[error("the last active admin key cannot be revoked through the API")]
    LastGodKey,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Keys {
    /// Revokes key `id` within `scope`. Effective on the very next request.
    ///
    /// # Errors
    /// [`RevokeKeyError`]: not allowed, not found (also for another tenant's key, so ids of
    /// other tenants reveal nothing), the last god key, or the store's failure.
    pub async fn revoke(&self, caller: &Principal, scope: KeyScope, id: ApiKeyId) -> Result<KeyRecord, RevokeKeyError> {
        scope.authorize(caller, Permission::KeyRevoke)?;
        let record = self.deps.keys.find(id).await?.ok_or(RevokeKeyError::NotFound)?;
        if let KeyScope::Tenant(t) = &scope
            && record.authority.tenant() != Some(t)
        {
            return Err(RevokeKeyError::NotFound);
        }
        authorize_key_access(caller, &record.authority)?;
        let now = self.deps.clock.now();
        let audit = crate::audit::entry(now, caller, record.authority.tenant(), AuditAction::KeyRevoke, id.to_string())
            .with("name", record.name.as_str());
        match self.deps.keys.revoke(id, now, &audit).await? {
            RevokeOutcome::Revoked(mut record) => {
                self.auth.forget(id);
                tracing::info!(key_id = %id, revoked_by = %caller.key_id, "API key revoked");
                record.revoked = true;
                record.revoked_at = Some(now);
                Ok(record)
            }
            RevokeOutcome::AlreadyRevoked(_) | RevokeOutcome::NotFound => Err(RevokeKeyError::NotFound),
            RevokeOutcome::LastGodKey => Err(RevokeKeyError::LastGodKey),
        }
    }
}
