//! Tenant management: create, list, inspect, delete (docs/postgres.md). God keys only.

use std::sync::Arc;

use cloacina_domain::audit::AuditAction;
use cloacina_domain::authz::authorize;
use cloacina_domain::ports::{StoreError, TenantCreated, TenantDeleted, TenantStore};
use cloacina_domain::tenant::{TenantPassword, role_password};
use cloacina_domain::{
    Denied, NewTenant, Permission, Principal, Setting, TenantChange, TenantDescription, TenantName, TenantRecord,
};

use crate::{Authenticator, Deps};

/// Tenant management. Deletion also forgets every cached key of this process; other
/// replicas are told by the store.
#[derive(Clone)]
pub struct Tenants {
    deps: Deps,
    store: Arc<dyn TenantStore>,
    auth: Arc<Authenticator>,
}

impl std::fmt::Debug for Tenants {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tenants")
    }
}

/// Why a tenant operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TenantError {
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error("tenant '{0}' already exists")]
    Exists(TenantName),
    #[error("tenant '{0}' does not exist")]
    NotFound(TenantName),
    #[error("tenant 'public' is built in and cannot be deleted")]
    Builtin,
    /// Multi-tenancy on a single-tenant backend; the text says what is needed.
    #[error("{0}")]
    Unsupported(String),
    /// An import's stream is not a tenant export this server reads: the line, and why.
    #[error("the export is invalid at line {0}: {1}")]
    Invalid(u64, String),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for TenantError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unsupported(m) => TenantError::Unsupported(m),
            other => TenantError::Store(other),
        }
    }
}

/// What a deletion did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletedTenant {
    pub record: TenantRecord,
    /// Active keys of the tenant that were revoked with it.
    pub revoked_keys: u64,
}

impl Tenants {
    pub fn new(deps: Deps, store: Arc<dyn TenantStore>, auth: Arc<Authenticator>) -> Self {
        Self { deps, store, auth }
    }

    /// Creates tenant `name`: registry row, schema, role (with `password`, else a random one
    /// nobody is shown) and tables, all or nothing.
    ///
    /// # Errors
    /// [`TenantError`]: not a god key, the name taken, a single-tenant backend, the store.
    pub async fn create(
        &self,
        caller: &Principal,
        name: TenantName,
        description: Option<TenantDescription>,
        password: Option<TenantPassword>,
    ) -> Result<TenantRecord, TenantError> {
        authorize(caller, Permission::TenantCreate, None)?;
        let new = NewTenant {
            name: name.clone(),
            description,
            db_password: password.map_or_else(|| role_password(self.deps.keygen.secret()), TenantPassword::into_secret),
            created_at: self.deps.clock.now(),
        };
        let audit = crate::audit::entry(new.created_at, caller, None, AuditAction::TenantCreate, name.as_str());
        let record = match self.store.create_tenant(&new, &audit).await? {
            TenantCreated::Created(record) => record,
            TenantCreated::NameTaken => return Err(TenantError::Exists(name)),
        };
        tracing::info!(tenant = %record.name, schema = %record.schema, created_by = %caller.key_id, "tenant created");
        Ok(record)
    }

    /// Every tenant, `public` first.
    ///
    /// # Errors
    /// [`TenantError::Denied`] for a tenant key, or the store's failure.
    pub async fn list(&self, caller: &Principal) -> Result<Vec<TenantRecord>, TenantError> {
        authorize(caller, Permission::TenantList, None)?;
        Ok(self.store.list_tenants().await?)
    }

    /// One tenant.
    ///
    /// # Errors
    /// [`TenantError::Denied`], [`TenantError::NotFound`], or the store's failure.
    pub async fn get(&self, caller: &Principal, name: &TenantName) -> Result<TenantRecord, TenantError> {
        authorize(caller, Permission::TenantRead, None)?;
        self.store.get_tenant(name).await?.ok_or_else(|| TenantError::NotFound(name.clone()))
    }

    /// The tenant's own request rate limit per key, if a god key set one: for the server's
    /// guard, which asks about the caller's own tenant (so no permission is checked).
    ///
    /// # Errors
    /// The store's failure.
    pub async fn rate_limit_per_key(&self, name: &TenantName) -> Result<Option<u32>, StoreError> {
        Ok(self.store.get_tenant(name).await?.and_then(|t| t.rate_limit_per_key))
    }

    /// Changes a tenant's settings and returns it as it now is. Attempts claimed from then on,
    /// on every replica, run with them.
    ///
    /// # Errors
    /// [`TenantError::Denied`] for a tenant key, [`TenantError::NotFound`], or the store's
    /// failure.
    pub async fn update(
        &self,
        caller: &Principal,
        name: &TenantName,
        change: &TenantChange,
    ) -> Result<TenantRecord, TenantError> {
        authorize(caller, Permission::TenantUpdate, None)?;
        let mut audit =
            crate::audit::entry(self.deps.clock.now(), caller, None, AuditAction::TenantUpdate, name.as_str());
        match change.task_network {
            Setting::Keep => {}
            Setting::Default => audit = audit.with("task_network", "default"),
            Setting::Set(n) => audit = audit.with("task_network", n.as_str()),
        }
        match change.rate_limit_per_key {
            Setting::Keep => {}
            Setting::Default => audit = audit.with("rate_limit_per_key", "default"),
            Setting::Set(n) => audit = audit.with("rate_limit_per_key", n),
        }
        let record =
            self.store.update_tenant(name, change, &audit).await?.ok_or_else(|| TenantError::NotFound(name.clone()))?;
        if change.task_network != Setting::Keep {
            let network = change.task_network.applied_to(None).map_or("the deployment's default", |n| n.as_str());
            tracing::info!(tenant = %name, task_network = network, updated_by = %caller.key_id, "tenant task network set");
        }
        Ok(record)
    }

    /// Deletes a tenant: validated first (it exists, it is not `public`), then its keys are
    /// revoked and its schema and role dropped in one transaction, and every cache forgets it.
    ///
    /// # Errors
    /// [`TenantError`]: not a god key, `public`, no such tenant, a single-tenant backend, the
    /// store.
    pub async fn delete(&self, caller: &Principal, name: &TenantName) -> Result<DeletedTenant, TenantError> {
        authorize(caller, Permission::TenantDelete, None)?;
        if name.is_public() {
            return Err(TenantError::Builtin);
        }
        let record = self.store.get_tenant(name).await?;
        let Some(record) = record else {
            // A single-tenant backend says so rather than "not found".
            let audit =
                crate::audit::entry(self.deps.clock.now(), caller, None, AuditAction::TenantDelete, name.as_str());
            self.store.delete_tenant(name, self.deps.clock.now(), &audit).await?;
            return Err(TenantError::NotFound(name.clone()));
        };
        let now = self.deps.clock.now();
        let audit = crate::audit::entry(now, caller, None, AuditAction::TenantDelete, name.as_str());
        match self.store.delete_tenant(name, now, &audit).await? {
            TenantDeleted::NotFound => Err(TenantError::NotFound(name.clone())),
            TenantDeleted::Deleted { revoked_keys } => {
                self.auth.forget_all();
                tracing::info!(tenant = %name, revoked_keys, deleted_by = %caller.key_id, "tenant deleted");
                Ok(DeletedTenant { record, revoked_keys })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use cloacina_domain::ports::{
        MockClock, MockKeyGenerator, MockKeyStore, MockSecretHasher, MockTenantDirectory, MockTenantStore,
    };
    use cloacina_domain::{ApiKeyId, Authority, Role};
    use std::time::Duration;

    fn deps() -> Deps {
        let mut clock = MockClock::new();
        clock.expect_now().returning(|| Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap());
        let mut keygen = MockKeyGenerator::new();
        keygen.expect_secret().returning(|| [9; 32]);
        Deps {
            keys: Arc::new(MockKeyStore::new()),
            tenants: Arc::new(MockTenantDirectory::new()),
            clock: Arc::new(clock),
            keygen: Arc::new(keygen),
            hasher: Arc::new(MockSecretHasher::new()),
            metrics: Arc::new(crate::NoMetrics),
        }
    }

    fn service(store: MockTenantStore) -> Tenants {
        let deps = deps();
        let auth = Arc::new(Authenticator::new(&deps, Duration::from_secs(30), 16));
        Tenants::new(deps, Arc::new(store), auth)
    }

    fn caller(authority: Authority) -> Principal {
        Principal { key_id: ApiKeyId::from_uuid(uuid::Uuid::nil()), key_name: "k".into(), authority, expires_at: None }
    }

    fn acme() -> TenantName {
        TenantName::parse("acme").unwrap()
    }

    #[tokio::test]
    async fn a_tenant_admin_can_neither_create_nor_delete_tenants_and_the_store_is_never_asked() {
        let tenants = service(MockTenantStore::new());
        let admin = caller(Authority::Tenant { tenant: acme(), role: Role::Admin });
        assert!(matches!(tenants.create(&admin, acme(), None, None).await, Err(TenantError::Denied(_))));
        assert!(matches!(tenants.delete(&admin, &acme()).await, Err(TenantError::Denied(_))));
        assert!(matches!(tenants.list(&admin).await, Err(TenantError::Denied(_))));
    }

    #[tokio::test]
    async fn only_a_god_key_changes_a_tenant_and_an_unknown_one_is_not_found() {
        let change =
            TenantChange { task_network: Setting::Set(cloacina_domain::TaskNetwork::Host), ..TenantChange::default() };
        let tenants = service(MockTenantStore::new());
        for authority in [
            Authority::Tenant { tenant: acme(), role: Role::Admin },
            Authority::Tenant { tenant: acme(), role: Role::Write },
        ] {
            assert!(matches!(tenants.update(&caller(authority), &acme(), &change).await, Err(TenantError::Denied(_))));
        }
        let mut store = MockTenantStore::new();
        store.expect_update_tenant().returning(|_, _, _| Ok(None));
        let err = service(store).update(&caller(Authority::God), &acme(), &change).await.unwrap_err();
        assert!(matches!(err, TenantError::NotFound(n) if n == acme()));
    }

    #[tokio::test]
    async fn public_cannot_be_deleted() {
        let tenants = service(MockTenantStore::new());
        assert!(matches!(
            tenants.delete(&caller(Authority::God), &TenantName::public()).await,
            Err(TenantError::Builtin)
        ));
    }

    #[tokio::test]
    async fn a_taken_name_is_reported_as_such_and_the_password_is_random_url_safe_text() {
        let mut store = MockTenantStore::new();
        store
            .expect_create_tenant()
            .withf(|new, _| new.db_password.expose().len() == 43 && !new.db_password.expose().contains('\''))
            .returning(|_, _| Ok(TenantCreated::NameTaken));
        let err = service(store).create(&caller(Authority::God), acme(), None, None).await.unwrap_err();
        assert!(matches!(err, TenantError::Exists(n) if n == acme()));
    }

    #[tokio::test]
    async fn deleting_an_unknown_tenant_is_not_found() {
        let mut store = MockTenantStore::new();
        store.expect_get_tenant().returning(|_| Ok(None));
        store.expect_delete_tenant().returning(|_, _, _| Ok(TenantDeleted::NotFound));
        let err = service(store).delete(&caller(Authority::God), &acme()).await.unwrap_err();
        assert!(matches!(err, TenantError::NotFound(_)));
    }
}
