//! Workflows as a tenant sees them in listings.

use chrono::{DateTime, Utc};

/// One workflow a tenant can run: declared by the newest version of one of its packages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkflowSummary {
    pub name: String,
    /// The package that declares it, and that package's version in force.
    pub package_name: String,
    pub version: String,
    pub description: Option<String>,
    /// Task ids, in dependency order.
    pub tasks: Vec<String>,
    /// A paused workflow's triggers do not fire and new executions are refused.
    pub paused: bool,
    pub updated_at: DateTime<Utc>,
}
