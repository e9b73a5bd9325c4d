//! Reading an uploaded package archive, whatever its format.

use std::path::Path;

use crate::package::Manifest;

/// An upload checked as hostile input: its manifest, and what identifies its bytes.
#[derive(Debug, Clone)]
pub struct CheckedArchive {
    pub manifest: Manifest,
    /// `package.toml` as the archive holds it.
    pub manifest_text: String,
    /// SHA-256 of the archive file, hex: the same bytes again are the same package.
    pub content_hash: String,
    pub size_bytes: u64,
}

/// Why an upload was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArchiveRefused {
    /// The archive or its manifest is not acceptable; the text says why, naming the entry or
    /// field at fault, and is for the client.
    #[error("{0}")]
    Invalid(String),
    /// The spooled file could not be read; the text is for logs.
    #[error("cannot read the upload: {0}")]
    Unreadable(String),
}

/// Checks package archives. Blocking: callers run it off the async runtime.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait PackageArchives: Send + Sync {
    /// Checks the archive in the file at `path` without unpacking it anywhere: every entry,
    /// the size and entry limits, and its manifest; and hashes the file.
    ///
    /// # Errors
    /// MUST return [`ArchiveRefused::Invalid`] for anything wrong with the archive itself
    /// (its first fault), [`ArchiveRefused::Unreadable`] when the file cannot be read.
    fn check(&self, path: &Path) -> Result<CheckedArchive, ArchiveRefused>;
}
