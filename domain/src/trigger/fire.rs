//! The execution a fire starts: its idempotency key (one per trigger and scheduled time), its
//! origin, and its context.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::{RESERVED_KEY_PREFIX, TriggerRecord};
use crate::execution::{ExecutionId, Fired, NewExecution, Plan};
use crate::package::WorkflowDef;

/// The idempotency key of a scheduled fire: one execution per (trigger, scheduled time).
pub fn fire_key(trigger: &str, scheduled_at: DateTime<Utc>) -> String {
    format!("{RESERVED_KEY_PREFIX}trigger:{trigger}:{}", scheduled_at.timestamp())
}

/// An execution's `origin` when `trigger` started it: on schedule, or fired by hand.
pub fn origin(trigger: &str, by_hand: bool) -> String {
    if by_hand { format!("trigger:{trigger}:manual") } else { format!("trigger:{trigger}") }
}

/// How a fire came about.
#[derive(Debug, Clone, PartialEq)]
pub enum FireKind {
    /// At a scheduled time.
    Scheduled,
    /// By hand, as execution `id`, with an event merged into the context.
    ByHand { id: ExecutionId, event: Map<String, Value> },
}

/// The execution a fire of `trigger` starts, of `workflow` (its definition in the package
/// version `package_id`/`version` in force), created `now`.
///
/// A scheduled fire carries the trigger's context, the key [`fire_key`] and an
/// id derived from that key, so that a second execution for the same scheduled time is
/// impossible twice over. A fire by hand is a new execution each time: the
/// trigger's context with the event merged over it (the event wins a clash), scheduled now.
pub fn execution_for(
    trigger: &TriggerRecord,
    scheduled_at: DateTime<Utc>,
    kind: FireKind,
    workflow: &WorkflowDef,
    package_id: Uuid,
    version: &str,
    now: DateTime<Utc>,
) -> NewExecution {
    let name = trigger.name();
    let mut context = trigger.def.context.clone();
    let by_hand = matches!(kind, FireKind::ByHand { .. });
    let (id, key) = match kind {
        FireKind::ByHand { id, event } => {
            context.extend(event);
            (id, None)
        }
        FireKind::Scheduled => {
            let key = fire_key(name, scheduled_at);
            (ExecutionId::from_uuid(Uuid::new_v5(&Uuid::NAMESPACE_OID, key.as_bytes())), Some(key))
        }
    };
    NewExecution {
        id,
        workflow: workflow.name.to_string(),
        package_id,
        package_version: version.to_owned(),
        plan: Plan::of(workflow),
        context,
        origin: origin(name, by_hand),
        idempotency_key: key,
        created_at: now,
        created_by: None,
        fired: Some(Fired { trigger: name.to_owned(), scheduled_at }),
    }
}
