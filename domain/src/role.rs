//! Roles within a tenant and the closed catalogue of permissions.

use std::fmt;
use std::str::FromStr;

/// A tenant key's role. Ordered: `Read < Write < Admin`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// List and inspect workflows, executions, triggers.
    Read,
    /// Also execute, upload packages, pause/resume, manage tenant resources.
    Write,
    /// Also create, list and revoke the tenant's keys, and read its audit log.
    Admin,
}

impl Role {
    /// Every role, lowest first.
    pub const ALL: [Role; 3] = [Role::Read, Role::Write, Role::Admin];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Write => "write",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text is not one of `read`, `write`, `admin`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("role must be one of: read, write, admin")]
pub struct RoleError;

impl FromStr for Role {
    type Err = RoleError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "read" => Ok(Role::Read),
            "write" => Ok(Role::Write),
            "admin" => Ok(Role::Admin),
            _ => Err(RoleError),
        }
    }
}

/// Everything a request can be allowed to do. Every route names exactly one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Permission {
    /// Any valid key may ask who it is.
    WhoAmI,
    // Deployment-wide, god keys only.
    TenantCreate,
    TenantList,
    TenantRead,
    TenantUpdate,
    TenantDelete,
    GodKeyManage,
    /// The control chain of the audit trail.
    DeploymentAuditRead,
    // Within one tenant.
    KeyList,
    KeyCreate,
    KeyRevoke,
    AuditRead,
    /// Trusting signing keys and requiring signed packages.
    SigningManage,
    /// A tenant's secrets' names and fields (never values).
    SecretRead,
    /// Creating, rotating and deleting a tenant's secrets.
    SecretManage,
    WorkflowRead,
    WorkflowUpload,
    WorkflowDelete,
    WorkflowPause,
    WorkflowExecute,
    ExecutionRead,
    ExecutionCancel,
    ExecutionRetry,
    TriggerRead,
    TriggerManage,
}

/// Where a permission applies and what it takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PermissionScope {
    /// Any authenticated key.
    AnyKey,
    /// Only god (`is_admin`) keys.
    GodOnly,
    /// A key of the target tenant with at least this role, or a god key.
    Tenant(Role),
}

impl Permission {
    /// The full catalogue.
    pub const ALL: [Permission; 25] = [
        Permission::WhoAmI,
        Permission::TenantCreate,
        Permission::TenantList,
        Permission::TenantRead,
        Permission::TenantUpdate,
        Permission::TenantDelete,
        Permission::GodKeyManage,
        Permission::DeploymentAuditRead,
        Permission::KeyList,
        Permission::KeyCreate,
        Permission::KeyRevoke,
        Permission::AuditRead,
        Permission::SigningManage,
        Permission::SecretRead,
        Permission::SecretManage,
        Permission::WorkflowRead,
        Permission::WorkflowUpload,
        Permission::WorkflowDelete,
        Permission::WorkflowPause,
        Permission::WorkflowExecute,
        Permission::ExecutionRead,
        Permission::ExecutionCancel,
        Permission::ExecutionRetry,
        Permission::TriggerRead,
        Permission::TriggerManage,
    ];

    /// What the permission requires.
    pub fn scope(self) -> PermissionScope {
        use Permission::*;
        match self {
            WhoAmI => PermissionScope::AnyKey,
            TenantCreate | TenantList | TenantRead | TenantUpdate | TenantDelete | GodKeyManage
            | DeploymentAuditRead => PermissionScope::GodOnly,
            KeyList | KeyCreate | KeyRevoke | AuditRead | SigningManage => PermissionScope::Tenant(Role::Admin),
            WorkflowUpload | WorkflowDelete | WorkflowPause | WorkflowExecute | ExecutionCancel | ExecutionRetry
            | TriggerManage | SecretManage => PermissionScope::Tenant(Role::Write),
            WorkflowRead | ExecutionRead | TriggerRead | SecretRead => PermissionScope::Tenant(Role::Read),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn roles_are_ordered_by_rights() {
        assert!(Role::Read < Role::Write && Role::Write < Role::Admin);
    }

    #[test]
    fn role_names_round_trip() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
        }
        assert!("Admin".parse::<Role>().is_err());
        assert!("owner".parse::<Role>().is_err());
    }

    #[test]
    fn key_management_within_a_tenant_needs_its_admin_role() {
        for p in [Permission::KeyCreate, Permission::KeyList, Permission::KeyRevoke] {
            assert_eq!(p.scope(), PermissionScope::Tenant(Role::Admin));
        }
    }

    proptest! {
        #[test]
        fn only_the_three_role_names_parse(s in "\\PC{0,12}") {
            let parsed = s.parse::<Role>();
            prop_assert_eq!(parsed.is_ok(), ["read", "write", "admin"].contains(&s.as_str()));
        }
    }
}
