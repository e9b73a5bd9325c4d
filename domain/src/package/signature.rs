//! Signed packages: Ed25519 signatures over an archive's SHA-256, the keys a tenant trusts,
//! and whether an upload passes its tenant's policy (docs/packages.md, "Signed packages").
//!
//! The signature travels beside the archive (`acme-etl-1.0.0.cloacina.sig`), a small JSON
//! document naming the key's id, the archive's digest and the signature. The signed message is
//! a fixed context string and the digest's 32 bytes, so a signature made for a package can
//! never be taken for anything else.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::key::ApiKeyId;

/// The `format` of every signature document.
pub const SIGNATURE_FORMAT: &str = "cloacina-signature-v1";
/// What precedes the digest in the signed message.
const CONTEXT: &[u8] = b"cloacina-package-v1\0";
const PUBLIC_PREFIX: &str = "ed25519:";
const SECRET_PREFIX: &str = "ed25519-secret:";

/// A key that may sign packages: the private half, kept in a file of its owner's. `Debug`
/// never prints it.
pub struct SigningSecret(SigningKey);

impl fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningSecret([redacted])")
    }
}

impl SigningSecret {
    /// The key made from 32 random bytes.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self(SigningKey::from_bytes(&seed))
    }

    /// Reads `ed25519-secret:<base64 of 32 bytes>`.
    ///
    /// # Errors
    /// A message saying what is wrong (never the text itself).
    pub fn parse(text: &str) -> Result<Self, String> {
        let b64 = text.trim().strip_prefix(SECRET_PREFIX).ok_or("not a Cloacina signing key (ed25519-secret:…)")?;
        let bytes = STANDARD.decode(b64).map_err(|_| "the signing key is not base64")?;
        let seed: [u8; 32] = bytes.try_into().map_err(|_| "the signing key is not 32 bytes")?;
        Ok(Self::from_seed(seed))
    }

    /// The text [`SigningSecret::parse`] reads. It is the secret: write it only to a file
    /// only its owner can read.
    pub fn to_text(&self) -> String {
        format!("{SECRET_PREFIX}{}", STANDARD.encode(self.0.to_bytes()))
    }

    /// The public half, for tenants to trust.
    pub fn public(&self) -> SignerKey {
        SignerKey(self.0.verifying_key())
    }

    /// Signs an archive, given its SHA-256 (hex, as `content_hash`).
    ///
    /// # Errors
    /// When `sha256_hex` is not 64 hex characters.
    pub fn sign(&self, sha256_hex: &str) -> Result<PackageSignature, String> {
        let digest = digest_bytes(sha256_hex)?;
        let signature = self.0.sign(&message(&digest));
        Ok(PackageSignature {
            format: SIGNATURE_FORMAT.to_owned(),
            key_id: self.public().id(),
            sha256: sha256_hex.to_ascii_lowercase(),
            signature: STANDARD.encode(signature.to_bytes()),
        })
    }
}

/// A public signing key: `ed25519:<base64 of 32 bytes>`.
#[derive(Clone, PartialEq, Eq)]
pub struct SignerKey(VerifyingKey);

impl fmt::Debug for SignerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SignerKey({})", self.id())
    }
}

impl SignerKey {
    /// Reads `ed25519:<base64>`.
    ///
    /// # Errors
    /// A message saying what is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        let b64 = text
            .trim()
            .strip_prefix(PUBLIC_PREFIX)
            .ok_or("a public key reads ed25519:<base64>, as `cloacinactl package keygen` writes it")?;
        let bytes = STANDARD.decode(b64).map_err(|_| "the public key is not base64")?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| "the public key is not 32 bytes")?;
        VerifyingKey::from_bytes(&bytes).map(Self).map_err(|_| "not a valid Ed25519 public key".to_owned())
    }

    pub fn to_text(&self) -> String {
        format!("{PUBLIC_PREFIX}{}", STANDARD.encode(self.0.as_bytes()))
    }

    /// The key's id: the first 8 bytes of the SHA-256 of its 32 bytes, hex. Signatures name
    /// their key by it.
    pub fn id(&self) -> String {
        Sha256::digest(self.0.as_bytes())[..8].iter().map(|b| format!("{b:02x}")).collect()
    }
}

fn digest_bytes(sha256_hex: &str) -> Result<[u8; 32], String> {
    let hex = sha256_hex.trim();
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("the archive digest is not 64 hex characters".into());
    }
    let mut out = [0u8; 32];
    for (i, pair) in hex.as_bytes().chunks(2).enumerate() {
        let text = std::str::from_utf8(pair).map_err(|_| "not hex")?;
        out[i] = u8::from_str_radix(text, 16).map_err(|_| "not hex")?;
    }
    Ok(out)
}

fn message(digest: &[u8; 32]) -> Vec<u8> {
    [CONTEXT, digest.as_slice()].concat()
}

/// A signature document, as it travels beside an archive.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageSignature {
    pub format: String,
    /// The signing key's [`SignerKey::id`].
    pub key_id: String,
    /// The SHA-256 of the archive signed, hex.
    pub sha256: String,
    /// The Ed25519 signature, base64.
    pub signature: String,
}

impl PackageSignature {
    /// Reads a signature document.
    ///
    /// # Errors
    /// [`SignatureRefused::Invalid`] naming what is wrong with it.
    pub fn parse(text: &str) -> Result<Self, SignatureRefused> {
        let sig: Self = serde_json::from_str(text)
            .map_err(|e| SignatureRefused::Invalid(format!("the signature is not a signature document: {e}")))?;
        if sig.format != SIGNATURE_FORMAT {
            return Err(SignatureRefused::Invalid(format!("unknown signature format '{}'", sig.format)));
        }
        Ok(sig)
    }

    /// The document as written beside the archive.
    pub fn to_text(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

/// A key a tenant trusts to sign its packages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustedSigner {
    pub id: Uuid,
    /// The tenant's name for it, unique in the tenant.
    pub name: String,
    pub key: SignerKey,
    pub created_at: DateTime<Utc>,
    /// The API key that registered it.
    pub created_by: Option<ApiKeyId>,
}

/// Whether a tenant's uploads must be signed by a key it trusts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SignaturePolicy {
    pub require_signatures: bool,
    pub updated_at: Option<DateTime<Utc>>,
    pub updated_by: Option<ApiKeyId>,
}

/// Why an upload's signature is refused. The codes are the reference server's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureRefused {
    #[error("this tenant requires signed packages: sign it (cloacinactl package sign) and upload the .sig beside it")]
    Missing,
    #[error("the signature is invalid: {0}")]
    Invalid(String),
    #[error("the package is signed by key {0}, which this tenant does not trust (cloacinactl signer add)")]
    Untrusted(String),
    #[error("the package is not what was signed: its SHA-256 differs from the signed one")]
    Tampered,
}

impl SignatureRefused {
    /// The error code an API answers with.
    pub fn code(&self) -> &'static str {
        match self {
            SignatureRefused::Missing => "signature_not_found",
            SignatureRefused::Invalid(_) => "invalid_signature",
            SignatureRefused::Untrusted(_) => "untrusted_signer",
            SignatureRefused::Tampered => "package_tampered",
        }
    }
}

/// A signature checked against a key the tenant trusts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedSignature {
    pub signer: TrustedSigner,
    /// The document as uploaded.
    pub document: String,
}

/// Whether an upload with digest `content_hash` and the signature document beside it (if
/// any) passes a tenant's `policy` and `trusted` keys. A signature that is present is always
/// checked: one that is malformed, or made by a trusted key over other bytes, is refused even
/// where signatures are not required. An untrusted signer is refused only where they are;
/// elsewhere the upload goes through unverified (`Ok(None)`).
///
/// # Errors
/// The [`SignatureRefused`] case.
pub fn check_signature(
    policy: &SignaturePolicy,
    content_hash: &str,
    document: Option<&str>,
    trusted: &[TrustedSigner],
) -> Result<Option<VerifiedSignature>, SignatureRefused> {
    let Some(text) = document else {
        return if policy.require_signatures { Err(SignatureRefused::Missing) } else { Ok(None) };
    };
    let sig = PackageSignature::parse(text)?;
    let bytes = STANDARD
        .decode(sig.signature.trim())
        .map_err(|_| SignatureRefused::Invalid("the signature is not base64".into()))?;
    let bytes: [u8; 64] =
        bytes.try_into().map_err(|_| SignatureRefused::Invalid("the signature is not 64 bytes".into()))?;
    let Some(signer) = trusted.iter().find(|t| t.key.id() == sig.key_id) else {
        return if policy.require_signatures { Err(SignatureRefused::Untrusted(sig.key_id)) } else { Ok(None) };
    };
    if !sig.sha256.eq_ignore_ascii_case(content_hash) {
        return Err(SignatureRefused::Tampered);
    }
    let digest = digest_bytes(content_hash).map_err(SignatureRefused::Invalid)?;
    signer
        .key
        .0
        .verify(&message(&digest), &Signature::from_bytes(&bytes))
        .map_err(|_| SignatureRefused::Invalid(format!("it does not verify under key {}", sig.key_id)))?;
    Ok(Some(VerifiedSignature { signer: signer.clone(), document: text.to_owned() }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(bytes: &[u8]) -> String {
        Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
    }

    fn trusted(secret: &SigningSecret) -> TrustedSigner {
        TrustedSigner {
            id: Uuid::nil(),
            name: "release".into(),
            key: secret.public(),
            created_at: Utc::now(),
            created_by: None,
        }
    }

    const REQUIRED: SignaturePolicy = SignaturePolicy { require_signatures: true, updated_at: None, updated_by: None };

    #[test]
    fn a_signed_archive_verifies_under_the_trusted_key() {
        let secret = SigningSecret::from_seed([7; 32]);
        let doc = secret.sign(&hash(b"archive")).unwrap().to_text();
        let ok = check_signature(&REQUIRED, &hash(b"archive"), Some(&doc), &[trusted(&secret)]).unwrap();
        assert_eq!(ok.map(|v| v.signer.name), Some("release".into()));
    }

    #[test]
    fn each_refusal_has_its_code() {
        let secret = SigningSecret::from_seed([7; 32]);
        let other = SigningSecret::from_seed([8; 32]);
        let keys = [trusted(&secret)];
        let doc = secret.sign(&hash(b"archive")).unwrap();
        let refused =
            |d: Option<&str>, content: &[u8]| check_signature(&REQUIRED, &hash(content), d, &keys).unwrap_err().code();
        assert_eq!(refused(None, b"archive"), "signature_not_found");
        assert_eq!(refused(Some(&doc.to_text()), b"archive!"), "package_tampered");
        assert_eq!(refused(Some(&other.sign(&hash(b"archive")).unwrap().to_text()), b"archive"), "untrusted_signer");
        assert_eq!(refused(Some("{}"), b"archive"), "invalid_signature");
        let mut forged = doc.clone();
        forged.signature = other.sign(&hash(b"archive")).unwrap().signature;
        assert_eq!(refused(Some(&forged.to_text()), b"archive"), "invalid_signature");
    }

    #[test]
    fn without_the_requirement_unsigned_and_untrusted_pass_but_a_bad_signature_does_not() {
        let secret = SigningSecret::from_seed([7; 32]);
        let other = SigningSecret::from_seed([8; 32]);
        let open = SignaturePolicy::default();
        let keys = [trusted(&secret)];
        assert_eq!(check_signature(&open, &hash(b"a"), None, &keys), Ok(None));
        let untrusted = other.sign(&hash(b"a")).unwrap().to_text();
        assert_eq!(check_signature(&open, &hash(b"a"), Some(&untrusted), &keys), Ok(None));
        let doc = secret.sign(&hash(b"a")).unwrap().to_text();
        assert_eq!(check_signature(&open, &hash(b"b"), Some(&doc), &keys), Err(SignatureRefused::Tampered));
    }

    #[test]
    fn keys_round_trip_as_text_and_the_secret_never_prints() {
        let secret = SigningSecret::from_seed([9; 32]);
        let back = SigningSecret::parse(&secret.to_text()).unwrap();
        assert_eq!(back.public(), secret.public());
        assert_eq!(SignerKey::parse(&secret.public().to_text()).unwrap(), secret.public());
        assert_eq!(secret.public().id().len(), 16);
        assert!(!format!("{secret:?}").contains(&secret.to_text()[15..]));
        assert!(SignerKey::parse("ed25519:AAAA").is_err());
        assert!(SigningSecret::parse(&secret.public().to_text()).is_err());
    }
}
