//! Workflow packages: the manifest (`package.toml`) people write by hand, parsed and checked
//! (docs/packages.md). Every error names the field at fault, as a path like
//! `workflow[0].task[2].depends_on[0]`.
//!
//! # Layout
//! - [`manifest`] — [`Manifest`] and its parts, [`Manifest::parse`].
//! - [`names`] — the names a manifest declares: packages, workflows, tasks, triggers.
//! - [`signature`] — signed packages: keys, signature documents, the upload check.
//! - [`stored`] — packages as the registry keeps them.
//! - [`conflict`] — when an upload or a delete is refused, which workflows go in force.
//! - [`dag`] — dependency checks and the order tasks run in.
//! - [`limits`] — what one task attempt may use, asked for and capped.

pub mod conflict;
pub mod dag;
pub mod limits;
pub mod manifest;
pub mod names;
pub mod signature;
pub mod stored;

pub use conflict::{PackageConflict, UploadPlan, workflows_in_force};
pub use limits::{AttemptLimits, DEFAULT_CEILINGS, DEFAULT_LIMITS, LimitExceeded, TaskLimits};
pub use manifest::{
    Backoff, Manifest, ManifestError, PackageInfo, RetryPolicy, TaskDef, TaskNode, TriggerDef, WorkflowDef,
};
pub use names::{NameError, PackageName, TaskId, WorkflowName};
pub use signature::{
    PackageSignature, SignaturePolicy, SignatureRefused, SignerKey, SigningSecret, TrustedSigner, VerifiedSignature,
    check_signature,
};
pub use stored::{
    NewPackage, PackageDeleted, PackageRecord, PackageStored, StoredArchive, StoredManifest, workflows_of_newest,
};
