//! Tenant secrets (docs/secrets.md): created, rotated, listed and deleted through the API
//! (values go in, never out), opened for the tasks that declare them, and the master key's
//! rotation. Sealing and opening are the domain's ([`cloacina_domain::secrets`]); the store
//! keeps ciphertext only.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use cloacina_domain::audit::AuditAction;
use cloacina_domain::authz::authorize;
use cloacina_domain::ports::{Clock, KeyGenerator, SecretMode, SecretPut, SecretSource, SecretStore, StoreError};
use cloacina_domain::secrets::{
    DataKey, MasterKey, MasterKeys, SecretFields, SecretName, SecretRecord, SecretRef, SecretWrite, SecretsError,
    WrappedKey,
};
use cloacina_domain::{Denied, Permission, Principal, Secret, TenantName};

use crate::Deps;

/// Why a secrets request was refused.
#[derive(Debug, thiserror::Error)]
pub enum SecretsServiceError {
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error("secrets are unavailable: this server has no master key (CLOACINA_MASTER_KEY or --master-key-file)")]
    Unavailable,
    #[error("tenant '{0}' does not exist")]
    NoSuchTenant(TenantName),
    #[error("no secret is named '{0}'")]
    NoSuchSecret(String),
    #[error("a secret named '{0}' exists already: rotate it (PUT) to change its fields")]
    Exists(String),
    /// The field at fault and what is wrong.
    #[error("{1}")]
    Invalid(String, String),
    #[error(transparent)]
    Keys(#[from] SecretsError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

type Result<T> = std::result::Result<T, SecretsServiceError>;

/// The secrets use cases.
#[derive(Clone)]
pub struct Secrets {
    deps: Deps,
    store: Arc<dyn SecretStore>,
    keys: Option<Arc<MasterKeys>>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets").field("master_key", &self.keys.as_ref().map(|k| k.current.id())).finish()
    }
}

fn nonce(bytes: [u8; 32]) -> [u8; 12] {
    let mut n = [0u8; 12];
    n.copy_from_slice(&bytes[..12]);
    n
}

fn name_of(text: &str) -> Result<SecretName> {
    SecretName::parse(text).map_err(|e| SecretsServiceError::Invalid("name".into(), e))
}

impl Secrets {
    /// `keys`: the master key (and during a rotation the previous one); `None` makes every
    /// request answer [`SecretsServiceError::Unavailable`] and every task that needs a secret
    /// fail.
    pub fn new(deps: Deps, store: Arc<dyn SecretStore>, keys: Option<MasterKeys>) -> Self {
        Self { deps, store, keys: keys.map(Arc::new) }
    }

    fn keys(&self) -> Result<&MasterKeys> {
        self.keys.as_deref().ok_or(SecretsServiceError::Unavailable)
    }

    /// Stores a new secret.
    ///
    /// # Errors
    /// [`SecretsServiceError`]: no master key, not allowed, a bad name or field, the name
    /// taken, no such tenant, the store.
    pub async fn create(
        &self,
        caller: &Principal,
        tenant: &TenantName,
        name: &str,
        fields: BTreeMap<String, String>,
    ) -> Result<SecretRecord> {
        self.put(caller, tenant, name, fields, SecretMode::Create).await
    }

    /// Replaces a secret's fields.
    ///
    /// # Errors
    /// As [`Secrets::create`], with no such secret instead of the name taken.
    pub async fn rotate(
        &self,
        caller: &Principal,
        tenant: &TenantName,
        name: &str,
        fields: BTreeMap<String, String>,
    ) -> Result<SecretRecord> {
        self.put(caller, tenant, name, fields, SecretMode::Rotate).await
    }

    async fn put(
        &self,
        caller: &Principal,
        tenant: &TenantName,
        name: &str,
        fields: BTreeMap<String, String>,
        mode: SecretMode,
    ) -> Result<SecretRecord> {
        let keys = self.keys()?;
        authorize(caller, Permission::SecretManage, Some(tenant))?;
        let name = name_of(name)?;
        let fields = SecretFields::new(fields).map_err(|(f, m)| SecretsServiceError::Invalid(f, m))?;
        let no_tenant = || SecretsServiceError::NoSuchTenant(tenant.clone());
        let (mut dek, mut wrapped, mut first) = match self.store.data_key(tenant).await?.ok_or_else(no_tenant)? {
            Some(w) => (keys.unwrap(tenant, &w)?, w, false),
            None => {
                let dek = DataKey::from_bytes(self.deps.keygen.secret());
                let w = keys.current.wrap(tenant, &dek, nonce(self.deps.keygen.secret()));
                (dek, w, true)
            }
        };
        let now = self.deps.clock.now();
        let record = SecretRecord {
            id: self.deps.keygen.key_id().as_uuid(),
            name: name.clone(),
            field_names: fields.names(),
            created_at: now,
            updated_at: now,
        };
        let action = match mode {
            SecretMode::Create => AuditAction::SecretCreate,
            SecretMode::Rotate => AuditAction::SecretRotate,
        };
        let audit = crate::audit::entry(now, caller, Some(tenant), action, name.as_str())
            .with("field_names", record.field_names.clone());
        // A second try only when another request made the tenant's first data key meanwhile.
        for _ in 0..2 {
            let sealed = dek.seal(tenant, &name, &fields, nonce(self.deps.keygen.secret()));
            let write = SecretWrite { record: record.clone(), sealed };
            match self.store.put_secret(tenant, &write, &wrapped, first, mode, &audit).await?.ok_or_else(no_tenant)? {
                SecretPut::Stored(r) => {
                    tracing::info!(%tenant, secret = name.as_str(), ?mode, by = %caller.key_id, "secret stored");
                    return Ok(r);
                }
                SecretPut::Exists => return Err(SecretsServiceError::Exists(name.as_str().to_owned())),
                SecretPut::Missing => return Err(SecretsServiceError::NoSuchSecret(name.as_str().to_owned())),
                SecretPut::KeyChanged(stored) => {
                    dek = keys.unwrap(tenant, &stored)?;
                    wrapped = stored;
                    first = false;
                }
            }
        }
        Err(StoreError::Unexpected("the tenant's data key kept changing".into()).into())
    }

    /// The tenant's secrets: names and field names only.
    ///
    /// # Errors
    /// No master key, not allowed, no such tenant, the store.
    pub async fn list(&self, caller: &Principal, tenant: &TenantName) -> Result<Vec<SecretRecord>> {
        self.keys()?;
        authorize(caller, Permission::SecretRead, Some(tenant))?;
        self.store.list_secrets(tenant).await?.ok_or_else(|| SecretsServiceError::NoSuchTenant(tenant.clone()))
    }

    /// One secret's metadata.
    ///
    /// # Errors
    /// No master key, not allowed, no such tenant or secret, the store.
    pub async fn get(&self, caller: &Principal, tenant: &TenantName, name: &str) -> Result<SecretRecord> {
        self.keys()?;
        authorize(caller, Permission::SecretRead, Some(tenant))?;
        let name = name_of(name)?;
        self.store.get_secret(tenant, &name).await?.found(
            || SecretsServiceError::NoSuchTenant(tenant.clone()),
            || SecretsServiceError::NoSuchSecret(name.as_str().to_owned()),
        )
    }

    /// Deletes a secret; tasks that need it fail from then on.
    ///
    /// # Errors
    /// No master key, not allowed, no such tenant or secret, the store.
    pub async fn delete(&self, caller: &Principal, tenant: &TenantName, name: &str) -> Result<SecretRecord> {
        self.keys()?;
        authorize(caller, Permission::SecretManage, Some(tenant))?;
        let name = name_of(name)?;
        let audit =
            crate::audit::entry(self.deps.clock.now(), caller, Some(tenant), AuditAction::SecretDelete, name.as_str());
        self.store.delete_secret(tenant, &name, &audit).await?.found(
            || SecretsServiceError::NoSuchTenant(tenant.clone()),
            || SecretsServiceError::NoSuchSecret(name.as_str().to_owned()),
        )
    }
}

#[async_trait]
impl SecretSource for Secrets {
    async fn resolve(
        &self,
        tenant: &TenantName,
        wanted: &BTreeMap<String, String>,
    ) -> std::result::Result<Vec<(String, Secret)>, String> {
        let keys = self.keys().map_err(|e| e.to_string())?;
        let refs: Vec<(String, SecretRef)> = wanted
            .iter()
            .map(|(var, r)| SecretRef::parse(r).map(|r| (var.clone(), r)))
            .collect::<std::result::Result<_, _>>()?;
        let mut names: Vec<SecretName> = refs.iter().map(|(_, r)| r.secret.clone()).collect();
        names.sort();
        names.dedup();
        let found = self.store.sealed_secrets(tenant, &names).await.map_err(|e| e.to_string())?;
        let found = found.ok_or_else(|| format!("tenant '{tenant}' does not exist"))?;
        let (key, sealed) = (found.key, found.secrets);
        let missing = |name: &SecretName| {
            format!("the task needs secret '{}', which tenant '{tenant}' does not have", name.as_str())
        };
        let Some(key) = key else { return Err(missing(&names[0])) };
        let dek = keys.unwrap(tenant, &key).map_err(|e| e.to_string())?;
        let mut opened = BTreeMap::new();
        for (name, s) in &sealed {
            opened.insert(name.clone(), dek.open(tenant, name, s).map_err(|e| e.to_string())?);
        }
        refs.into_iter()
            .map(|(var, r)| {
                let fields = opened.get(&r.secret).ok_or_else(|| missing(&r.secret))?;
                let value = fields
                    .get(&r.field)
                    .ok_or_else(|| format!("secret '{}' has no field '{}'", r.secret.as_str(), r.field))?;
                Ok((var, value.clone()))
            })
            .collect()
    }
}

/// What a master-key rotation did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Rewrapped {
    /// Data keys now wrapped by the new key.
    pub rewrapped: usize,
    /// Already wrapped by it (an earlier, interrupted run did them).
    pub already: usize,
    /// Tenants without secrets.
    pub without: usize,
}

/// Rewraps every listed tenant's data key from `old` to `new`, opening no secret. Resumable
/// and idempotent: a key wrapped by `new` already is left alone.
///
/// # Errors
/// A data key neither key opens, or the store's failure; what was done before stays done.
pub async fn rewrap(
    store: &dyn SecretStore,
    tenants: &[TenantName],
    old: &MasterKey,
    new: &MasterKey,
    keygen: &dyn KeyGenerator,
    clock: &dyn Clock,
) -> std::result::Result<Rewrapped, SecretsServiceError> {
    let mut done = Rewrapped::default();
    for tenant in tenants {
        let Some(Some(wrapped)) = store.data_key(tenant).await? else {
            done.without += 1;
            continue;
        };
        if wrapped.master_id == new.id() {
            done.already += 1;
            continue;
        }
        let dek = old.unwrap(tenant, &wrapped)?;
        let again: WrappedKey = new.wrap(tenant, &dek, nonce(keygen.secret()));
        if store.rewrap_data_key(tenant, &wrapped, &again, clock.now()).await? {
            done.rewrapped += 1;
        } else {
            done.already += 1;
        }
    }
    Ok(done)
}

/// A source with no secrets at all: for engines whose tasks declare none (benchmarks, tests).
/// A task that declares one fails, saying so.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSecrets;

#[async_trait]
impl SecretSource for NoSecrets {
    async fn resolve(
        &self,
        _tenant: &TenantName,
        _wanted: &BTreeMap<String, String>,
    ) -> std::result::Result<Vec<(String, Secret)>, String> {
        Err(SecretsServiceError::Unavailable.to_string())
    }
}
