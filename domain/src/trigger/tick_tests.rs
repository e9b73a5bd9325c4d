use chrono::TimeZone;

use super::*;
use crate::package::{PackageConflict, WorkflowName};
use crate::trigger::{CronExpr, TriggerDef, sync_triggers};

fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, h, m, s).unwrap()
}

fn def(cron: &str, catchup: Catchup, overlap: Overlap, window_s: u64) -> TriggerDef {
    TriggerDef {
        name: WorkflowName::parse("tick").unwrap(),
        cron: CronExpr::parse(cron).unwrap(),
        timezone: chrono_tz::UTC,
        catchup,
        catchup_window: std::time::Duration::from_secs(window_s),
        overlap,
        context: serde_json::Map::new(),
    }
}

/// A minutely trigger put in force just before 10:00, so first due at 10:00.
fn minutely(catchup: Catchup, overlap: Overlap) -> TriggerRecord {
    TriggerRecord::new(def("* * * * *", catchup, overlap, 3600), "wf", "pkg", at(9, 59, 30))
}

fn started(plan: &TickPlan) -> Vec<(DateTime<Utc>, FireOutcome)> {
    plan.start.iter().map(|f| (f.scheduled_at, f.outcome)).collect()
}

#[test]
fn a_due_time_seen_on_time_fires_once_and_the_next_one_is_scheduled() {
    let t = minutely(Catchup::Latest, Overlap::Skip);
    assert_eq!(t.next_fire_at, Some(at(10, 0, 0)));
    assert_eq!(t.tick(at(9, 59, 59), false, 0).start, [], "nothing is due yet");
    let plan = t.tick(at(10, 0, 0) + chrono::Duration::milliseconds(300), false, 0);
    assert_eq!(started(&plan), [(at(10, 0, 0), FireOutcome::Fired)]);
    assert_eq!(plan.trigger.next_fire_at, Some(at(10, 1, 0)));
    assert_eq!(plan.trigger.last_fire_at, Some(at(10, 0, 0)));
    assert_eq!(plan.trigger.counts.fired, 1);
    // The same pass again decides nothing more: the schedule moved on.
    assert_eq!(plan.trigger.tick(at(10, 0, 1), false, 0).start, []);
}

#[test]
fn a_stall_shorter_than_the_grace_fires_every_time_it_covered() {
    let t = TriggerRecord::new(def("* * * * * *", Catchup::Skip, Overlap::Allow, 3600), "wf", "pkg", at(9, 59, 59));
    let plan = t.tick(at(10, 0, 4), false, 0);
    assert_eq!(plan.start.len(), 5, "10:00:00 to 10:00:04, each late but on time");
    assert!(plan.start.iter().all(|f| f.outcome == FireOutcome::Fired));
}

#[test]
fn after_downtime_each_catchup_policy_runs_what_it_says() {
    // Down from before 10:00 to 10:05:03: 10:00 to 10:04 were missed, 10:05 is on time.
    let now = at(10, 5, 3);
    let skip = minutely(Catchup::Skip, Overlap::Allow).tick(now, false, 0);
    assert_eq!(started(&skip), [(at(10, 5, 0), FireOutcome::Fired)]);
    assert_eq!(skip.counts.skipped_catchup, 5);

    let latest = minutely(Catchup::Latest, Overlap::Allow).tick(now, false, 0);
    assert_eq!(started(&latest), [(at(10, 4, 0), FireOutcome::CaughtUp), (at(10, 5, 0), FireOutcome::Fired)]);
    assert_eq!(latest.counts.skipped_catchup, 4);
    assert_eq!(latest.counts.caught_up, 1);

    let all = minutely(Catchup::All, Overlap::Allow).tick(now, false, 0);
    let times: Vec<_> = all.start.iter().map(|f| f.scheduled_at).collect();
    assert_eq!(times, [at(10, 0, 0), at(10, 1, 0), at(10, 2, 0), at(10, 3, 0), at(10, 4, 0), at(10, 5, 0)]);
    assert_eq!(all.counts.caught_up, 5);
    assert_eq!(all.trigger.next_fire_at, Some(at(10, 6, 0)));
}

#[test]
fn a_time_older_than_the_window_is_counted_missed_and_never_runs() {
    let t = TriggerRecord::new(def("* * * * *", Catchup::All, Overlap::Allow, 120), "wf", "pkg", at(9, 59, 30));
    let plan = t.tick(at(10, 5, 3), false, 0);
    // The window starts at 10:03:03: 10:00 to 10:03 are missed.
    assert_eq!(plan.counts.missed, 4);
    let times: Vec<_> = plan.start.iter().map(|f| f.scheduled_at).collect();
    assert_eq!(times, [at(10, 4, 0), at(10, 5, 0)]);
}

#[test]
fn a_paused_workflow_counts_each_due_time_as_skipped_and_moves_on() {
    let plan = minutely(Catchup::Latest, Overlap::Skip).tick(at(10, 0, 1), true, 0);
    assert_eq!(plan.start, []);
    assert_eq!(plan.counts.skipped_paused, 1);
    assert_eq!(plan.trigger.next_fire_at, Some(at(10, 1, 0)));
}

#[test]
fn a_paused_trigger_fires_and_counts_nothing_and_resumes_from_now() {
    let mut t = minutely(Catchup::All, Overlap::Allow);
    t.set_paused(true, at(9, 59, 40));
    assert_eq!(t.due_at(), None, "a paused trigger is never due");
    let plan = t.tick(at(10, 3, 0), false, 0);
    assert_eq!((plan.start.len(), plan.counts), (0, FireCounts::default()));
    t.set_paused(false, at(10, 3, 30));
    assert_eq!(t.next_fire_at, Some(at(10, 4, 0)), "what came due while paused is not caught up");
}

#[test]
fn overlap_skip_skips_while_one_is_unfinished() {
    let plan = minutely(Catchup::Latest, Overlap::Skip).tick(at(10, 0, 1), false, 1);
    assert_eq!(plan.start, []);
    assert_eq!(plan.counts.skipped_overlap, 1);
    let plan = minutely(Catchup::Latest, Overlap::Allow).tick(at(10, 0, 1), false, 3);
    assert_eq!(plan.start.len(), 1, "allow starts alongside");
}

#[test]
fn allow_starts_a_fire_an_earlier_buffer_one_left_waiting_at_once_whatever_runs() {
    let waiting = minutely(Catchup::Latest, Overlap::BufferOne).tick(at(10, 0, 1), false, 1).trigger;
    assert_eq!(waiting.buffered_at, Some(at(10, 0, 0)));
    let mut allow = waiting.clone();
    allow.def.overlap = Overlap::Allow;
    for unfinished in [0, 1] {
        let plan = allow.tick(at(10, 0, 30), false, unfinished);
        assert_eq!(started(&plan), [(at(10, 0, 0), FireOutcome::Fired)], "{unfinished} unfinished");
        assert_eq!(plan.trigger.buffered_at, None);
    }
    let still = waiting.tick(at(10, 0, 30), false, 1);
    assert_eq!((still.start.len(), still.trigger.buffered_at), (0, Some(at(10, 0, 0))), "buffer_one still waits");
}

#[test]
fn overlap_buffer_one_keeps_the_newest_waiting_fire_and_starts_it_once_free() {
    let t = minutely(Catchup::Latest, Overlap::BufferOne);
    let first = t.tick(at(10, 0, 1), false, 1);
    assert_eq!((first.start.len(), first.trigger.buffered_at), (0, Some(at(10, 0, 0))));
    assert_eq!(first.trigger.due_at(), Some(at(10, 0, 2)), "looked at again while a fire waits");
    let second = first.trigger.tick(at(10, 1, 1), false, 1);
    assert_eq!(second.trigger.buffered_at, Some(at(10, 1, 0)));
    assert_eq!(second.counts.skipped_overlap, 1, "the replaced one is counted");
    let freed = second.trigger.tick(at(10, 1, 20), false, 0);
    assert_eq!(started(&freed), [(at(10, 1, 0), FireOutcome::Fired)]);
    assert_eq!(freed.trigger.buffered_at, None);
    assert_eq!(freed.trigger.due_at(), Some(at(10, 2, 0)));
}

#[test]
fn overlap_cancel_other_cancels_the_unfinished_and_starts_the_newest() {
    let plan = minutely(Catchup::Latest, Overlap::CancelOther).tick(at(10, 0, 1), false, 2);
    assert!(plan.cancel_unfinished);
    assert_eq!(started(&plan), [(at(10, 0, 0), FireOutcome::Fired)]);
    let idle = minutely(Catchup::Latest, Overlap::CancelOther).tick(at(10, 0, 1), false, 0);
    assert!(!idle.cancel_unfinished, "nothing to cancel");
}

/// A clock that walks a trigger through days, looking a second after each due time, as a
/// scheduler does.
fn fires_between(t: TriggerRecord, until: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let mut t = t;
    let mut fired = Vec::new();
    while let Some(due) = t.due_at().filter(|d| *d <= until) {
        let plan = t.tick(due + chrono::Duration::seconds(1), false, 0);
        fired.extend(plan.start.iter().map(|f| f.scheduled_at));
        t = plan.trigger;
    }
    fired
}

#[test]
fn berlin_at_0230_fires_once_on_each_daylight_saving_day() {
    let mut d = def("30 2 * * *", Catchup::Latest, Overlap::Allow, 3600);
    d.timezone = chrono_tz::Europe::Berlin;
    let utc = |y, mo, dd, h, mi| Utc.with_ymd_and_hms(y, mo, dd, h, mi, 0).unwrap();
    // Spring: 02:30 does not exist on 29 March; it fires once, at 03:00 CEST.
    let spring = TriggerRecord::new(d.clone(), "wf", "pkg", utc(2026, 3, 27, 12, 0));
    assert_eq!(
        fires_between(spring, utc(2026, 3, 30, 12, 0)),
        [utc(2026, 3, 28, 1, 30), utc(2026, 3, 29, 1, 0), utc(2026, 3, 30, 0, 30)]
    );
    // Autumn: 02:30 happens twice on 25 October; it fires once, at the first.
    let autumn = TriggerRecord::new(d, "wf", "pkg", utc(2026, 10, 23, 12, 0));
    assert_eq!(
        fires_between(autumn, utc(2026, 10, 26, 12, 0)),
        [utc(2026, 10, 24, 0, 30), utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]
    );
}

#[test]
fn putting_triggers_in_force_keeps_their_state_reschedules_a_changed_one_and_refuses_anothers_name() {
    let mut kept = minutely(Catchup::Latest, Overlap::Skip);
    kept.counts.fired = 7;
    kept.set_paused(true, at(9, 59, 50));
    let mut gone = minutely(Catchup::Latest, Overlap::Skip);
    gone.def.name = WorkflowName::parse("gone").unwrap();
    let stored = vec![kept.clone(), gone];
    let now = at(10, 0, 30);

    let same = vec![("wf2".to_owned(), kept.def.clone())];
    let sync = sync_triggers("pkg", &same, &stored, now, true).unwrap();
    assert_eq!(sync.delete, ["gone"]);
    let row = &sync.writes[0];
    assert_eq!((row.paused, row.counts.fired, row.workflow.as_str()), (true, 7, "wf2"));
    assert_eq!(row.next_fire_at, kept.next_fire_at, "same schedule, same place in it");

    let mut changed = kept.def.clone();
    changed.cron = CronExpr::parse("*/5 * * * *").unwrap();
    let sync = sync_triggers("pkg", &[("wf".to_owned(), changed)], &stored, now, true).unwrap();
    assert_eq!(sync.writes[0].next_fire_at, Some(at(10, 5, 0)));

    let theirs = sync_triggers("other", &same, &stored, now, true).unwrap_err();
    assert!(matches!(theirs, PackageConflict::TriggerTaken { ref owner, .. } if owner == "pkg"));
    let lenient = sync_triggers("other", &same, &stored, now, false).unwrap();
    assert_eq!((lenient.writes.len(), lenient.delete.len()), (0, 0));
}

#[test]
fn a_trigger_whose_workflow_is_gone_is_written_back_with_nothing_due() {
    let mut t = minutely(Catchup::Latest, Overlap::BufferOne);
    t.buffered_at = Some(at(9, 59, 0));
    assert!(t.due_at().is_some());
    let stopped = t.without_workflow(at(10, 0, 5));
    assert_eq!((stopped.due_at(), stopped.next_fire_at, stopped.buffered_at), (None, None, None));
    assert_eq!(stopped.counts, t.counts, "its counts stay");
    assert_eq!(stopped.updated_at, at(10, 0, 5));
}
