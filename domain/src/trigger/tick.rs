//! One scheduler pass over a due trigger: which scheduled times start executions, which are
//! skipped and why, and the trigger as it is afterwards. The store locks the trigger's row,
//! counts its unfinished executions, asks [`TriggerRecord::tick`], and applies the answer in
//! the same transaction; the idempotency key of each fire ([`super::fire_key`]) makes a second
//! execution for one scheduled time impossible whatever the store does.

use std::collections::VecDeque;

use chrono::{DateTime, Utc};

use super::{Catchup, FireCounts, FireOutcome, ON_TIME_GRACE, Overlap, TriggerRecord};

/// The most missed scheduled times `catchup = "all"` runs in one pass; older ones in the
/// window are counted as skipped by catch-up.
pub const MAX_CATCHUP_FIRES: usize = 100;
/// The most scheduled times one pass walks through before the window; beyond it the rest are
/// skipped over uncounted (a schedule missed for longer than this many times).
pub const MAX_WALK: usize = 100_000;

/// A scheduled time that starts an execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fire {
    pub scheduled_at: DateTime<Utc>,
    /// [`FireOutcome::Fired`] or [`FireOutcome::CaughtUp`].
    pub outcome: FireOutcome,
}

/// What one pass decided.
#[derive(Debug, Clone, PartialEq)]
pub struct TickPlan {
    /// Cancel the trigger's unfinished executions before starting these (overlap
    /// `cancel_other`).
    pub cancel_unfinished: bool,
    /// The executions to start, oldest scheduled time first.
    pub start: Vec<Fire>,
    /// What this pass adds to the trigger's counts (started fires included).
    pub counts: FireCounts,
    /// The trigger as it is after the pass (counts, schedule, buffer), to be written back.
    pub trigger: TriggerRecord,
}

impl TriggerRecord {
    /// Decides the scheduled times due by `now`, given whether the workflow is paused and how
    /// many of the trigger's executions are unfinished (pending or running). docs/triggers.md
    /// states each rule; in short:
    ///
    /// - older than the catch-up window: missed, counted, never run;
    /// - within the window but older than [`ON_TIME_GRACE`] (no server was running): by
    ///   `catchup` (`skip` none, `latest` the newest one, `all` each);
    /// - newer: fired;
    /// - a paused workflow: each such time is counted as skipped for the pause;
    /// - then `overlap` against the unfinished executions (and those this pass starts);
    ///   `allow` does not weigh them ([`Overlap::weighs_unfinished`]): with it `unfinished`
    ///   may be 0 whatever runs, and a fire left waiting by an earlier `buffer_one` starts
    ///   at once.
    pub fn tick(&self, now: DateTime<Utc>, workflow_paused: bool, unfinished: u64) -> TickPlan {
        let mut t = self.clone();
        let mut counts = FireCounts::default();
        if t.paused {
            if t.next_fire_at.is_some_and(|d| d <= now) {
                t.next_fire_at = t.def.cron.due_after(now, t.def.timezone);
            }
            return TickPlan { cancel_unfinished: false, start: Vec::new(), counts, trigger: t };
        }
        let (cron, tz) = (&t.def.cron, t.def.timezone);
        let window = chrono::Duration::from_std(t.def.catchup_window).unwrap_or(chrono::Duration::MAX);
        let window_start = now.checked_sub_signed(window).unwrap_or(DateTime::<Utc>::MIN_UTC);
        let grace_start = now - chrono::Duration::from_std(ON_TIME_GRACE).unwrap_or_default();

        // Walk the due times up to `now`, sorting them by age.
        let mut late: VecDeque<DateTime<Utc>> = VecDeque::new();
        let mut on_time = Vec::new();
        let mut at = t.next_fire_at;
        let mut walked = 0usize;
        while let Some(d) = at.filter(|d| *d <= now) {
            walked += 1;
            if d < window_start {
                counts.add(FireOutcome::Missed, 1);
                at = if walked >= MAX_WALK { cron.due_from(window_start, tz) } else { cron.due_after(d, tz) };
                continue;
            }
            if d < grace_start {
                late.push_back(d);
                if late.len() > MAX_CATCHUP_FIRES && t.def.catchup == Catchup::All {
                    late.pop_front();
                    counts.add(FireOutcome::SkippedCatchup, 1);
                }
                if late.len() > 1 && t.def.catchup != Catchup::All {
                    late.pop_front();
                    counts.add(FireOutcome::SkippedCatchup, 1);
                }
            } else {
                on_time.push(d);
            }
            at = cron.due_after(d, tz);
        }
        t.next_fire_at = at;

        let mut candidates: Vec<Fire> = Vec::with_capacity(late.len() + on_time.len());
        match t.def.catchup {
            Catchup::Skip => counts.add(FireOutcome::SkippedCatchup, late.len() as u64),
            Catchup::Latest | Catchup::All => {
                candidates.extend(late.iter().map(|d| Fire { scheduled_at: *d, outcome: FireOutcome::CaughtUp }));
            }
        }
        candidates.extend(on_time.iter().map(|d| Fire { scheduled_at: *d, outcome: FireOutcome::Fired }));

        if workflow_paused {
            let buffered = u64::from(t.buffered_at.take().is_some());
            counts.add(FireOutcome::SkippedPaused, candidates.len() as u64 + buffered);
            return finish(t, now, false, Vec::new(), counts);
        }

        let mut running = unfinished;
        let mut start = Vec::new();
        if let Some(b) = t.buffered_at
            && (running == 0 || !t.def.overlap.weighs_unfinished())
        {
            t.buffered_at = None;
            start.push(Fire { scheduled_at: b, outcome: FireOutcome::Fired });
            running += 1;
        }
        let mut cancel_unfinished = false;
        match t.def.overlap {
            Overlap::Allow => start.extend(candidates),
            Overlap::Skip => {
                for f in candidates {
                    if running > 0 {
                        counts.add(FireOutcome::SkippedOverlap, 1);
                    } else {
                        start.push(f);
                        running += 1;
                    }
                }
            }
            Overlap::BufferOne => {
                for f in candidates {
                    if running > 0 {
                        if t.buffered_at.replace(f.scheduled_at).is_some() {
                            counts.add(FireOutcome::SkippedOverlap, 1);
                        }
                    } else {
                        start.push(f);
                        running += 1;
                    }
                }
            }
            Overlap::CancelOther => {
                if let Some(last) = candidates.pop() {
                    counts.add(FireOutcome::SkippedOverlap, (candidates.len() + start.len()) as u64);
                    start.clear();
                    cancel_unfinished = unfinished > 0;
                    start.push(last);
                }
            }
        }
        finish(t, now, cancel_unfinished, start, counts)
    }
}

impl TriggerRecord {
    /// The trigger as written back when a pass finds its workflow gone: nothing due, so no
    /// scheduler comes back for it (a new version of its package schedules it again).
    pub fn without_workflow(&self, now: DateTime<Utc>) -> TriggerRecord {
        let mut t = self.clone();
        t.next_fire_at = None;
        t.buffered_at = None;
        t.updated_at = now;
        t
    }
}

fn finish(
    mut t: TriggerRecord,
    now: DateTime<Utc>,
    cancel_unfinished: bool,
    start: Vec<Fire>,
    mut counts: FireCounts,
) -> TickPlan {
    for f in &start {
        counts.add(f.outcome, 1);
    }
    if let Some(last) = start.iter().map(|f| f.scheduled_at).max() {
        t.last_fire_at = Some(t.last_fire_at.map_or(last, |l| l.max(last)));
    }
    t.counts = t.counts.plus(&counts);
    t.updated_at = now;
    TickPlan { cancel_unfinished, start, counts, trigger: t }
}

#[cfg(test)]
#[path = "tick_tests.rs"]
mod tests;
