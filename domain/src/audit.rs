//! The audit trail: one row per security-relevant action, chained by hashes.
//!
//! A change that must be audited hands its store an [`AuditEntry`]; the store appends it to
//! the right chain in the same transaction as the change, so a change without its row cannot
//! commit. A chain is the tenant's (rows in its own schema, written by its role) or, for
//! deployment-wide actions and god-key actions on no tenant, the control chain.
//!
//! Each row carries the hash of its predecessor and its own hash over every field
//! ([`AuditEntry::link`]), so an edited, removed or reordered row breaks the chain at that
//! row and [`verify_chain`] names it. The chain's [`ChainHead`] remembers the last row, which
//! catches a removed tail, and the anchor the retention prune left, which catches rows
//! removed from the start. Someone able to rewrite both rows and head could forge a
//! consistent chain from the edit onwards: an operator who keeps the head hash that
//! `audit verify` prints detects that too (docs/audit.md).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::key::ApiKeyId;
use crate::tenant::TenantName;

/// The hash before the first row of every chain.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

macro_rules! actions {
    ($($variant:ident = $text:literal,)*) => {
        /// What was done: the closed catalogue of audited actions.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum AuditAction { $($variant,)* }

        impl AuditAction {
            /// Every action, in catalogue order.
            pub const ALL: &'static [AuditAction] = &[$(AuditAction::$variant,)*];

            /// The stored and wire name, `noun.verb`.
            pub fn as_str(self) -> &'static str {
                match self { $(AuditAction::$variant => $text,)* }
            }
        }
    };
}

actions! {
    KeyCreate = "key.create",
    KeyRevoke = "key.revoke",
    TenantCreate = "tenant.create",
    TenantUpdate = "tenant.update",
    TenantDelete = "tenant.delete",
    TenantExport = "tenant.export",
    TenantImport = "tenant.import",
    PackageUpload = "package.upload",
    PackageDelete = "package.delete",
    WorkflowExecute = "workflow.execute",
    WorkflowPause = "workflow.pause",
    WorkflowResume = "workflow.resume",
    ExecutionCancel = "execution.cancel",
    ExecutionRetry = "execution.retry",
    TriggerPause = "trigger.pause",
    TriggerResume = "trigger.resume",
    TriggerFire = "trigger.fire",
    SecretCreate = "secret.create",
    SecretRotate = "secret.rotate",
    SecretDelete = "secret.delete",
    SignerAdd = "signer.add",
    SignerRemove = "signer.remove",
    SignaturePolicySet = "signature_policy.set",
    AuthFailures = "auth.failures",
}

impl fmt::Display for AuditAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Not an audited action's name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not an audited action (one of: {list})", list = AuditAction::ALL.iter().map(|a| a.as_str()).collect::<Vec<_>>().join(", "))]
pub struct UnknownAction(pub String);

impl FromStr for AuditAction {
    type Err = UnknownAction;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AuditAction::ALL.iter().copied().find(|a| a.as_str() == s).ok_or_else(|| UnknownAction(s.to_owned()))
    }
}

/// How the action ended: `ok` for a change that committed, `denied` for refused attempts
/// (failed authentication bursts).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuditOutcome {
    Ok,
    Denied,
}

impl AuditOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditOutcome::Ok => "ok",
            AuditOutcome::Denied => "denied",
        }
    }
}

impl FromStr for AuditOutcome {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ok" => Ok(AuditOutcome::Ok),
            "denied" => Ok(AuditOutcome::Denied),
            other => Err(format!("'{other}' is not an audit outcome")),
        }
    }
}

/// Who acted: the key, by id and by name at the time. `None` for the server itself (the
/// bootstrap key) and for refused callers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor {
    pub key_id: ApiKeyId,
    pub key_name: String,
}

/// Where a request came from, as the HTTP adapter saw it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestOrigin {
    /// The request's `x-request-id`.
    pub request_id: Option<String>,
    /// The client's address (behind a trusted proxy, the forwarded one).
    pub client: Option<String>,
}

/// One audited action, as a change hands it to its store. Never holds a secret: `detail`
/// carries names, roles, versions and counts only.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditEntry {
    pub at: DateTime<Utc>,
    pub actor: Option<Actor>,
    /// The tenant acted on: its chain. `None`: the control chain.
    pub tenant: Option<TenantName>,
    pub action: AuditAction,
    /// What was acted on: a key id, a tenant, `package@version`, an execution id, a trigger.
    pub target: String,
    pub outcome: AuditOutcome,
    pub origin: RequestOrigin,
    pub detail: Map<String, Value>,
}

impl AuditEntry {
    /// An entry for a change that commits with it.
    pub fn new(
        at: DateTime<Utc>,
        actor: Option<Actor>,
        tenant: Option<TenantName>,
        action: AuditAction,
        target: impl Into<String>,
        origin: RequestOrigin,
    ) -> Self {
        Self { at, actor, tenant, action, target: target.into(), outcome: AuditOutcome::Ok, origin, detail: Map::new() }
    }

    /// Adds one fact to `detail`.
    #[must_use]
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.detail.insert(key.to_owned(), value.into());
        self
    }

    /// The entry as the row after `head`: its sequence number, its predecessor's hash and its
    /// own hash; and the chain's head once it is stored. Times are kept to the microsecond,
    /// which both backends store exactly.
    pub fn link(mut self, head: &ChainHead) -> (AuditRecord, ChainHead) {
        self.at = self.at.trunc_subsecs(6);
        let seq = head.seq + 1;
        let hash = row_hash(seq, &head.hash, &self);
        let next = ChainHead { seq, hash: hash.clone(), ..head.clone() };
        (AuditRecord { seq, entry: self, prev_hash: head.hash.clone(), hash }, next)
    }
}

/// A stored row: the entry, its place in its chain, and the two hashes.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditRecord {
    pub seq: u64,
    pub entry: AuditEntry,
    /// The hash of the row before it ([`GENESIS`] for the first).
    pub prev_hash: String,
    /// SHA-256 over this row's fields and `prev_hash`, hex.
    pub hash: String,
}

/// Where a chain stands: its last row, and the row the retention prune removed last (the
/// first row kept must follow it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainHead {
    /// The last row's sequence number (0: no row yet).
    pub seq: u64,
    /// The last row's hash ([`GENESIS`] with no row).
    pub hash: String,
    /// The last pruned row's sequence number (0: nothing pruned).
    pub anchor_seq: u64,
    /// The last pruned row's hash ([`GENESIS`] with nothing pruned).
    pub anchor_hash: String,
}

impl Default for ChainHead {
    fn default() -> Self {
        Self { seq: 0, hash: GENESIS.to_owned(), anchor_seq: 0, anchor_hash: GENESIS.to_owned() }
    }
}

impl ChainHead {
    /// The head after pruning every row up to and including `last_pruned`.
    #[must_use]
    pub fn pruned_through(&self, last_pruned: &AuditRecord) -> ChainHead {
        ChainHead { anchor_seq: last_pruned.seq, anchor_hash: last_pruned.hash.clone(), ..self.clone() }
    }
}

/// The row's hash: SHA-256 of a canonical JSON array of every field (object keys sorted, so
/// a backend that reorders a stored JSON object changes nothing).
fn row_hash(seq: u64, prev_hash: &str, e: &AuditEntry) -> String {
    let fields = Value::Array(vec![
        Value::from(seq),
        Value::from(prev_hash),
        Value::from(e.at.to_rfc3339_opts(SecondsFormat::Micros, true)),
        e.actor.as_ref().map_or(Value::Null, |a| Value::from(a.key_id.to_string())),
        e.actor.as_ref().map_or(Value::Null, |a| Value::from(a.key_name.as_str())),
        e.tenant.as_ref().map_or(Value::Null, |t| Value::from(t.as_str())),
        Value::from(e.action.as_str()),
        Value::from(e.target.as_str()),
        Value::from(e.outcome.as_str()),
        e.origin.request_id.as_deref().map_or(Value::Null, Value::from),
        e.origin.client.as_deref().map_or(Value::Null, Value::from),
        Value::Object(e.detail.clone()),
    ]);
    let text = serde_json::to_string(&canonical(&fields)).unwrap_or_default();
    let digest = Sha256::digest(text.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// `value` with every object's keys in sorted order.
fn canonical(value: &Value) -> CanonicalValue<'_> {
    match value {
        Value::Object(map) => CanonicalValue::Object(map.iter().map(|(k, v)| (k.as_str(), canonical(v))).collect()),
        Value::Array(items) => CanonicalValue::Array(items.iter().map(canonical).collect()),
        other => CanonicalValue::Leaf(other),
    }
}

#[derive(serde::Serialize)]
#[serde(untagged)]
enum CanonicalValue<'a> {
    Object(BTreeMap<&'a str, CanonicalValue<'a>>),
    Array(Vec<CanonicalValue<'a>>),
    Leaf(&'a Value),
}

/// Where a chain breaks: the first row that does not follow from the one before it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    #[error("row {seq}: its contents do not match its hash (the row was edited)")]
    Edited { seq: u64 },
    #[error(
        "row {seq}: it does not name row {expected}'s hash as its predecessor (a row before it was edited or replaced)"
    )]
    Relinked { seq: u64, expected: u64 },
    #[error("rows {from} to {to} are missing (deleted)")]
    Missing { from: u64, to: u64 },
    #[error("the chain ends at row {last} but its head records row {head} (rows at the end were deleted)")]
    Truncated { last: u64, head: u64 },
    #[error("the chain holds row {seq} past its head, row {head}")]
    PastHead { seq: u64, head: u64 },
}

/// What a sound chain holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainSummary {
    /// Rows checked.
    pub rows: u64,
    /// The first and last sequence numbers checked (`None` with no row).
    pub first: Option<u64>,
    pub last: Option<u64>,
    /// The head's hash: keep it, and a later verify proves nothing before it was rewritten.
    pub head_hash: String,
}

/// Checks a chain row by row, in sequence order, against its head: each row's hash over its
/// contents, each row naming its predecessor's hash, no number skipped, the first following
/// the prune anchor and the last being the head. Returns the first break.
///
/// # Errors
/// The first [`ChainBreak`].
pub fn verify_chain<'a>(
    head: &ChainHead,
    rows: impl IntoIterator<Item = &'a AuditRecord>,
) -> Result<ChainSummary, ChainBreak> {
    let mut verifier = ChainVerifier::new(head);
    for row in rows {
        verifier.push(row)?;
    }
    verifier.finish()
}

/// [`verify_chain`] a page at a time, for chains read in pages.
#[derive(Debug)]
pub struct ChainVerifier {
    head: ChainHead,
    prev_seq: u64,
    prev_hash: String,
    rows: u64,
    first: Option<u64>,
}

impl ChainVerifier {
    pub fn new(head: &ChainHead) -> Self {
        Self {
            head: head.clone(),
            prev_seq: head.anchor_seq,
            prev_hash: head.anchor_hash.clone(),
            rows: 0,
            first: None,
        }
    }

    /// The next row, in sequence order.
    ///
    /// # Errors
    /// The [`ChainBreak`] at this row.
    pub fn push(&mut self, row: &AuditRecord) -> Result<(), ChainBreak> {
        if row.seq > self.head.seq {
            return Err(ChainBreak::PastHead { seq: row.seq, head: self.head.seq });
        }
        if row.seq != self.prev_seq + 1 {
            return Err(ChainBreak::Missing { from: self.prev_seq + 1, to: row.seq.saturating_sub(1) });
        }
        if row.prev_hash != self.prev_hash {
            return Err(ChainBreak::Relinked { seq: row.seq, expected: self.prev_seq });
        }
        if row_hash(row.seq, &row.prev_hash, &row.entry) != row.hash {
            return Err(ChainBreak::Edited { seq: row.seq });
        }
        self.prev_seq = row.seq;
        self.prev_hash.clone_from(&row.hash);
        self.rows += 1;
        self.first.get_or_insert(row.seq);
        Ok(())
    }

    /// The end of the rows.
    ///
    /// # Errors
    /// [`ChainBreak::Truncated`] when the rows stop short of the head.
    pub fn finish(self) -> Result<ChainSummary, ChainBreak> {
        if self.prev_seq != self.head.seq || self.prev_hash != self.head.hash {
            return Err(ChainBreak::Truncated { last: self.prev_seq, head: self.head.seq });
        }
        Ok(ChainSummary {
            rows: self.rows,
            first: self.first,
            last: (self.rows > 0).then_some(self.prev_seq),
            head_hash: self.head.hash,
        })
    }
}

/// Which rows a listing wants.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub action: Option<AuditAction>,
    /// The acting key's id.
    pub actor: Option<ApiKeyId>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Rows after this sequence number (the cursor), oldest first.
    pub after: Option<u64>,
    /// Newest first, before this sequence number (when `after` is not given).
    pub before: Option<u64>,
}

#[cfg(test)]
mod tests;
