//! A cron schedule and its due times in a time zone.

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Timelike, Utc};
use chrono_tz::Tz;

/// A checked cron expression: five fields, or six with seconds first for sub-minute
/// schedules.
#[derive(Clone)]
pub struct CronExpr {
    text: String,
    /// Shared with the memory of parsed expressions: a parsed pattern is a dozen allocations,
    /// and every trigger row a pass reads, and every record it decides, holds one.
    parsed: Arc<croner::Cron>,
}

impl CronExpr {
    /// Checks an expression.
    ///
    /// # Errors
    /// The parser's reason, as text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        // Every stored trigger row and manifest is read back on each scheduler pass, and the
        // parse was half of a pass's own CPU: expressions already parsed are remembered.
        if let Some(parsed) = parsed_before(text) {
            return Ok(Self { text: text.to_owned(), parsed });
        }
        let parsed: Arc<croner::Cron> = Arc::new(text.parse().map_err(|e: croner::errors::CronError| e.to_string())?);
        remember(text, &parsed);
        Ok(Self { text: text.to_owned(), parsed })
    }

    /// The expression as written (trimmed).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The first time after `after` (exclusive) that matches, in `tz`.
    pub fn next_after(&self, after: &DateTime<Tz>) -> Option<DateTime<Tz>> {
        self.parsed.find_next_occurrence(after, false).ok()
    }

    /// The first due time after `after` (exclusive) of this schedule read in `tz`, as an
    /// instant. Through daylight saving: a local time that does not exist that day is due at
    /// the first valid instant after the gap, and a local time that occurs twice is due once,
    /// at its first occurrence (wildcard and step fields match each wall-clock time they
    /// meet). `None` if it never matches again.
    pub fn due_after(&self, after: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        // Whole seconds only: a schedule has no finer grain. The parser keeps the fraction of
        // the instant it starts from, which would make every due time that much late (a
        // trigger put in force at 12:00:41.9 due each minute at :00.9, not :00): the search
        // starts from the whole second, and the first match after it is after `after` too.
        let after = whole_second(after).with_timezone(&tz);
        self.next_after(&after).map(|t| whole_second(t.with_timezone(&Utc)))
    }

    /// The first due time at or after `from` (a whole second).
    pub fn due_from(&self, from: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        let start = whole_second(from);
        let start = if start < from { start + chrono::Duration::seconds(1) } else { start };
        self.parsed
            .find_next_occurrence(&start.with_timezone(&tz), true)
            .ok()
            .map(|t| whole_second(t.with_timezone(&Utc)))
    }

    /// The next `n` due times after `after`.
    pub fn upcoming(&self, after: DateTime<Utc>, tz: Tz, n: usize) -> Vec<DateTime<Utc>> {
        let mut out = Vec::with_capacity(n);
        let mut at = after;
        while out.len() < n {
            let Some(next) = self.due_after(at, tz) else { break };
            out.push(next);
            at = next;
        }
        out
    }
}

/// `t` without its fraction of a second.
fn whole_second(t: DateTime<Utc>) -> DateTime<Utc> {
    t.with_nanosecond(0).unwrap_or(t)
}

/// The most parsed expressions remembered; past it the memory starts afresh.
const REMEMBERED: usize = 4096;

static PARSED: std::sync::LazyLock<std::sync::Mutex<std::collections::HashMap<String, Arc<croner::Cron>>>> =
    std::sync::LazyLock::new(Default::default);

fn parsed_before(text: &str) -> Option<Arc<croner::Cron>> {
    PARSED.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(text).cloned()
}

fn remember(text: &str, parsed: &Arc<croner::Cron>) {
    let mut memory = PARSED.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if memory.len() >= REMEMBERED {
        memory.clear();
    }
    memory.insert(text.to_owned(), parsed.clone());
}

impl PartialEq for CronExpr {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for CronExpr {}

impl fmt::Debug for CronExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CronExpr({:?})", self.text)
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
    }

    #[test]
    fn a_remembered_expression_schedules_as_a_fresh_parse() {
        let first = CronExpr::parse(" 15 */3 * * 1-5 ").unwrap();
        let again = CronExpr::parse("15 */3 * * 1-5").unwrap();
        assert!(parsed_before("15 */3 * * 1-5").is_some());
        let t = utc(2026, 1, 2, 7, 0, 0);
        assert_eq!(first.upcoming(t, chrono_tz::UTC, 4), again.upcoming(t, chrono_tz::UTC, 4));
        assert_eq!(again.as_str(), "15 */3 * * 1-5");
        assert!(CronExpr::parse("61 * * * *").is_err());
        assert!(parsed_before("61 * * * *").is_none());
    }

    #[test]
    fn due_times_are_whole_seconds_whatever_the_fraction_of_the_instant_asked_from() {
        let minutely = CronExpr::parse("* * * * *").unwrap();
        let late_in_a_second = utc(2026, 1, 1, 12, 0, 41) + chrono::Duration::milliseconds(997);
        assert_eq!(minutely.due_after(late_in_a_second, chrono_tz::UTC), Some(utc(2026, 1, 1, 12, 1, 0)));
        assert_eq!(minutely.upcoming(late_in_a_second, chrono_tz::Europe::Berlin, 2)[1], utc(2026, 1, 1, 12, 2, 0));
        let every_second = CronExpr::parse("* * * * * *").unwrap();
        let t = utc(2026, 1, 1, 0, 0, 4) + chrono::Duration::milliseconds(500);
        assert_eq!(every_second.due_after(t, chrono_tz::UTC), Some(utc(2026, 1, 1, 0, 0, 5)));
        assert_eq!(
            every_second.due_from(t, chrono_tz::UTC),
            Some(utc(2026, 1, 1, 0, 0, 5)),
            "at or after, never before"
        );
        assert_eq!(every_second.due_from(utc(2026, 1, 1, 0, 0, 4), chrono_tz::UTC), Some(utc(2026, 1, 1, 0, 0, 4)));
    }

    #[test]
    fn six_fields_schedule_by_the_second() {
        let c = CronExpr::parse("*/2 * * * * *").unwrap();
        let t = utc(2026, 1, 1, 0, 0, 1);
        assert_eq!(
            c.upcoming(t, chrono_tz::UTC, 3),
            [utc(2026, 1, 1, 0, 0, 2), utc(2026, 1, 1, 0, 0, 4), utc(2026, 1, 1, 0, 0, 6)]
        );
        assert_eq!(c.due_from(utc(2026, 1, 1, 0, 0, 4), chrono_tz::UTC), Some(utc(2026, 1, 1, 0, 0, 4)));
    }

    #[test]
    fn berlin_0230_in_spring_fires_once_at_the_first_instant_after_the_gap() {
        // 2026-03-29: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist.
        let c = CronExpr::parse("30 2 * * *").unwrap();
        let tz = chrono_tz::Europe::Berlin;
        let fires = c.upcoming(utc(2026, 3, 27, 12, 0, 0), tz, 3);
        assert_eq!(
            fires,
            [
                utc(2026, 3, 28, 1, 30, 0), // 02:30 CET
                utc(2026, 3, 29, 1, 0, 0),  // 03:00 CEST, the first valid instant
                utc(2026, 3, 30, 0, 30, 0), // 02:30 CEST
            ]
        );
    }

    #[test]
    fn berlin_0230_in_autumn_fires_once_although_the_hour_repeats() {
        // 2026-10-25: 03:00 CEST falls back to 02:00 CET; 02:30 happens twice.
        let c = CronExpr::parse("30 2 * * *").unwrap();
        let tz = chrono_tz::Europe::Berlin;
        let fires = c.upcoming(utc(2026, 10, 23, 12, 0, 0), tz, 3);
        assert_eq!(
            fires,
            [
                utc(2026, 10, 24, 0, 30, 0), // 02:30 CEST
                utc(2026, 10, 25, 0, 30, 0), // 02:30 CEST, the first of the two
                utc(2026, 10, 26, 1, 30, 0), // 02:30 CET
            ]
        );
    }
}
