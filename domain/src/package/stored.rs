//! Packages as a tenant's registry keeps them.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::manifest::Manifest;
use super::names::PackageName;
use crate::key::ApiKeyId;
use crate::workflow::WorkflowRow;

/// An uploaded package version. The archive itself is kept too, so any replica can unpack it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageRecord {
    pub id: Uuid,
    pub name: PackageName,
    pub version: semver::Version,
    pub description: Option<String>,
    /// SHA-256 of the archive, hex: the same bytes again are the same package.
    pub content_hash: String,
    pub size_bytes: u64,
    /// The workflows this version declares, by name.
    pub workflows: Vec<String>,
    pub uploaded_at: DateTime<Utc>,
    pub uploaded_by: Option<ApiKeyId>,
}

/// What storing an upload needs.
#[derive(Debug, Clone)]
pub struct NewPackage {
    pub id: Uuid,
    pub manifest: Manifest,
    /// `package.toml` as uploaded.
    pub manifest_text: String,
    /// The archive as uploaded, in a file the caller keeps until the store returns: stores
    /// read it in chunks, so an upload never sits in memory whole.
    pub archive: std::path::PathBuf,
    pub size_bytes: u64,
    pub content_hash: String,
    pub uploaded_at: DateTime<Utc>,
    pub uploaded_by: Option<ApiKeyId>,
    /// The signature document uploaded beside the archive, if any
    /// ([`super::check_signature`] decides, against the tenant's policy and trusted keys).
    pub signature: Option<String>,
}

impl NewPackage {
    /// The row this upload becomes.
    pub fn record(&self) -> PackageRecord {
        PackageRecord {
            id: self.id,
            name: self.manifest.package.name.clone(),
            version: self.manifest.package.version.clone(),
            description: self.manifest.package.description.clone(),
            content_hash: self.content_hash.clone(),
            size_bytes: self.size_bytes,
            workflows: self.manifest.workflows.iter().map(|w| w.name.to_string()).collect(),
            uploaded_at: self.uploaded_at,
            uploaded_by: self.uploaded_by,
        }
    }

    /// The workflow rows this version puts in force.
    pub fn workflow_rows(&self) -> Vec<WorkflowRow> {
        self.manifest.workflow_rows(self.uploaded_at)
    }
}

impl Manifest {
    /// The workflow rows this package version puts in force, stamped `at`.
    pub fn workflow_rows(&self, at: DateTime<Utc>) -> Vec<WorkflowRow> {
        self.workflows
            .iter()
            .map(|w| WorkflowRow {
                name: w.name.to_string(),
                package_name: self.package.name.to_string(),
                version: self.package.version.to_string(),
                description: w.description.clone(),
                tasks: w.tasks.iter().map(|t| t.id.to_string()).collect(),
                triggers: w.triggers.clone(),
                updated_at: at,
            })
            .collect()
    }
}

/// One version's id and `package.toml`, as execute needs them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredManifest {
    pub id: Uuid,
    pub manifest: String,
}

/// One version's archive, as a worker unpacks it.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredArchive {
    /// SHA-256 of the bytes, hex.
    pub content_hash: String,
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for StoredArchive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredArchive")
            .field("content_hash", &self.content_hash)
            .field("len", &self.bytes.len())
            .finish()
    }
}

/// What storing an upload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PackageStored {
    /// A new version; its workflows are in force unless a newer version of the package is.
    Created(PackageRecord),
    /// These exact bytes were uploaded before: nothing changed.
    Existing(PackageRecord),
    /// Refused, nothing stored: the version holds other bytes, or a workflow name is another
    /// package's.
    Refused(super::PackageConflict),
    /// Refused, nothing stored: the signature fails the tenant's policy.
    Unsigned(super::SignatureRefused),
}

/// What deleting a package version did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PackageDeleted {
    /// Deleted; this was its row.
    Deleted(PackageRecord),
    /// Refused, nothing changed: unfinished executions use it.
    Refused(super::PackageConflict),
}

/// The workflows in force once the version in force is gone: those of the highest remaining
/// version (by semantic version), given as (version, manifest text) pairs; none if none remain.
///
/// # Errors
/// A stored manifest that no longer parses.
pub fn workflows_of_newest(
    remaining: Vec<(String, String)>,
    at: DateTime<Utc>,
) -> Result<Vec<WorkflowRow>, super::ManifestError> {
    let newest = remaining
        .into_iter()
        .filter_map(|(v, m)| Some((semver::Version::parse(&v).ok()?, m)))
        .max_by(|a, b| a.0.cmp(&b.0));
    match newest {
        Some((_, text)) => Ok(Manifest::parse(&text)?.workflow_rows(at)),
        None => Ok(Vec::new()),
    }
}
