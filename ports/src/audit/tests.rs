use std::sync::atomic::{AtomicI64, Ordering};

use chrono::TimeZone;
use cloacina_domain::audit::{AuditAction, AuditOutcome};
use cloacina_domain::ports::{MockAuditStore, MockClock, MockTenantStore};

use super::*;

/// A clock the test moves: seconds after 2026-12-07 10:00:00 UTC.
fn clock(now: Arc<AtomicI64>) -> MockClock {
    let mut c = MockClock::new();
    let start = Utc.with_ymd_and_hms(2026, 12, 7, 10, 0, 0).single().expect("a time");
    c.expect_now().returning(move || start + Duration::seconds(now.load(Ordering::SeqCst)));
    c
}

#[tokio::test]
async fn failed_authentications_reach_the_control_chain_as_one_row_per_address_a_minute() {
    let now = Arc::new(AtomicI64::new(5));
    let written = Arc::new(Mutex::new(Vec::new()));
    let mut store = MockAuditStore::new();
    let sink = written.clone();
    store.expect_append_audit().returning(move |entries| {
        sink.lock().expect("lock").extend(entries.iter().cloned());
        Ok(())
    });
    let audit = Audit::new(Arc::new(store), Arc::new(MockTenantStore::new()), Arc::new(clock(now.clone())));
    for _ in 0..17 {
        audit.failed_authentication("192.0.2.7");
    }
    audit.failed_authentication("198.51.100.1");
    // The minute has not ended: nothing is written yet.
    assert_eq!(audit.flush_failures(false).await.expect("flushed"), 0);
    now.store(65, Ordering::SeqCst);
    audit.failed_authentication("192.0.2.7");
    assert_eq!(audit.flush_failures(false).await.expect("flushed"), 2);
    let rows = written.lock().expect("lock").clone();
    let of = |client: &str| rows.iter().find(|e| e.target == client).expect("a row for the address").clone();
    let first = of("192.0.2.7");
    assert_eq!(first.action, AuditAction::AuthFailures);
    assert_eq!(first.outcome, AuditOutcome::Denied);
    assert_eq!((first.detail["count"].as_u64(), first.tenant, first.actor), (Some(17), None, None));
    assert_eq!(of("198.51.100.1").detail["count"].as_u64(), Some(1));
    // The new minute's failure goes at shutdown.
    assert_eq!(audit.flush_failures(true).await.expect("flushed"), 1);
    assert_eq!(written.lock().expect("lock").last().map(|e| e.detail["count"].as_u64()), Some(Some(1)));
}

#[tokio::test]
async fn counts_that_could_not_be_written_are_kept_for_the_next_flush() {
    let now = Arc::new(AtomicI64::new(5));
    let mut store = MockAuditStore::new();
    let mut calls = 0;
    store.expect_append_audit().returning(move |entries| {
        calls += 1;
        if calls == 1 {
            return Err(StoreError::Unavailable("down".into()));
        }
        assert_eq!(entries[0].detail["count"].as_u64(), Some(3));
        Ok(())
    });
    let audit = Audit::new(Arc::new(store), Arc::new(MockTenantStore::new()), Arc::new(clock(now)));
    for _ in 0..3 {
        audit.failed_authentication("192.0.2.7");
    }
    assert!(audit.flush_failures(true).await.is_err());
    assert_eq!(audit.flush_failures(true).await.expect("flushed"), 1);
}

#[tokio::test]
async fn entries_made_in_a_request_carry_its_origin_and_elsewhere_none() {
    let caller = Principal {
        key_id: cloacina_domain::ApiKeyId::from_uuid(uuid::Uuid::from_u128(7)),
        key_name: "ci".into(),
        authority: cloacina_domain::Authority::God,
        expires_at: None,
    };
    let origin = RequestOrigin { request_id: Some("req-1".into()), client: Some("192.0.2.7".into()) };
    let inside =
        with_origin(origin.clone(), async { entry(Utc::now(), &caller, None, AuditAction::TenantCreate, "acme") })
            .await;
    assert_eq!(inside.origin, origin);
    assert_eq!(inside.actor.map(|a| a.key_name), Some("ci".into()));
    let outside = entry(Utc::now(), &caller, None, AuditAction::TenantCreate, "acme");
    assert_eq!(outside.origin, RequestOrigin::default());
}
