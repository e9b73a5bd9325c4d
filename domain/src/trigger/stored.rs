//! A trigger as stored, the counts it keeps, and what putting a package version's triggers
//! in force writes.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::TriggerDef;
use crate::package::PackageConflict;

/// What became of one scheduled time (or of a run of them, for the catch-up counts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FireOutcome {
    /// On time (or late within [`super::ON_TIME_GRACE`]): an execution started.
    Fired,
    /// Missed while no server ran, and run by the catch-up policy.
    CaughtUp,
    /// Not run: an earlier execution of the trigger was unfinished (overlap `skip`, or a
    /// buffered fire replaced by a later one).
    SkippedOverlap,
    /// Not run: the workflow was paused.
    SkippedPaused,
    /// Missed while no server ran, and not run by the catch-up policy.
    SkippedCatchup,
    /// Missed for longer than the catch-up window: never run.
    Missed,
}

impl FireOutcome {
    pub const ALL: [FireOutcome; 6] = [
        FireOutcome::Fired,
        FireOutcome::CaughtUp,
        FireOutcome::SkippedOverlap,
        FireOutcome::SkippedPaused,
        FireOutcome::SkippedCatchup,
        FireOutcome::Missed,
    ];

    /// The word metrics and the API use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fired => "fired",
            Self::CaughtUp => "caught_up",
            Self::SkippedOverlap => "skipped_overlap",
            Self::SkippedPaused => "skipped_paused",
            Self::SkippedCatchup => "skipped_catchup",
            Self::Missed => "missed",
        }
    }
}

/// How many scheduled times of a trigger ended each way, since it was first put in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FireCounts {
    pub fired: u64,
    pub caught_up: u64,
    pub skipped_overlap: u64,
    pub skipped_paused: u64,
    pub skipped_catchup: u64,
    pub missed: u64,
}

impl FireCounts {
    /// Adds `n` of `outcome`.
    pub fn add(&mut self, outcome: FireOutcome, n: u64) {
        let slot = match outcome {
            FireOutcome::Fired => &mut self.fired,
            FireOutcome::CaughtUp => &mut self.caught_up,
            FireOutcome::SkippedOverlap => &mut self.skipped_overlap,
            FireOutcome::SkippedPaused => &mut self.skipped_paused,
            FireOutcome::SkippedCatchup => &mut self.skipped_catchup,
            FireOutcome::Missed => &mut self.missed,
        };
        *slot = slot.saturating_add(n);
    }

    /// The count of one outcome.
    pub fn get(&self, outcome: FireOutcome) -> u64 {
        match outcome {
            FireOutcome::Fired => self.fired,
            FireOutcome::CaughtUp => self.caught_up,
            FireOutcome::SkippedOverlap => self.skipped_overlap,
            FireOutcome::SkippedPaused => self.skipped_paused,
            FireOutcome::SkippedCatchup => self.skipped_catchup,
            FireOutcome::Missed => self.missed,
        }
    }

    /// Each outcome's count added to this one's.
    pub fn plus(mut self, other: &FireCounts) -> FireCounts {
        for o in FireOutcome::ALL {
            self.add(o, other.get(o));
        }
        self
    }
}

/// One trigger as stored: its definition from the package version in force, and its state.
#[derive(Debug, Clone, PartialEq)]
pub struct TriggerRecord {
    pub def: TriggerDef,
    pub workflow: String,
    pub package_name: String,
    /// Paused by the API (not the workflow): nothing fires, nothing is counted.
    pub paused: bool,
    pub paused_at: Option<DateTime<Utc>>,
    /// The earliest scheduled time not yet decided; `None` if the schedule never matches
    /// again.
    pub next_fire_at: Option<DateTime<Utc>>,
    /// The scheduled time of the newest fire that started an execution.
    pub last_fire_at: Option<DateTime<Utc>>,
    /// A fire waiting for the trigger's unfinished executions (overlap `buffer_one`).
    pub buffered_at: Option<DateTime<Utc>>,
    pub counts: FireCounts,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl TriggerRecord {
    pub fn name(&self) -> &str {
        self.def.name.as_str()
    }

    /// A trigger put in force `now`: due at its first scheduled time after `now`.
    pub fn new(def: TriggerDef, workflow: &str, package_name: &str, now: DateTime<Utc>) -> Self {
        let next_fire_at = def.cron.due_after(now, def.timezone);
        Self {
            def,
            workflow: workflow.to_owned(),
            package_name: package_name.to_owned(),
            paused: false,
            paused_at: None,
            next_fire_at,
            last_fire_at: None,
            buffered_at: None,
            counts: FireCounts::default(),
            created_at: now,
            updated_at: now,
        }
    }

    /// When a scheduler must next look at it: its next scheduled time, or sooner while a
    /// buffered fire waits; `None` while paused or when nothing is left to do.
    pub fn due_at(&self) -> Option<DateTime<Utc>> {
        if self.paused {
            return None;
        }
        let recheck = self.buffered_at.map(|_| self.updated_at + super::BUFFER_RECHECK);
        match (self.next_fire_at, recheck) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Pauses or resumes it at `now`. Resuming schedules it from `now`: what came due while
    /// it was paused does not fire and is not counted.
    pub fn set_paused(&mut self, paused: bool, now: DateTime<Utc>) {
        if self.paused == paused {
            return;
        }
        self.paused = paused;
        self.updated_at = now;
        if paused {
            self.paused_at = Some(now);
            self.buffered_at = None;
        } else {
            self.paused_at = None;
            self.next_fire_at = self.def.cron.due_after(now, self.def.timezone);
        }
    }
}

/// The trigger rows to write and to delete when a package version's workflows go in force.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TriggerSync {
    /// Full rows to upsert by name.
    pub writes: Vec<TriggerWrite>,
    /// Names of the package's triggers that are no longer declared.
    pub delete: Vec<String>,
}

/// One row to upsert.
pub type TriggerWrite = TriggerRecord;

/// Which triggers go in force for `package`, given the triggers its workflows in force now
/// declare (`declared`, with each one's workflow) and the stored rows that bear those names
/// or belong to the package (`stored`).
///
/// A trigger kept under the same name keeps its pause, counts and history, and its place in
/// the schedule unless its cron or time zone changed (then it is due at the first scheduled
/// time after `now`). A name another package's trigger holds refuses the whole set when
/// `strict` (an upload) and stays its owner's otherwise (an older version brought back by a
/// delete).
///
/// # Errors
/// [`PackageConflict::TriggerTaken`], when `strict`.
pub fn sync_triggers(
    package: &str,
    declared: &[(String, TriggerDef)],
    stored: &[TriggerRecord],
    now: DateTime<Utc>,
    strict: bool,
) -> Result<TriggerSync, PackageConflict> {
    let by_name: HashMap<&str, &TriggerRecord> = stored.iter().map(|t| (t.name(), t)).collect();
    let mut sync = TriggerSync::default();
    for (workflow, def) in declared {
        let row = match by_name.get(def.name.as_str()) {
            Some(old) if old.package_name != package => {
                if strict {
                    return Err(PackageConflict::TriggerTaken {
                        trigger: def.name.to_string(),
                        owner: old.package_name.clone(),
                    });
                }
                continue;
            }
            Some(old) => {
                let same_schedule = old.def.cron == def.cron && old.def.timezone == def.timezone;
                let mut row = (*old).clone();
                row.def = def.clone();
                row.workflow.clone_from(workflow);
                row.updated_at = now;
                if !same_schedule {
                    row.next_fire_at = def.cron.due_after(now, def.timezone);
                    row.buffered_at = None;
                }
                row
            }
            None => TriggerRecord::new(def.clone(), workflow, package, now),
        };
        sync.writes.push(row);
    }
    for old in stored.iter().filter(|t| t.package_name == package) {
        if !declared.iter().any(|(_, d)| d.name.as_str() == old.name()) {
            sync.delete.push(old.name().to_owned());
        }
    }
    Ok(sync)
}

/// The triggers the workflows going in force declare, each with its workflow's name.
pub fn declared_triggers(workflows: &[&crate::workflow::WorkflowRow]) -> Vec<(String, TriggerDef)> {
    workflows.iter().flat_map(|w| w.triggers.iter().map(|t| (w.name.clone(), t.clone()))).collect()
}
