//! Every advisory lock key the PostgreSQL backend takes, in one place, so that no two
//! purposes ever share a key (a shared key makes unrelated work wait on each other: the
//! leader holds its lock for as long as it leads). The keys are "cloacina" in ASCII plus a
//! small number; package locks use `hashtext`, whose 32-bit values cannot reach these.

/// Held while migrating (a session lock for the run).
pub(crate) const MIGRATE: i64 = 0x636c_6f61_6369_0001;
/// The bootstrap key's check-and-insert, and revoking a god key (transaction locks).
pub(crate) const BOOTSTRAP: i64 = 0x636c_6f61_6369_0002;
/// Tenant DDL, serialised (transaction locks): creates and deletes are rare, and catalog
/// updates of concurrent role grants can otherwise collide.
pub(crate) const TENANT_DDL: i64 = 0x636c_6f61_6369_0003;
/// The leader's, held on a session of its own for as long as it leads.
pub(crate) const LEADER: i64 = 0x636c_6f61_6369_0004;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_two_purposes_share_a_key_and_none_is_a_hashtext_value() {
        let keys = [MIGRATE, BOOTSTRAP, TENANT_DDL, LEADER];
        for (i, a) in keys.iter().enumerate() {
            assert!(*a > i64::from(i32::MAX), "{a:#x} is out of hashtext's range");
            for b in &keys[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }
}
