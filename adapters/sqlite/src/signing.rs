//! Signed packages on SQLite: the trusted keys, the policy, and the check an upload passes
//! in its own transaction ([`check_upload`]), with the domain deciding.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cloacina_domain::TenantName;
use cloacina_domain::audit::AuditEntry;
use cloacina_domain::package::{
    NewPackage, SignaturePolicy, SignatureRefused, SignerKey, TrustedSigner, VerifiedSignature, check_signature,
};
use cloacina_domain::ports::{Lookup, SignerAdded, SigningStore, StoreError};
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};

use crate::SqliteDb;
use crate::audit::append;
use crate::keys::ts;

const COLUMNS: &str = "id, name, public_key, created_at, created_by";

fn conv(col: usize, e: impl std::fmt::Display) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(col, rusqlite::types::Type::Text, e.to_string().into())
}

fn time(row: &Row<'_>, col: usize) -> rusqlite::Result<Option<DateTime<Utc>>> {
    row.get::<_, Option<String>>(col)?
        .map(|t| DateTime::parse_from_rfc3339(&t).map(|t| t.with_timezone(&Utc)).map_err(|e| conv(col, e)))
        .transpose()
}

fn signer(row: &Row<'_>) -> rusqlite::Result<TrustedSigner> {
    Ok(TrustedSigner {
        id: row.get::<_, String>(0)?.parse().map_err(|e| conv(0, e))?,
        name: row.get(1)?,
        key: SignerKey::parse(&row.get::<_, String>(2)?).map_err(|e| conv(2, e))?,
        created_at: time(row, 3)?.ok_or_else(|| conv(3, "no time"))?,
        created_by: row
            .get::<_, Option<String>>(4)?
            .map(|k| k.parse().map_err(|_| conv(4, "not a key id")))
            .transpose()?,
    })
}

fn signers(conn: &Connection) -> rusqlite::Result<Vec<TrustedSigner>> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM signing_keys ORDER BY name"))?.query_map([], signer)?.collect()
}

fn policy(conn: &Connection) -> rusqlite::Result<SignaturePolicy> {
    conn.query_row("SELECT require_signatures, updated_at, updated_by FROM signature_policy", [], |r| {
        Ok(SignaturePolicy {
            require_signatures: r.get(0)?,
            updated_at: time(r, 1)?,
            updated_by: r.get::<_, Option<String>>(2)?.and_then(|k| k.parse().ok()),
        })
    })
}

/// The domain's verdict on an upload's signature, from the policy and keys as this
/// transaction sees them.
pub(crate) fn check_upload(
    tx: &Connection,
    new: &NewPackage,
) -> rusqlite::Result<Result<Option<VerifiedSignature>, SignatureRefused>> {
    Ok(check_signature(&policy(tx)?, &new.content_hash, new.signature.as_deref(), &signers(tx)?))
}

/// Records the signature a stored version was accepted with.
pub(crate) fn record_signature(
    tx: &Connection,
    package: &str,
    v: &VerifiedSignature,
    at: DateTime<Utc>,
) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO package_signatures (package_id, signing_key_id, key_id, signer_name, registered_by, signature,
                                         verified_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            package,
            v.signer.id.to_string(),
            v.signer.key.id(),
            v.signer.name,
            v.signer.created_by.map(|k| k.to_string()),
            v.document,
            ts(at)
        ],
    )
    .map(drop)
}

#[async_trait]
impl SigningStore for SqliteDb {
    async fn add_signer(
        &self,
        tenant: &TenantName,
        new: &TrustedSigner,
        audit: &AuditEntry,
    ) -> Result<Option<SignerAdded>, StoreError> {
        if !tenant.is_public() {
            return Ok(None);
        }
        let (new, audit) = (new.clone(), audit.clone());
        self.write(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let held: Option<String> = tx
                .query_row("SELECT name FROM signing_keys WHERE key_id = ?1", [new.key.id()], |r| r.get(0))
                .optional()?;
            if let Some(name) = held {
                return Ok(Some(SignerAdded::KeyTaken(name)));
            }
            let taken: Option<i64> =
                tx.query_row("SELECT 1 FROM signing_keys WHERE name = ?1", [&new.name], |r| r.get(0)).optional()?;
            if taken.is_some() {
                return Ok(Some(SignerAdded::NameTaken));
            }
            tx.execute(
                "INSERT INTO signing_keys (id, name, key_id, public_key, created_at, created_by)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    new.id.to_string(),
                    new.name,
                    new.key.id(),
                    new.key.to_text(),
                    ts(new.created_at),
                    new.created_by.map(|k| k.to_string())
                ],
            )?;
            append(&tx, &audit)?;
            tx.commit()?;
            Ok(Some(SignerAdded::Added(Box::new(new))))
        })
        .await
    }

    async fn list_signers(&self, tenant: &TenantName) -> Result<Option<Vec<TrustedSigner>>, StoreError> {
        if !tenant.is_public() {
            return Ok(None);
        }
        self.read(|conn| signers(conn).map(Some)).await
    }

    async fn remove_signer(
        &self,
        tenant: &TenantName,
        name: &str,
        audit: &AuditEntry,
    ) -> Result<Lookup<TrustedSigner>, StoreError> {
        if !tenant.is_public() {
            return Ok(Lookup::NoTenant);
        }
        let (name, audit) = (name.to_owned(), audit.clone());
        self.write(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let found = tx
                .query_row(&format!("SELECT {COLUMNS} FROM signing_keys WHERE name = ?1"), [&name], signer)
                .optional()?;
            let Some(found) = found else { return Ok(Lookup::Missing) };
            tx.execute("DELETE FROM signing_keys WHERE name = ?1", [&name])?;
            append(&tx, &audit)?;
            tx.commit()?;
            Ok(Lookup::Found(found))
        })
        .await
    }

    async fn signature_policy(&self, tenant: &TenantName) -> Result<Option<SignaturePolicy>, StoreError> {
        if !tenant.is_public() {
            return Ok(None);
        }
        self.read(|conn| policy(conn).map(Some)).await
    }

    async fn set_signature_policy(
        &self,
        tenant: &TenantName,
        new: &SignaturePolicy,
        audit: &AuditEntry,
    ) -> Result<Option<SignaturePolicy>, StoreError> {
        if !tenant.is_public() {
            return Ok(None);
        }
        let (new, audit) = (new.clone(), audit.clone());
        self.write(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute(
                "UPDATE signature_policy SET require_signatures = ?1, updated_at = ?2, updated_by = ?3",
                params![new.require_signatures, new.updated_at.map(ts), new.updated_by.map(|k| k.to_string())],
            )?;
            append(&tx, &audit)?;
            let now = policy(&tx)?;
            tx.commit()?;
            Ok(Some(now))
        })
        .await
    }
}
