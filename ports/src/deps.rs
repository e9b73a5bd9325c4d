//! The ports a service is built from.

use std::sync::Arc;

use cloacina_domain::ports::{Clock, KeyGenerator, KeyStore, SecretHasher, TenantDirectory};

use cloacina_domain::ports::Metrics;

/// Every port the services use, shared (`Arc<dyn _>`): cheap to clone, one set per process.
#[derive(Clone)]
pub struct Deps {
    pub keys: Arc<dyn KeyStore>,
    pub tenants: Arc<dyn TenantDirectory>,
    pub clock: Arc<dyn Clock>,
    pub keygen: Arc<dyn KeyGenerator>,
    pub hasher: Arc<dyn SecretHasher>,
    pub metrics: Arc<dyn Metrics>,
}

impl std::fmt::Debug for Deps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Deps")
    }
}
