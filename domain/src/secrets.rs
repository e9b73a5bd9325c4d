//! Tenant secrets, sealed by envelope encryption (docs/secrets.md).
//!
//! Each tenant has a data key of 32 random bytes, stored only wrapped (AES-256-GCM) by the
//! deployment's master key, with the tenant's name as associated data. Each secret's fields
//! are sealed (AES-256-GCM) by its tenant's data key, with the tenant and the secret's name as
//! associated data: a ciphertext copied into another secret's row, or another tenant's, does
//! not open. Rotating the master key rewraps data keys and never touches a secret's ciphertext.
//! Values are [`Secret`]s: they never print.

use std::collections::BTreeMap;
use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::secret::Secret;
use crate::tenant::TenantName;

/// Why a secret could not be sealed or opened, or a key read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretsError {
    #[error("the master key is invalid: {0}")]
    BadMasterKey(String),
    #[error("the data key of tenant '{0}' does not open with this master key (id {1}): it was wrapped by key {2}")]
    WrongMasterKey(String, String, String),
    #[error("a stored secret does not open: its ciphertext was altered or belongs elsewhere")]
    Tampered,
}

/// 32 bytes, from a random source.
fn cipher(key: &[u8; 32]) -> Aes256Gcm {
    Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key))
}

fn seal(key: &[u8; 32], nonce: [u8; 12], plain: &[u8], aad: &[u8]) -> Vec<u8> {
    // Encryption with a 12-byte nonce and a valid key cannot fail.
    cipher(key).encrypt(Nonce::from_slice(&nonce), Payload { msg: plain, aad }).unwrap_or_default()
}

fn open(key: &[u8; 32], nonce: &[u8; 12], sealed: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
    cipher(key).decrypt(Nonce::from_slice(nonce), Payload { msg: sealed, aad }).ok()
}

/// The deployment's master key: `CLOACINA_MASTER_KEY` or `--master-key-file`, 32 random bytes
/// in base64. It wraps tenants' data keys and nothing else.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey({}, [redacted])", self.id())
    }
}

impl MasterKey {
    /// Reads 32 bytes in base64 (surrounding whitespace ignored).
    ///
    /// # Errors
    /// [`SecretsError::BadMasterKey`] saying what is wrong, never the text.
    pub fn parse(text: &str) -> Result<Self, SecretsError> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| SecretsError::BadMasterKey("not base64 (make one with: openssl rand -base64 32)".into()))?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|v: Vec<u8>| {
            SecretsError::BadMasterKey(format!("{} bytes, not 32 (make one with: openssl rand -base64 32)", v.len()))
        })?;
        Ok(Self(bytes))
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Which key this is: the first 8 bytes of the SHA-256 of a fixed label and the key, hex.
    /// Stored beside each wrapped data key, so a rewrap knows what it has done.
    pub fn id(&self) -> String {
        Sha256::digest([b"cloacina-master-key-id\0".as_slice(), &self.0].concat())[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    fn aad(tenant: &TenantName) -> Vec<u8> {
        format!("cloacina-data-key\0{tenant}").into_bytes()
    }

    /// Wraps a tenant's data key.
    pub fn wrap(&self, tenant: &TenantName, key: &DataKey, nonce: [u8; 12]) -> WrappedKey {
        WrappedKey { master_id: self.id(), nonce, sealed: seal(&self.0, nonce, &key.0, &Self::aad(tenant)) }
    }

    /// Opens a tenant's wrapped data key.
    ///
    /// # Errors
    /// [`SecretsError::WrongMasterKey`] when another master key wrapped it, or it was altered.
    pub fn unwrap(&self, tenant: &TenantName, wrapped: &WrappedKey) -> Result<DataKey, SecretsError> {
        let wrong = || SecretsError::WrongMasterKey(tenant.to_string(), self.id(), wrapped.master_id.clone());
        let bytes = open(&self.0, &wrapped.nonce, &wrapped.sealed, &Self::aad(tenant)).ok_or_else(wrong)?;
        Ok(DataKey(bytes.try_into().map_err(|_| wrong())?))
    }
}

/// The keys a server may unwrap with: the one it wraps new data keys with, and during a
/// rotation the previous one.
#[derive(Clone, Debug)]
pub struct MasterKeys {
    pub current: MasterKey,
    pub previous: Option<MasterKey>,
}

impl MasterKeys {
    /// Opens a data key with whichever key wrapped it.
    ///
    /// # Errors
    /// [`SecretsError::WrongMasterKey`] when neither did.
    pub fn unwrap(&self, tenant: &TenantName, wrapped: &WrappedKey) -> Result<DataKey, SecretsError> {
        match &self.previous {
            Some(previous) if previous.id() == wrapped.master_id => previous.unwrap(tenant, wrapped),
            _ => self.current.unwrap(tenant, wrapped),
        }
    }
}

/// A tenant's data key: 32 random bytes. Never stored unwrapped, never printed.
pub struct DataKey([u8; 32]);

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey([redacted])")
    }
}

impl DataKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    fn aad(tenant: &TenantName, name: &SecretName) -> Vec<u8> {
        format!("cloacina-secret\0{tenant}\0{}", name.as_str()).into_bytes()
    }

    /// Seals a secret's fields, bound to its tenant and name.
    pub fn seal(&self, tenant: &TenantName, name: &SecretName, fields: &SecretFields, nonce: [u8; 12]) -> SealedSecret {
        let plain: BTreeMap<&str, &str> = fields.0.iter().map(|(k, v)| (k.as_str(), v.expose())).collect();
        let text = serde_json::to_vec(&plain).unwrap_or_default();
        SealedSecret { nonce, sealed: seal(&self.0, nonce, &text, &Self::aad(tenant, name)) }
    }

    /// Opens a secret sealed for this tenant and name.
    ///
    /// # Errors
    /// [`SecretsError::Tampered`] when the ciphertext was altered, or sealed for another
    /// secret, tenant or data key.
    pub fn open(&self, tenant: &TenantName, name: &SecretName, s: &SealedSecret) -> Result<SecretFields, SecretsError> {
        let plain = open(&self.0, &s.nonce, &s.sealed, &Self::aad(tenant, name)).ok_or(SecretsError::Tampered)?;
        let map: BTreeMap<String, String> = serde_json::from_slice(&plain).map_err(|_| SecretsError::Tampered)?;
        Ok(SecretFields(map.into_iter().map(|(k, v)| (k, Secret::new(v))).collect()))
    }
}

/// A data key as stored: sealed by the master key `master_id`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrappedKey {
    pub master_id: String,
    pub nonce: [u8; 12],
    pub sealed: Vec<u8>,
}

/// A secret's fields as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedSecret {
    pub nonce: [u8; 12],
    pub sealed: Vec<u8>,
}

/// A secret's name: 1 to 64 of `[a-z0-9_-]`, starting with a letter or digit.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SecretName(String);

impl SecretName {
    /// # Errors
    /// What is wrong with it.
    pub fn parse(text: &str) -> Result<Self, String> {
        let ok = (1..=64).contains(&text.len())
            && text.bytes().next().is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            && text.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if ok {
            Ok(Self(text.to_owned()))
        } else {
            Err(format!(
                "'{text}' is not a secret name: 1 to 64 of a-z, 0-9, '-' and '_', starting with a letter or digit"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whether `name` may name a field: 1 to 64 of `[A-Za-z0-9_-]`.
pub fn valid_field_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The most a secret's fields may hold together, in bytes.
pub const MAX_SECRET_BYTES: usize = 64 * 1024;

/// A secret's fields: at least one, each name valid, values never printed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretFields(BTreeMap<String, Secret>);

impl SecretFields {
    /// # Errors
    /// `(field, message)`: the field at fault (`fields.NAME`) and what is wrong.
    pub fn new(fields: BTreeMap<String, String>) -> Result<Self, (String, String)> {
        if fields.is_empty() {
            return Err(("fields".into(), "a secret has at least one field".into()));
        }
        let mut size = 0;
        for (k, v) in &fields {
            if !valid_field_name(k) {
                return Err((format!("fields.{k}"), "a field name is 1 to 64 of A-Z, a-z, 0-9, '-' and '_'".into()));
            }
            if v.contains('\0') {
                return Err((format!("fields.{k}"), "a value must not contain a NUL character".into()));
            }
            size += k.len() + v.len();
        }
        if size > MAX_SECRET_BYTES {
            return Err(("fields".into(), format!("a secret holds at most {MAX_SECRET_BYTES} bytes")));
        }
        Ok(Self(fields.into_iter().map(|(k, v)| (k, Secret::new(v))).collect()))
    }

    pub fn names(&self) -> Vec<String> {
        self.0.keys().cloned().collect()
    }

    pub fn get(&self, field: &str) -> Option<&Secret> {
        self.0.get(field)
    }
}

/// What a task declares it needs: `secret.field`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SecretRef {
    pub secret: SecretName,
    pub field: String,
}

impl SecretRef {
    /// Reads `name.field`.
    ///
    /// # Errors
    /// What is wrong with it.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (secret, field) = text
            .split_once('.')
            .ok_or_else(|| format!("'{text}' is not a secret field: write it as \"secret-name.field\""))?;
        if !valid_field_name(field) {
            return Err(format!("'{field}' is not a field name: 1 to 64 of A-Z, a-z, 0-9, '-' and '_'"));
        }
        Ok(Self { secret: SecretName::parse(secret)?, field: field.to_owned() })
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.secret.as_str(), self.field)
    }
}

/// A secret as listings show it: never a value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretRecord {
    pub id: Uuid,
    pub name: SecretName,
    pub field_names: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A secret being written: its metadata and its sealed fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretWrite {
    pub record: SecretRecord,
    pub sealed: SealedSecret,
}

/// Base64 of bytes, as stores keep them in text columns.
pub fn to_base64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Bytes from [`to_base64`].
pub fn from_base64(text: &str) -> Option<Vec<u8>> {
    STANDARD.decode(text).ok()
}

/// Replaces every occurrence of each value in `text` with `***` (values shorter than 4
/// characters are left, since masking them would garble ordinary output and hide nothing).
pub fn mask(text: &str, values: &[&str]) -> String {
    let mut out = text.to_owned();
    for v in values.iter().filter(|v| v.len() >= 4) {
        if out.contains(*v) {
            out = out.replace(*v, "***");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> SecretFields {
        SecretFields::new(pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()).unwrap()
    }

    fn t(name: &str) -> TenantName {
        TenantName::parse(name).unwrap()
    }

    #[test]
    fn a_secret_sealed_for_a_tenant_and_name_opens_only_there() {
        let key = DataKey::from_bytes([3; 32]);
        let name = SecretName::parse("db").unwrap();
        let sealed = key.seal(&t("acme"), &name, &fields(&[("password", "hunter2-canary")]), [1; 12]);
        let opened = key.open(&t("acme"), &name, &sealed).unwrap();
        assert_eq!(opened.get("password").map(Secret::expose), Some("hunter2-canary"));
        assert_eq!(key.open(&t("globex"), &name, &sealed), Err(SecretsError::Tampered), "another tenant");
        let other = SecretName::parse("api").unwrap();
        assert_eq!(key.open(&t("acme"), &other, &sealed), Err(SecretsError::Tampered), "another name");
        assert_eq!(DataKey::from_bytes([4; 32]).open(&t("acme"), &name, &sealed), Err(SecretsError::Tampered));
        let mut flipped = sealed.clone();
        flipped.sealed[0] ^= 1;
        assert_eq!(key.open(&t("acme"), &name, &flipped), Err(SecretsError::Tampered));
    }

    #[test]
    fn a_data_key_rewrapped_under_a_new_master_key_opens_the_same_secrets() {
        let (old, new) = (MasterKey::from_bytes([1; 32]), MasterKey::from_bytes([2; 32]));
        let dek = DataKey::from_bytes([9; 32]);
        let name = SecretName::parse("db").unwrap();
        let sealed = dek.seal(&t("acme"), &name, &fields(&[("password", "s3cret!")]), [5; 12]);
        let wrapped = old.wrap(&t("acme"), &dek, [6; 12]);
        assert_eq!(wrapped.master_id, old.id());
        let rewrapped = new.wrap(&t("acme"), &old.unwrap(&t("acme"), &wrapped).unwrap(), [7; 12]);
        let opened = new.unwrap(&t("acme"), &rewrapped).unwrap().open(&t("acme"), &name, &sealed).unwrap();
        assert_eq!(opened.get("password").map(Secret::expose), Some("s3cret!"));
        assert!(matches!(old.unwrap(&t("acme"), &rewrapped), Err(SecretsError::WrongMasterKey(..))));
        assert!(new.unwrap(&t("globex"), &rewrapped).is_err(), "a wrapped key is bound to its tenant");
        let both = MasterKeys { current: new.clone(), previous: Some(old.clone()) };
        assert!(both.unwrap(&t("acme"), &wrapped).is_ok() && both.unwrap(&t("acme"), &rewrapped).is_ok());
    }

    #[test]
    fn keys_never_print_and_bad_master_keys_say_why() {
        let key = MasterKey::from_bytes([1; 32]);
        assert!(!format!("{key:?}").contains("AQEB"));
        assert!(format!("{:?}", DataKey::from_bytes([1; 32])).contains("redacted"));
        assert!(MasterKey::parse("not base64!").is_err());
        assert!(MasterKey::parse(&STANDARD.encode([0u8; 16])).is_err());
        assert!(MasterKey::parse(&format!(" {} \n", STANDARD.encode([7u8; 32]))).is_ok());
    }

    #[test]
    fn names_refs_and_fields_are_checked() {
        assert!(SecretName::parse("db-main_2").is_ok());
        for bad in ["", "Db", "-x", "a.b", &"x".repeat(65)] {
            assert!(SecretName::parse(bad).is_err(), "{bad}");
        }
        let r = SecretRef::parse("db.password").unwrap();
        assert_eq!((r.secret.as_str(), r.field.as_str()), ("db", "password"));
        assert!(SecretRef::parse("db").is_err() && SecretRef::parse("db.").is_err() && SecretRef::parse(".x").is_err());
        assert!(SecretFields::new(BTreeMap::new()).is_err());
        assert_eq!(SecretFields::new([("a b".to_owned(), "v".to_owned())].into()).unwrap_err().0, "fields.a b");
    }

    #[test]
    fn output_holding_a_value_is_masked() {
        assert_eq!(mask("token=abcd1234 ok abcd1234", &["abcd1234", "ab"]), "token=*** ok ***");
    }
}
