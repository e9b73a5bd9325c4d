//! Signed packages: the keys a tenant trusts and whether it requires signatures (tenant
//! admins). The upload itself is checked by the package store, in its own transaction.

use std::sync::Arc;

use cloacina_domain::audit::AuditAction;
use cloacina_domain::authz::authorize;
use cloacina_domain::package::{SignaturePolicy, SignerKey, TrustedSigner};
use cloacina_domain::ports::{SignerAdded, SigningStore, StoreError};
use cloacina_domain::{Denied, Permission, Principal, TenantName};

use crate::Deps;

/// Why a signing change was refused.
#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error("tenant '{0}' does not exist")]
    NoSuchTenant(TenantName),
    #[error("no trusted signing key is named '{0}'")]
    NoSuchSigner(String),
    /// `field`, message.
    #[error("{1}")]
    Invalid(&'static str, String),
    #[error("a trusted signing key is named '{0}' already")]
    NameTaken(String),
    #[error("this key is trusted already, as '{0}'")]
    KeyTaken(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The signing use cases.
#[derive(Clone)]
pub struct Signing {
    deps: Deps,
    store: Arc<dyn SigningStore>,
}

impl std::fmt::Debug for Signing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signing")
    }
}

/// The longest name a trusted key may have.
const MAX_NAME: usize = 64;

impl Signing {
    pub fn new(deps: Deps, store: Arc<dyn SigningStore>) -> Self {
        Self { deps, store }
    }

    /// Trusts `public_key` (`ed25519:<base64>`) under `name`.
    ///
    /// # Errors
    /// [`SigningError`]: not a tenant admin, a bad name or key, the name or key taken, no
    /// such tenant, the store.
    pub async fn add(
        &self,
        caller: &Principal,
        tenant: &TenantName,
        name: &str,
        public_key: &str,
    ) -> Result<TrustedSigner, SigningError> {
        authorize(caller, Permission::SigningManage, Some(tenant))?;
        if name.is_empty()
            || name.len() > MAX_NAME
            || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Err(SigningError::Invalid(
                "name",
                format!("a signing key's name is 1 to {MAX_NAME} letters, digits, '-', '_' or '.'"),
            ));
        }
        let key = SignerKey::parse(public_key).map_err(|e| SigningError::Invalid("public_key", e))?;
        let now = self.deps.clock.now();
        let signer = TrustedSigner {
            id: self.deps.keygen.key_id().as_uuid(),
            name: name.to_owned(),
            key,
            created_at: now,
            created_by: Some(caller.key_id),
        };
        let audit = crate::audit::entry(now, caller, Some(tenant), AuditAction::SignerAdd, name)
            .with("key_id", signer.key.id())
            .with("public_key", signer.key.to_text());
        match self.store.add_signer(tenant, &signer, &audit).await? {
            None => Err(SigningError::NoSuchTenant(tenant.clone())),
            Some(SignerAdded::Added(s)) => {
                let s = *s;
                tracing::info!(%tenant, signer = name, key_id = %s.key.id(), by = %caller.key_id, "signing key trusted");
                Ok(s)
            }
            Some(SignerAdded::NameTaken) => Err(SigningError::NameTaken(name.to_owned())),
            Some(SignerAdded::KeyTaken(held)) => Err(SigningError::KeyTaken(held)),
        }
    }

    /// The trusted keys and the policy.
    ///
    /// # Errors
    /// [`SigningError`]: not a tenant admin, no such tenant, the store.
    pub async fn list(
        &self,
        caller: &Principal,
        tenant: &TenantName,
    ) -> Result<(Vec<TrustedSigner>, SignaturePolicy), SigningError> {
        authorize(caller, Permission::SigningManage, Some(tenant))?;
        let no_tenant = || SigningError::NoSuchTenant(tenant.clone());
        let signers = self.store.list_signers(tenant).await?.ok_or_else(no_tenant)?;
        let policy = self.store.signature_policy(tenant).await?.ok_or_else(no_tenant)?;
        Ok((signers, policy))
    }

    /// Stops trusting a key.
    ///
    /// # Errors
    /// [`SigningError`]: not a tenant admin, no such tenant or key, the store.
    pub async fn remove(
        &self,
        caller: &Principal,
        tenant: &TenantName,
        name: &str,
    ) -> Result<TrustedSigner, SigningError> {
        authorize(caller, Permission::SigningManage, Some(tenant))?;
        let audit = crate::audit::entry(self.deps.clock.now(), caller, Some(tenant), AuditAction::SignerRemove, name);
        self.store
            .remove_signer(tenant, name, &audit)
            .await?
            .found(|| SigningError::NoSuchTenant(tenant.clone()), || SigningError::NoSuchSigner(name.to_owned()))
    }

    /// Requires signed packages (`true`) or not.
    ///
    /// # Errors
    /// [`SigningError`]: not a tenant admin, no such tenant, the store.
    pub async fn set_required(
        &self,
        caller: &Principal,
        tenant: &TenantName,
        require: bool,
    ) -> Result<SignaturePolicy, SigningError> {
        authorize(caller, Permission::SigningManage, Some(tenant))?;
        let now = self.deps.clock.now();
        let policy =
            SignaturePolicy { require_signatures: require, updated_at: Some(now), updated_by: Some(caller.key_id) };
        let audit = crate::audit::entry(now, caller, Some(tenant), AuditAction::SignaturePolicySet, tenant.as_str())
            .with("require_signatures", require);
        let set = self.store.set_signature_policy(tenant, &policy, &audit).await?;
        let set = set.ok_or_else(|| SigningError::NoSuchTenant(tenant.clone()))?;
        tracing::info!(%tenant, require, by = %caller.key_id, "signature policy set");
        Ok(set)
    }
}
