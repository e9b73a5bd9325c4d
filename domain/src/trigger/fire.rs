//! The execution a fire starts: its idempotency key (one per trigger and scheduled time), its
//! origin, and its context.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::{Fire, RESERVED_KEY_PREFIX, TriggerRecord};
use crate::execution::{ExecutionId, Fired, NewExecution, Plan};
use crate::package::{Manifest, WorkflowDef};

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

/// The package version a trigger's workflow is in force at, read from the store once per
/// pass (however many of its triggers fire).
#[derive(Debug, Clone)]
pub struct StoredVersion {
    pub package: String,
    pub package_id: Uuid,
    pub version: String,
    manifest: Manifest,
}

impl StoredVersion {
    /// Reads the version's stored `package.toml`.
    ///
    /// # Errors
    /// A message when the stored manifest no longer reads: the store is corrupt.
    pub fn read(package: &str, package_id: Uuid, version: &str, manifest: &str) -> Result<Self, String> {
        let manifest = Manifest::parse(manifest).map_err(|e| format!("stored manifest of {package} {version}: {e}"))?;
        Ok(Self { package: package.to_owned(), package_id, version: version.to_owned(), manifest })
    }

    /// The version's definition of workflow `name`.
    pub fn workflow(&self, name: &str) -> Option<&WorkflowDef> {
        self.manifest.workflows.iter().find(|w| w.name.as_str() == name)
    }
}

/// The executions a scheduler pass starts for `fires` (in their order), each built from the
/// trigger's workflow as the stored version defines it.
///
/// # Errors
/// A message when the version lacks the workflow: the store is corrupt, and the pass must not
/// commit.
pub fn scheduled_executions(
    trigger: &TriggerRecord,
    fires: &[Fire],
    stored: &StoredVersion,
    now: DateTime<Utc>,
) -> Result<Vec<NewExecution>, String> {
    if fires.is_empty() {
        return Ok(Vec::new());
    }
    let def = stored
        .workflow(&trigger.workflow)
        .ok_or_else(|| format!("{} {} lost workflow {}", stored.package, stored.version, trigger.workflow))?;
    Ok(fires
        .iter()
        .map(|f| {
            execution_for(trigger, f.scheduled_at, FireKind::Scheduled, def, stored.package_id, &stored.version, now)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::package::WorkflowName;
    use crate::trigger::{Catchup, CronExpr, FireOutcome, Overlap, TriggerDef};

    const MANIFEST: &str = r#"
[package]
name = "pkg"
version = "1.2.0"
[[workflow]]
name = "wf"
[[workflow.task]]
id = "one"
command = ["true"]
"#;

    fn trigger(workflow: &str) -> TriggerRecord {
        let def = TriggerDef {
            name: WorkflowName::parse("nightly").unwrap(),
            cron: CronExpr::parse("0 3 * * *").unwrap(),
            timezone: chrono_tz::UTC,
            catchup: Catchup::Latest,
            catchup_window: std::time::Duration::from_secs(3600),
            overlap: Overlap::Skip,
            context: serde_json::Map::from_iter([("region".to_owned(), Value::from("eu"))]),
        };
        TriggerRecord::new(def, workflow, "pkg", Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap())
    }

    fn stored(manifest: &str) -> StoredVersion {
        StoredVersion::read("pkg", Uuid::from_u128(7), "1.2.0", manifest).unwrap()
    }

    #[test]
    fn each_fire_becomes_the_stored_workflow_keyed_by_its_scheduled_time() {
        let (a, b) =
            (Utc.with_ymd_and_hms(2026, 6, 1, 3, 0, 0).unwrap(), Utc.with_ymd_and_hms(2026, 6, 2, 3, 0, 0).unwrap());
        let fires = [
            Fire { scheduled_at: a, outcome: FireOutcome::CaughtUp },
            Fire { scheduled_at: b, outcome: FireOutcome::Fired },
        ];
        let now = b + chrono::Duration::milliseconds(20);
        let news = scheduled_executions(&trigger("wf"), &fires, &stored(MANIFEST), now).unwrap();
        assert_eq!(news.len(), 2);
        assert_eq!(news[0].idempotency_key.as_deref(), Some(fire_key("nightly", a).as_str()));
        assert_eq!(news[1].fired.as_ref().map(|f| f.scheduled_at), Some(b));
        assert_eq!((news[1].workflow.as_str(), news[1].package_version.as_str()), ("wf", "1.2.0"));
        assert_eq!(news[1].package_id, Uuid::from_u128(7));
        assert_eq!(news[1].origin, "trigger:nightly");
        assert_eq!(news[1].context["region"], "eu");
        let again = scheduled_executions(&trigger("wf"), &fires, &stored(MANIFEST), now).unwrap();
        assert_eq!(again[0].id, news[0].id, "the id follows from the key: a second pass cannot make another");
        assert_ne!(news[0].id, news[1].id);
    }

    #[test]
    fn a_stored_manifest_without_the_workflow_is_an_error_and_no_fire_needs_none() {
        let fires = [Fire { scheduled_at: Utc::now(), outcome: FireOutcome::Fired }];
        let e = scheduled_executions(&trigger("gone"), &fires, &stored(MANIFEST), Utc::now()).unwrap_err();
        assert!(e.contains("lost workflow gone"), "{e}");
        let e = StoredVersion::read("pkg", Uuid::nil(), "1.2.0", "not toml [").unwrap_err();
        assert!(e.starts_with("stored manifest of pkg 1.2.0"), "{e}");
        assert_eq!(scheduled_executions(&trigger("gone"), &[], &stored(MANIFEST), Utc::now()).unwrap().len(), 0);
    }
}
