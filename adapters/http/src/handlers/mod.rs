//! The endpoint handlers, one file per group.
//!
//! # Layout
//! - [`audit`] — the audit trail's chains, the control one and each tenant's.
//! - [`executions`] — execute a workflow; list, inspect, cancel and retry executions.
//! - [`execution_detail`] — an execution's tasks, events and task logs.
//! - [`health`] — `/health`, `/ready`, `/metrics`.
//! - [`live`] — the WebSockets under `/v1/ws/`, and their tickets.
//! - [`keys`] — create, list and revoke API keys, deployment-wide and per tenant.
//! - [`packages`] — package upload and listing.
//! - [`secrets`] — a tenant's secrets: values in, metadata out.
//! - [`signing`] — the keys a tenant trusts to sign packages, and its signature policy.
//! - [`tenants`] — create, list, inspect and delete tenants.
//! - [`transfer`] — a tenant exported whole, and imported.
//! - [`workflows`] — a tenant's workflows.
//! - [`whoami`] — who the presented key is.

pub mod audit;
pub mod execution_detail;
pub mod executions;
pub mod health;
pub mod keys;
pub mod live;
pub mod packages;
pub mod secrets;
pub mod signing;
pub mod tenants;
pub mod transfer;
pub mod triggers;
pub mod whoami;
pub mod workflows;

use chrono::{DateTime, SecondsFormat, Utc};

/// Times on the wire: RFC 3339 in UTC with an explicit offset, `2026-04-02T12:00:00+00:00`.
pub(crate) fn wire_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, false)
}
