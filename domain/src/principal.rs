//! Who a verified key is.

use chrono::{DateTime, Utc};

use crate::key::ApiKeyId;
use crate::role::Role;
use crate::tenant::TenantName;

/// What a key may reach. A key always has a tenant, or it is a god key: there is no third kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Authority {
    /// `is_admin`: every tenant, tenant management, god-key management.
    God,
    /// One tenant, with a role.
    Tenant { tenant: TenantName, role: Role },
}

impl Authority {
    /// The wire form of the key's rights: `admin` for god keys, else the role.
    pub fn permissions_label(&self) -> &'static str {
        match self {
            Authority::God => Role::Admin.as_str(),
            Authority::Tenant { role, .. } => role.as_str(),
        }
    }

    /// Whether this is a god key.
    pub fn is_god(&self) -> bool {
        matches!(self, Authority::God)
    }

    /// The key's tenant, if it is a tenant key.
    pub fn tenant(&self) -> Option<&TenantName> {
        match self {
            Authority::God => None,
            Authority::Tenant { tenant, .. } => Some(tenant),
        }
    }

    /// The role the key has: god keys count as `admin`.
    pub fn role(&self) -> Role {
        match self {
            Authority::God => Role::Admin,
            Authority::Tenant { role, .. } => *role,
        }
    }
}

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub key_id: ApiKeyId,
    pub key_name: String,
    pub authority: Authority,
    pub expires_at: Option<DateTime<Utc>>,
}
