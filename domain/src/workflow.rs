//! Workflows as a tenant sees them in listings.

use chrono::{DateTime, Utc};

/// A workflow row as a package version puts it in force (the store keeps its paused flag).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkflowRow {
    pub name: String,
    pub package_name: String,
    pub version: String,
    pub description: Option<String>,
    /// Task ids, in dependency order.
    pub tasks: Vec<String>,
    /// The triggers it declares, put in force with it.
    pub triggers: Vec<crate::trigger::TriggerDef>,
    pub updated_at: DateTime<Utc>,
}

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
    /// The package version in force: its id, and when it was uploaded.
    pub package_id: uuid::Uuid,
    pub created_at: DateTime<Utc>,
}
