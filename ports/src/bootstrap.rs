//! The first god key, at start-up (docs/api.md, "Keys and roles", seed 001).

use cloacina_domain::audit::{AuditAction, AuditEntry, RequestOrigin};
use cloacina_domain::bootstrap::{BootstrapDecision, SuppliedBootstrapKey, decide};
use cloacina_domain::ports::{HashError, StoreError};
use cloacina_domain::{ApiKeyId, Authority, KeyName, MintedKey, NewKey, PresentedKey, Secret, StoredSecret};

use crate::Deps;

/// The name the bootstrap key's row carries.
pub const BOOTSTRAP_KEY_NAME: &str = "bootstrap-admin";

/// What start-up did.
#[derive(Debug)]
pub enum BootstrapOutcome {
    /// A god key was created; the caller writes `plaintext` to the bootstrap file.
    Created { key_id: ApiKeyId, plaintext: Secret, supplied: bool },
    /// An active god key existed (or another replica created one first).
    Skipped { supplied_ignored: bool },
}

/// Why bootstrap failed.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Hash(#[from] HashError),
}

/// Creates a god key if no active one exists. Safe to run on several replicas at once: the
/// store's atomic [`insert_first_god_key`](cloacina_domain::ports::KeyStore::insert_first_god_key)
/// lets exactly one win.
///
/// # Errors
/// [`BootstrapError`] if the store or the hasher fails.
pub async fn bootstrap(
    deps: &Deps,
    supplied: Option<SuppliedBootstrapKey>,
) -> Result<BootstrapOutcome, BootstrapError> {
    let now = deps.clock.now();
    let active = deps.keys.count_active_god_keys(now).await?;
    let decision = decide(active, supplied.is_some());
    let (id, secret, plaintext) = match (decision, &supplied) {
        (BootstrapDecision::Skip { supplied_ignored }, _) => return Ok(BootstrapOutcome::Skipped { supplied_ignored }),
        (BootstrapDecision::UseSupplied, Some(s)) => match s.key() {
            PresentedKey::Minted { id, digest } => (*id, StoredSecret::Sha256(*digest), s.text().clone()),
            PresentedKey::Supplied(text) => {
                (deps.keygen.key_id(), StoredSecret::Argon2(deps.hasher.hash(text).await?), text.clone())
            }
        },
        // `decide` answers UseSupplied only when a key was supplied.
        (BootstrapDecision::Generate | BootstrapDecision::UseSupplied, _) => {
            let minted = MintedKey::new(deps.keygen.key_id(), deps.keygen.secret());
            (minted.id(), StoredSecret::Sha256(minted.digest()), minted.plaintext())
        }
    };
    let new = NewKey {
        id,
        name: KeyName::parse(BOOTSTRAP_KEY_NAME).map_err(|e| StoreError::Unexpected(e.to_string()))?,
        authority: Authority::God,
        secret,
        created_at: now,
        created_by: None,
        expires_at: None,
    };
    let audit = AuditEntry::new(now, None, None, AuditAction::KeyCreate, id.to_string(), RequestOrigin::default())
        .with("name", BOOTSTRAP_KEY_NAME)
        .with("permissions", "admin")
        .with("bootstrap", true);
    if deps.keys.insert_first_god_key(&new, now, &audit).await? {
        Ok(BootstrapOutcome::Created { key_id: id, plaintext, supplied: supplied.is_some() })
    } else {
        Ok(BootstrapOutcome::Skipped { supplied_ignored: supplied.is_some() })
    }
}
