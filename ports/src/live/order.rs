//! Putting a tenant's events in order before they go out live.
//!
//! Event ids come from one sequence per tenant, but on PostgreSQL an id is handed out when the
//! row is inserted, not when its transaction commits: a reader can see id 11 before id 10 is
//! committed. Sent as seen, 10 would be skipped by every socket resuming past 11. So ids are
//! released only in an unbroken run from the last one released; a missing id holds back those
//! above it until it comes, or until [`GRACE`] has passed (its transaction rolled back, and
//! the id will never come).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cloacina_domain::execution::{EventRecord, OutputRecord};

/// A row of a per-tenant sequence.
pub trait Sequenced {
    fn seq(&self) -> i64;
}

impl Sequenced for EventRecord {
    fn seq(&self) -> i64 {
        self.id
    }
}

impl Sequenced for OutputRecord {
    fn seq(&self) -> i64 {
        self.id
    }
}

/// How long a missing id holds back those above it. Write transactions last milliseconds;
/// this is the rare rollback's price.
pub const GRACE: Duration = Duration::from_secs(2);

/// Rows seen but not yet released, and the last id released.
#[derive(Debug)]
pub struct InOrder<T> {
    released: i64,
    held: BTreeMap<i64, T>,
    /// Since when the id after `released` has been missing while later ones were held.
    missing_since: Option<Instant>,
    grace: Duration,
}

impl<T: Sequenced> InOrder<T> {
    /// Starts after id `released` (every id up to it counts as gone out).
    pub fn after(released: i64) -> Self {
        Self::with_grace(released, GRACE)
    }

    pub fn with_grace(released: i64, grace: Duration) -> Self {
        Self { released, held: BTreeMap::new(), missing_since: None, grace }
    }

    /// The last id released: the next read asks for ids above it.
    pub fn released(&self) -> i64 {
        self.released
    }

    /// Whether ids are held back by a missing one (the reader should look again soon).
    pub fn holding(&self) -> bool {
        !self.held.is_empty()
    }

    /// Takes what a read found and returns, in id order, every row that may go out now.
    pub fn offer(&mut self, rows: impl IntoIterator<Item = T>, now: Instant) -> Vec<T> {
        for row in rows {
            if row.seq() > self.released {
                self.held.insert(row.seq(), row);
            }
        }
        let mut out = Vec::new();
        while let Some(entry) = self.held.first_entry() {
            let next = *entry.key();
            let in_turn = next == self.released + 1;
            let waited = self.missing_since.is_some_and(|since| now.duration_since(since) >= self.grace);
            if !(in_turn || waited) {
                self.missing_since.get_or_insert(now);
                break;
            }
            if waited && !in_turn {
                tracing::debug!(after = self.released, next, "event ids never committed; going on past them");
            }
            self.released = next;
            self.missing_since = None;
            out.push(entry.remove());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use cloacina_domain::execution::{EventKind, ExecutionId};

    fn event(id: i64) -> EventRecord {
        EventRecord {
            id,
            execution_id: ExecutionId::from_uuid(uuid::Uuid::nil()),
            at: Utc::now(),
            kind: EventKind::TaskStarted,
            task: None,
            detail: serde_json::json!({}),
        }
    }

    fn ids(events: &[EventRecord]) -> Vec<i64> {
        events.iter().map(|e| e.id).collect()
    }

    #[test]
    fn an_unbroken_run_goes_out_at_once_and_seen_ids_never_twice() {
        let t = Instant::now();
        let mut order = InOrder::after(3);
        assert_eq!(ids(&order.offer([event(4), event(5), event(6)], t)), [4, 5, 6]);
        assert_eq!(ids(&order.offer([event(5), event(6), event(7)], t)), [7]);
        assert_eq!(order.released(), 7);
        assert!(!order.holding());
    }

    #[test]
    fn a_missing_id_holds_later_ones_until_it_commits() {
        let t = Instant::now();
        let mut order = InOrder::after(9);
        assert!(order.offer([event(11), event(12)], t).is_empty());
        assert!(order.holding());
        assert_eq!(order.released(), 9);
        let later = t + Duration::from_millis(500);
        assert_eq!(ids(&order.offer([event(10), event(11), event(12)], later)), [10, 11, 12]);
        assert!(!order.holding());
    }

    #[test]
    fn an_id_that_never_comes_is_passed_after_the_grace() {
        let t = Instant::now();
        let mut order = InOrder::with_grace(0, Duration::from_secs(2));
        assert_eq!(ids(&order.offer([event(1), event(3), event(4)], t)), [1]);
        assert!(order.offer([], t + Duration::from_millis(1999)).is_empty());
        assert_eq!(ids(&order.offer([], t + Duration::from_secs(2))), [3, 4]);
        // A second gap starts its own wait.
        let t2 = t + Duration::from_secs(3);
        assert!(order.offer([event(6)], t2).is_empty());
        assert!(order.offer([event(7)], t2 + Duration::from_secs(1)).is_empty());
        assert_eq!(ids(&order.offer([], t2 + Duration::from_secs(2))), [6, 7]);
        // Ids at or below what went out are ignored, even if they come late.
        assert!(order.offer([event(5), event(2)], t2 + Duration::from_secs(5)).is_empty());
    }
}
