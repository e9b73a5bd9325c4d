//! Authorisation decisions. Pure functions of who asks and what for; every refusal says why.

use chrono::{DateTime, Utc};

use crate::principal::{Authority, Principal};
use crate::role::{Permission, PermissionScope, Role};
use crate::tenant::TenantName;

/// Why a request is not allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("this action requires an admin (is_admin) key")]
    GodOnly,
    #[error("this key belongs to another tenant")]
    OtherTenant,
    #[error("this action requires the '{needed}' role")]
    InsufficientRole { needed: Role },
    /// A tenant permission asked about without a tenant: a wiring fault, refused (fail closed).
    #[error("no tenant given for a tenant-scoped action")]
    MissingTenant,
    #[error("a key cannot create a key with more rights than its own")]
    AboveOwnRights,
}

/// Decides whether `principal` holds `permission` on `target` (the tenant in the path, if any).
///
/// # Errors
/// A [`Denied`] naming the rule that refuses.
pub fn authorize(principal: &Principal, permission: Permission, target: Option<&TenantName>) -> Result<(), Denied> {
    match (permission.scope(), &principal.authority) {
        (PermissionScope::AnyKey, _) => Ok(()),
        (PermissionScope::GodOnly, Authority::God) => Ok(()),
        (PermissionScope::GodOnly, Authority::Tenant { .. }) => Err(Denied::GodOnly),
        (PermissionScope::Tenant(_), _) if target.is_none() => Err(Denied::MissingTenant),
        (PermissionScope::Tenant(_), Authority::God) => Ok(()),
        (PermissionScope::Tenant(needed), Authority::Tenant { tenant, role }) => {
            if Some(tenant) != target {
                Err(Denied::OtherTenant)
            } else if *role < needed {
                Err(Denied::InsufficientRole { needed })
            } else {
                Ok(())
            }
        }
    }
}

/// Decides whether `principal` may create a key with `requested` rights.
/// No key can mint a key with more rights than itself or for another tenant.
///
/// # Errors
/// A [`Denied`] naming the rule that refuses.
pub fn authorize_mint(principal: &Principal, requested: &Authority) -> Result<(), Denied> {
    match (&principal.authority, requested) {
        (Authority::God, _) => Ok(()),
        (Authority::Tenant { .. }, Authority::God) => Err(Denied::GodOnly),
        (Authority::Tenant { tenant, role }, Authority::Tenant { tenant: wanted, role: wanted_role }) => {
            if tenant != wanted {
                Err(Denied::OtherTenant)
            } else if *role < Role::Admin {
                Err(Denied::InsufficientRole { needed: Role::Admin })
            } else if wanted_role > role {
                Err(Denied::AboveOwnRights)
            } else {
                Ok(())
            }
        }
    }
}

/// Why a requested expiry is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpiryRefused {
    #[error("expires_at must be in the future")]
    InPast,
    #[error("expires_at must not be later than the creating key's own expiry ({0})")]
    AfterCreator(DateTime<Utc>),
}

/// The expiry a key minted by `principal` gets: a key never outlives its maker. With no
/// expiry asked for, a child of an expiring key expires with it; a later one is refused.
///
/// # Errors
/// [`ExpiryRefused`] for an expiry not after `now`, or after the creator's.
pub fn child_expiry(
    principal: &Principal,
    requested: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, ExpiryRefused> {
    if requested.is_some_and(|e| e <= now) {
        return Err(ExpiryRefused::InPast);
    }
    match (requested, principal.expires_at) {
        (Some(wanted), Some(own)) if wanted > own => Err(ExpiryRefused::AfterCreator(own)),
        (None, own) => Ok(own),
        (wanted, _) => Ok(wanted),
    }
}

/// Decides whether `principal` may revoke (or see) a key with `target` rights.
///
/// # Errors
/// A [`Denied`] naming the rule that refuses.
pub fn authorize_key_access(principal: &Principal, target: &Authority) -> Result<(), Denied> {
    match (&principal.authority, target) {
        (Authority::God, _) => Ok(()),
        (Authority::Tenant { .. }, Authority::God) => Err(Denied::GodOnly),
        (Authority::Tenant { tenant, role }, Authority::Tenant { tenant: other, .. }) => {
            if tenant != other {
                Err(Denied::OtherTenant)
            } else if *role < Role::Admin {
                Err(Denied::InsufficientRole { needed: Role::Admin })
            } else {
                Ok(())
            }
        }
    }
}

/// Which key a deployment-wide create (`POST /v1/auth/keys`) makes (docs/api.md, "Keys and roles"): with no
/// tenant, a god key for no role or `admin`, and a key of `public` for `read` or `write` (the
/// reference server's rule); with a tenant, a key of it, `read` unless a role is given.
pub fn created_authority(tenant: Option<TenantName>, role: Option<Role>) -> Authority {
    match (tenant, role) {
        (None, None | Some(Role::Admin)) => Authority::God,
        (None, Some(role)) => Authority::Tenant { tenant: TenantName::public(), role },
        (Some(tenant), role) => Authority::Tenant { tenant, role: role.unwrap_or(Role::Read) },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::ApiKeyId;
    use uuid::Uuid;

    fn principal(authority: Authority) -> Principal {
        Principal { key_id: ApiKeyId::from_uuid(Uuid::nil()), key_name: "k".into(), authority, expires_at: None }
    }
    fn tenant(name: &str, role: Role) -> Authority {
        Authority::Tenant { tenant: TenantName::parse(name).unwrap(), role }
    }
    fn t(name: &str) -> TenantName {
        TenantName::parse(name).unwrap()
    }

    #[test]
    fn a_key_never_outlives_the_key_that_made_it() {
        let now = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap().to_utc();
        let hour = chrono::Duration::hours(1);
        let mut maker = principal(Authority::God);
        assert_eq!(child_expiry(&maker, None, now), Ok(None));
        assert_eq!(child_expiry(&maker, Some(now + hour), now), Ok(Some(now + hour)));
        maker.expires_at = Some(now + hour);
        assert_eq!(child_expiry(&maker, None, now), Ok(Some(now + hour)), "capped to the maker's expiry");
        assert_eq!(child_expiry(&maker, Some(now + hour), now), Ok(Some(now + hour)));
        assert_eq!(child_expiry(&maker, Some(now + hour / 2), now), Ok(Some(now + hour / 2)));
        assert_eq!(child_expiry(&maker, Some(now + hour * 2), now), Err(ExpiryRefused::AfterCreator(now + hour)));
        assert_eq!(child_expiry(&maker, Some(now), now), Err(ExpiryRefused::InPast));
    }

    #[test]
    fn a_god_key_holds_every_permission_on_every_tenant() {
        let god = principal(Authority::God);
        for p in Permission::ALL {
            assert_eq!(authorize(&god, p, Some(&t("acme"))), Ok(()), "{p:?}");
        }
    }

    #[test]
    fn a_tenant_key_is_refused_on_another_tenant_whatever_its_role() {
        let admin = principal(tenant("acme", Role::Admin));
        assert_eq!(authorize(&admin, Permission::WorkflowRead, Some(&t("globex"))), Err(Denied::OtherTenant));
    }

    #[test]
    fn a_tenant_key_never_holds_deployment_wide_permissions() {
        let admin = principal(tenant("acme", Role::Admin));
        for p in [Permission::TenantCreate, Permission::TenantList, Permission::GodKeyManage] {
            assert_eq!(authorize(&admin, p, None), Err(Denied::GodOnly));
        }
    }

    #[test]
    fn roles_grant_exactly_their_level_and_below() {
        for role in Role::ALL {
            let p = principal(tenant("acme", role));
            for perm in Permission::ALL {
                if let PermissionScope::Tenant(needed) = perm.scope() {
                    let got = authorize(&p, perm, Some(&t("acme")));
                    assert_eq!(got.is_ok(), role >= needed, "{role:?} {perm:?}");
                }
            }
        }
    }

    #[test]
    fn a_tenant_permission_without_a_tenant_is_refused() {
        let god = principal(Authority::God);
        assert_eq!(authorize(&god, Permission::WorkflowRead, None), Err(Denied::MissingTenant));
    }

    #[test]
    fn a_tenant_admin_mints_only_for_its_own_tenant_and_never_god_keys() {
        let admin = principal(tenant("acme", Role::Admin));
        assert_eq!(authorize_mint(&admin, &tenant("acme", Role::Admin)), Ok(()));
        assert_eq!(authorize_mint(&admin, &tenant("acme", Role::Read)), Ok(()));
        assert_eq!(authorize_mint(&admin, &tenant("globex", Role::Read)), Err(Denied::OtherTenant));
        assert_eq!(authorize_mint(&admin, &Authority::God), Err(Denied::GodOnly));
    }

    #[test]
    fn a_writer_cannot_mint_keys() {
        let writer = principal(tenant("acme", Role::Write));
        assert_eq!(
            authorize_mint(&writer, &tenant("acme", Role::Read)),
            Err(Denied::InsufficientRole { needed: Role::Admin })
        );
    }

    #[test]
    fn a_tenant_admin_reaches_only_its_own_tenants_keys() {
        let admin = principal(tenant("acme", Role::Admin));
        assert_eq!(authorize_key_access(&admin, &tenant("acme", Role::Write)), Ok(()));
        assert_eq!(authorize_key_access(&admin, &tenant("globex", Role::Read)), Err(Denied::OtherTenant));
        assert_eq!(authorize_key_access(&admin, &Authority::God), Err(Denied::GodOnly));
    }

    #[test]
    fn a_create_without_a_tenant_makes_a_god_key_or_a_public_key_by_role() {
        assert_eq!(created_authority(None, None), Authority::God);
        assert_eq!(created_authority(None, Some(Role::Admin)), Authority::God);
        for role in [Role::Read, Role::Write] {
            assert_eq!(created_authority(None, Some(role)), tenant("public", role));
        }
        assert_eq!(created_authority(Some(t("acme")), None), tenant("acme", Role::Read), "least privilege");
        assert_eq!(created_authority(Some(t("acme")), Some(Role::Admin)), tenant("acme", Role::Admin));
    }
}
