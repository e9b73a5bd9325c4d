//! List API keys. Never shows a hash or a plaintext (the rows hold neither in a form a
//! listing could print: adapters serialise only the public fields).

use cloacina_domain::authz::authorize;
use cloacina_domain::ports::StoreError;
use cloacina_domain::{Denied, KeyRecord, Permission, Principal, TenantName};

use crate::Keys;

/// Which keys a listing or revocation addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyScope {
    /// Every key of the deployment (`/v1/auth/keys`): god keys only.
    All,
    /// One tenant's keys (`/v1/tenants/{t}/keys`): that tenant's admins, or god keys.
    Tenant(TenantName),
}

impl KeyScope {
    pub(crate) fn authorize(&self, caller: &Principal, tenant_permission: Permission) -> Result<(), Denied> {
        match self {
            KeyScope::All => authorize(caller, Permission::GodKeyManage, None),
            KeyScope::Tenant(t) => authorize(caller, tenant_permission, Some(t)),
        }
    }
}

/// Why keys were not listed.
#[derive(Debug, thiserror::Error)]
pub enum ListKeysError {
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error("tenant '{0}' does not exist")]
    NoSuchTenant(TenantName),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Keys {
    /// The keys in `scope`, oldest first, revoked ones included.
    ///
    /// # Errors
    /// [`ListKeysError`]: not allowed, an unknown tenant, or the store's failure.
    pub async fn list(&self, caller: &Principal, scope: KeyScope) -> Result<Vec<KeyRecord>, ListKeysError> {
        scope.authorize(caller, Permission::KeyList)?;
        match scope {
            KeyScope::All => Ok(self.deps.keys.list(None).await?),
            KeyScope::Tenant(t) => {
                if !self.deps.tenants.exists(&t).await? {
                    return Err(ListKeysError::NoSuchTenant(t));
                }
                Ok(self.deps.keys.list(Some(t)).await?)
            }
        }
    }
}
