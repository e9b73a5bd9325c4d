//! The `.cloacina` package archive (docs/packages.md): a tar archive, gzip- or bzip2-compressed,
//! holding one top-level folder `<name>-<version>/` with `package.toml` and the files its tasks
//! run.
//!
//! Reading treats every archive as hostile: only plain files and folders are accepted (no
//! links, devices or FIFOs), no path may be absolute or climb out with `..`, everything sits in
//! the one top-level folder the manifest names, and the entry count and the bytes unpacked
//! are bounded while they stream, so a compression bomb stops at the limit. Unpacking writes
//! into a folder that must not exist yet and removes it again on any failure: nothing is
//! written outside it, and nothing is left behind.
//!
//! Packing is deterministic (sorted entries, zero times and owners), so the same folder packs
//! to the same bytes and the server's content hash makes a repeated upload idempotent.
//!
//! # Layout
//! - [`check`] — [`Archives`], the domain's `PackageArchives` port: an upload hashed and inspected.
//! - [`pack`] — a folder to an archive.
//! - [`read`] — an archive's manifest and files, checked, optionally unpacked.

pub mod check;
pub mod pack;
pub mod read;

pub use check::Archives;
pub use pack::{PackError, pack};
pub use read::{ArchiveError, Limits, Unpacked, inspect, inspect_files, unpack};

/// The manifest's file name inside the package folder.
pub const MANIFEST: &str = "package.toml";

/// The archive's file name for a package: `<name>-<version>.cloacina`.
pub fn file_name(manifest: &cloacina_domain::package::Manifest) -> String {
    format!("{}.cloacina", folder_name(manifest))
}

/// The top-level folder: `<name>-<version>`.
pub fn folder_name(manifest: &cloacina_domain::package::Manifest) -> String {
    format!("{}-{}", manifest.package.name, manifest.package.version)
}
