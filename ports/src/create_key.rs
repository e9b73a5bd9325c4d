//! Create an API key.

use chrono::{DateTime, Utc};
use cloacina_domain::audit::AuditAction;
use cloacina_domain::authz::{ExpiryRefused, authorize_mint, child_expiry};
use cloacina_domain::ports::{ConstraintKind, StoreError};
use cloacina_domain::{
    Authority, Denied, KeyName, KeyRecord, MintedKey, NewKey, Principal, Secret, StoredSecret, TenantName,
};

use crate::Keys;

/// What to create. The HTTP adapter decides `authority` from the route and body
/// (docs/api.md, "Keys and roles": no tenant on `/v1/auth/keys` means a god key; a tenant key defaults to `read`).
#[derive(Debug, Clone)]
pub struct CreateKey {
    pub name: KeyName,
    pub authority: Authority,
    pub expires_at: Option<DateTime<Utc>>,
}

/// A created key: its row and the plaintext, which exists only in this value.
#[derive(Debug)]
pub struct CreatedKey {
    pub record: KeyRecord,
    pub plaintext: Secret,
}

/// Why a key was not created.
#[derive(Debug, thiserror::Error)]
pub enum CreateKeyError {
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error("tenant '{0}' does not exist")]
    NoSuchTenant(TenantName),
    #[error(transparent)]
    Expiry(#[from] ExpiryRefused),
    /// An unrevoked key of the same tenant (or, for a god key, another god key) has the name.
    #[error(
        "a key named '{0}' already exists in this scope: names are unique among unrevoked keys (expired ones \
         count until revoked)"
    )]
    NameTaken(KeyName),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Keys {
    /// Mints a key for `caller`, never with more rights than the caller's own.
    ///
    /// # Errors
    /// [`CreateKeyError`]: refused by the minting rules, an unknown tenant, an expiry in the past or after the caller's own, or
    /// the store's failure.
    pub async fn create(&self, caller: &Principal, request: CreateKey) -> Result<CreatedKey, CreateKeyError> {
        authorize_mint(caller, &request.authority)?;
        let now = self.deps.clock.now();
        let expires_at = child_expiry(caller, request.expires_at, now)?;
        if let Authority::Tenant { tenant, .. } = &request.authority
            && !self.deps.tenants.exists(tenant).await?
        {
            return Err(CreateKeyError::NoSuchTenant(tenant.clone()));
        }
        let minted = MintedKey::new(self.deps.keygen.key_id(), self.deps.keygen.secret());
        let new = NewKey {
            id: minted.id(),
            name: request.name,
            authority: request.authority,
            secret: StoredSecret::Sha256(minted.digest()),
            created_at: now,
            created_by: Some(caller.key_id),
            expires_at,
        };
        let audit =
            crate::audit::entry(now, caller, new.authority.tenant(), AuditAction::KeyCreate, new.id.to_string())
                .with("name", new.name.as_str())
                .with("permissions", new.authority.permissions_label());
        match self.deps.keys.insert(&new, &audit).await {
            Err(StoreError::Constraint(c)) if c.kind == ConstraintKind::Unique => {
                return Err(CreateKeyError::NameTaken(new.name));
            }
            other => other?,
        }
        self.auth.forget(new.id);
        tracing::info!(key_id = %new.id, name = %new.name, created_by = %caller.key_id, "API key created");
        Ok(CreatedKey { record: new.into(), plaintext: minted.plaintext() })
    }
}
