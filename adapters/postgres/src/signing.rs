//! Signed packages on PostgreSQL: the trusted keys and the policy in the tenant's schema, and
//! the check an upload passes in its own transaction ([`check_upload`]), the domain deciding.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cloacina_domain::ApiKeyId;
use cloacina_domain::TenantName;
use cloacina_domain::audit::AuditEntry;
use cloacina_domain::package::{
    NewPackage, SignaturePolicy, SignatureRefused, SignerKey, TrustedSigner, VerifiedSignature, check_signature,
};
use cloacina_domain::ports::{Lookup, SignerAdded, SigningStore, StoreError};
use sqlx::postgres::PgRow;
use sqlx::{AssertSqlSafe, PgConnection, Row};
use uuid::Uuid;

use crate::PgDb;
use crate::audit::append;
use crate::db::translate;

const COLUMNS: &str = "id, name, public_key, created_at, created_by";

fn signer(row: &PgRow) -> Result<TrustedSigner, sqlx::Error> {
    let key: String = row.try_get(2)?;
    Ok(TrustedSigner {
        id: row.try_get(0)?,
        name: row.try_get(1)?,
        key: SignerKey::parse(&key).map_err(|e| sqlx::Error::Decode(e.into()))?,
        created_at: row.try_get(3)?,
        created_by: row.try_get::<Option<Uuid>, _>(4)?.map(ApiKeyId::from_uuid),
    })
}

/// The trusted keys, locked against removal until the transaction ends when `lock`.
async fn signers(tx: &mut PgConnection, lock: bool) -> Result<Vec<TrustedSigner>, StoreError> {
    let lock = if lock { " FOR SHARE" } else { "" };
    let rows = sqlx::query(AssertSqlSafe(format!("SELECT {COLUMNS} FROM signing_keys ORDER BY name{lock}")))
        .fetch_all(&mut *tx)
        .await
        .map_err(translate)?;
    rows.iter().map(signer).collect::<Result<_, _>>().map_err(translate)
}

async fn policy(tx: &mut PgConnection, lock: bool) -> Result<SignaturePolicy, StoreError> {
    let lock = if lock { " FOR SHARE" } else { "" };
    let (require_signatures, updated_at, updated_by): (bool, Option<DateTime<Utc>>, Option<Uuid>) = sqlx::query_as(
        AssertSqlSafe(format!("SELECT require_signatures, updated_at, updated_by FROM signature_policy{lock}")),
    )
    .fetch_one(&mut *tx)
    .await
    .map_err(translate)?;
    Ok(SignaturePolicy { require_signatures, updated_at, updated_by: updated_by.map(ApiKeyId::from_uuid) })
}

/// The domain's verdict on an upload's signature, from the policy and keys as this
/// transaction sees them (both held until it ends, so a change waits for the upload).
pub(crate) async fn check_upload(
    tx: &mut PgConnection,
    new: &NewPackage,
) -> Result<Result<Option<VerifiedSignature>, SignatureRefused>, StoreError> {
    let policy = policy(tx, true).await?;
    let trusted = signers(tx, true).await?;
    Ok(check_signature(&policy, &new.content_hash, new.signature.as_deref(), &trusted))
}

/// Records the signature a stored version was accepted with.
pub(crate) async fn record_signature(
    tx: &mut PgConnection,
    package: Uuid,
    v: &VerifiedSignature,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO package_signatures (package_id, signing_key_id, key_id, signer_name, registered_by, signature,
                                         verified_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(package)
    .bind(v.signer.id)
    .bind(v.signer.key.id())
    .bind(&v.signer.name)
    .bind(v.signer.created_by.map(|k| k.as_uuid()))
    .bind(&v.document)
    .bind(at)
    .execute(&mut *tx)
    .await
    .map(drop)
    .map_err(translate)
}

#[async_trait]
impl SigningStore for PgDb {
    async fn add_signer(
        &self,
        tenant: &TenantName,
        new: &TrustedSigner,
        audit: &AuditEntry,
    ) -> Result<Option<SignerAdded>, StoreError> {
        let Some(mut tx) = self.begin_tenant(tenant).await? else { return Ok(None) };
        let inserted = sqlx::query(
            "INSERT INTO signing_keys (id, name, key_id, public_key, created_at, created_by)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        )
        .bind(new.id)
        .bind(&new.name)
        .bind(new.key.id())
        .bind(new.key.to_text())
        .bind(new.created_at)
        .bind(new.created_by.map(|k| k.as_uuid()))
        .execute(&mut *tx)
        .await
        .map_err(translate)?
        .rows_affected();
        if inserted == 0 {
            let held: Option<String> = sqlx::query_scalar("SELECT name FROM signing_keys WHERE key_id = $1")
                .bind(new.key.id())
                .fetch_optional(&mut *tx)
                .await
                .map_err(translate)?;
            return Ok(Some(held.map_or(SignerAdded::NameTaken, SignerAdded::KeyTaken)));
        }
        append(&mut tx, audit).await?;
        tx.commit().await.map_err(translate)?;
        Ok(Some(SignerAdded::Added(Box::new(new.clone()))))
    }

    async fn list_signers(&self, tenant: &TenantName) -> Result<Option<Vec<TrustedSigner>>, StoreError> {
        let Some(mut tx) = self.begin_tenant(tenant).await? else { return Ok(None) };
        let found = signers(&mut tx, false).await?;
        tx.commit().await.map_err(translate)?;
        Ok(Some(found))
    }

    async fn remove_signer(
        &self,
        tenant: &TenantName,
        name: &str,
        audit: &AuditEntry,
    ) -> Result<Lookup<TrustedSigner>, StoreError> {
        let Some(mut tx) = self.begin_tenant(tenant).await? else { return Ok(Lookup::NoTenant) };
        let gone = sqlx::query(AssertSqlSafe(format!("DELETE FROM signing_keys WHERE name = $1 RETURNING {COLUMNS}")))
            .bind(name)
            .fetch_optional(&mut *tx)
            .await
            .map_err(translate)?;
        let Some(gone) = gone else { return Ok(Lookup::Missing) };
        let gone = signer(&gone).map_err(translate)?;
        append(&mut tx, audit).await?;
        tx.commit().await.map_err(translate)?;
        Ok(Lookup::Found(gone))
    }

    async fn signature_policy(&self, tenant: &TenantName) -> Result<Option<SignaturePolicy>, StoreError> {
        let Some(mut tx) = self.begin_tenant(tenant).await? else { return Ok(None) };
        let found = policy(&mut tx, false).await?;
        tx.commit().await.map_err(translate)?;
        Ok(Some(found))
    }

    async fn set_signature_policy(
        &self,
        tenant: &TenantName,
        new: &SignaturePolicy,
        audit: &AuditEntry,
    ) -> Result<Option<SignaturePolicy>, StoreError> {
        let Some(mut tx) = self.begin_tenant(tenant).await? else { return Ok(None) };
        sqlx::query("UPDATE signature_policy SET require_signatures = $1, updated_at = $2, updated_by = $3")
            .bind(new.require_signatures)
            .bind(new.updated_at)
            .bind(new.updated_by.map(|k| k.as_uuid()))
            .execute(&mut *tx)
            .await
            .map_err(translate)?;
        append(&mut tx, audit).await?;
        let now = policy(&mut tx, false).await?;
        tx.commit().await.map_err(translate)?;
        Ok(Some(now))
    }
}
