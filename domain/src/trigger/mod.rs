//! Cron triggers (docs/triggers.md): what a manifest declares, a trigger as stored, and the
//! decisions a scheduler takes once it has locked a due trigger: which scheduled times fire,
//! which are skipped and why, what an overlap does, and when the trigger is next due.
//!
//! # Layout
//! - [`schedule`] — [`CronExpr`] and the due times of a schedule in its time zone.
//! - [`policy`] — [`Catchup`] and [`Overlap`], parsed from their manifest words.
//! - [`def`] — `[[workflow.trigger]]` checked into a [`TriggerDef`].
//! - [`stored`] — [`TriggerRecord`], its counts, and what putting triggers in force writes.
//! - [`tick`] — [`TriggerRecord::tick`]: one scheduler pass over a due trigger.
//! - [`fire`] — the execution a fire starts: its key, origin and context.

pub mod def;
pub mod fire;
pub mod policy;
pub mod schedule;
pub mod stored;
pub mod tick;

pub use def::TriggerDef;
pub use fire::{FireKind, StoredVersion, execution_for, fire_key, origin, scheduled_executions};
pub use policy::{Catchup, Overlap};
pub use schedule::CronExpr;
pub use stored::{FireCounts, FireOutcome, TriggerRecord, TriggerSync, TriggerWrite, declared_triggers, sync_triggers};
pub use tick::{Fire, TickPlan};

/// How late a due time may be seen and still count as on time (a late fire, not a missed
/// one): longer than any stall of a loaded scheduler, shorter than a restart.
pub const ON_TIME_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// While a buffered fire waits for the running execution to finish, the trigger is looked at
/// again this often.
pub const BUFFER_RECHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// The idempotency-key prefix reserved for scheduled fires; callers may not use it.
pub const RESERVED_KEY_PREFIX: &str = "cloacina:";
