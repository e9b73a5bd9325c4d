use chrono::TimeZone;
use proptest::prelude::*;

use super::*;

fn entry(n: u32) -> AuditEntry {
    let at = Utc.with_ymd_and_hms(2026, 12, 7, 10, 0, 0).single().expect("a time")
        + chrono::Duration::nanoseconds(i64::from(n) * 1_000_123);
    AuditEntry::new(
        at,
        Some(Actor { key_id: ApiKeyId::from_uuid(uuid::Uuid::from_u128(u128::from(n) + 1)), key_name: "ci".into() }),
        Some(TenantName::parse("acme").expect("a name")),
        AuditAction::WorkflowExecute,
        format!("target-{n}"),
        RequestOrigin { request_id: Some(format!("req-{n}")), client: Some("127.0.0.1".into()) },
    )
    .with("workflow", "nightly")
    .with("b", 2)
    .with("a", 1)
}

fn chain(len: u32) -> (Vec<AuditRecord>, ChainHead) {
    let mut head = ChainHead::default();
    let mut rows = Vec::new();
    for n in 0..len {
        let (row, next) = entry(n).link(&head);
        rows.push(row);
        head = next;
    }
    (rows, head)
}

#[test]
fn a_chain_as_written_verifies_and_reports_its_head() {
    let (rows, head) = chain(5);
    let summary = verify_chain(&head, &rows).expect("sound");
    assert_eq!((summary.rows, summary.first, summary.last), (5, Some(1), Some(5)));
    assert_eq!(summary.head_hash, rows[4].hash);
    assert_eq!(rows[0].prev_hash, GENESIS);
    assert_eq!(rows[1].prev_hash, rows[0].hash);
}

#[test]
fn an_empty_chain_verifies() {
    let summary = verify_chain(&ChainHead::default(), &[]).expect("sound");
    assert_eq!((summary.rows, summary.last), (0, None));
}

#[test]
fn an_edited_field_is_named_by_its_row() {
    let (mut rows, head) = chain(5);
    rows[2].entry.target = "something else".into();
    assert_eq!(verify_chain(&head, &rows), Err(ChainBreak::Edited { seq: 3 }));
    let (mut rows, head) = chain(5);
    rows[1].entry.detail.insert("workflow".into(), "other".into());
    assert_eq!(verify_chain(&head, &rows), Err(ChainBreak::Edited { seq: 2 }));
}

#[test]
fn a_deleted_row_in_the_middle_is_named() {
    let (mut rows, head) = chain(5);
    rows.remove(2);
    assert_eq!(verify_chain(&head, &rows), Err(ChainBreak::Missing { from: 3, to: 3 }));
}

#[test]
fn a_row_rehashed_after_an_edit_breaks_at_its_successor() {
    let (mut rows, head) = chain(5);
    rows[1].entry.target = "forged".into();
    rows[1].hash = row_hash(2, &rows[1].prev_hash.clone(), &rows[1].entry);
    assert_eq!(verify_chain(&head, &rows), Err(ChainBreak::Relinked { seq: 3, expected: 2 }));
}

#[test]
fn deleted_rows_at_the_end_are_caught_by_the_head() {
    let (mut rows, head) = chain(5);
    rows.truncate(3);
    assert_eq!(verify_chain(&head, &rows), Err(ChainBreak::Truncated { last: 3, head: 5 }));
}

#[test]
fn a_pruned_start_verifies_from_its_anchor_and_a_deleted_start_does_not() {
    let (rows, head) = chain(6);
    let pruned = head.pruned_through(&rows[2]);
    assert_eq!(verify_chain(&pruned, &rows[3..]).expect("sound").first, Some(4));
    assert_eq!(verify_chain(&head, &rows[3..]), Err(ChainBreak::Missing { from: 1, to: 3 }));
}

#[test]
fn the_hash_ignores_the_order_of_detail_keys_but_not_their_values() {
    let (rows, head) = chain(2);
    let mut reordered = rows.clone();
    let detail = std::mem::take(&mut reordered[1].entry.detail);
    let mut keys: Vec<_> = detail.into_iter().collect();
    keys.reverse();
    reordered[1].entry.detail = keys.into_iter().collect();
    assert!(verify_chain(&head, &reordered).is_ok());
}

#[test]
fn times_are_hashed_to_the_microsecond_so_both_backends_read_back_the_same_row() {
    let (rows, _) = chain(3);
    assert_eq!(rows[2].entry.at.timestamp_subsec_nanos() % 1000, 0);
}

#[test]
fn every_action_name_parses_back() {
    for a in AuditAction::ALL {
        assert_eq!(a.as_str().parse::<AuditAction>(), Ok(*a));
    }
    assert!("key.delete".parse::<AuditAction>().is_err());
}

proptest! {
    #[test]
    fn any_single_field_edit_of_any_row_is_found(len in 1u32..8, at in 0usize..8, text in "[a-z]{1,8}") {
        let (mut rows, head) = chain(len);
        let at = at % rows.len();
        rows[at].entry.target.push_str(&text);
        prop_assert!(verify_chain(&head, &rows).is_err());
    }
}
