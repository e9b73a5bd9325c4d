//! The live feed on mock storage: order across a missing id, catching up from `since` with
//! nothing twice, slow consumers closed, and a revoked key's sockets told to close.

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use cloacina_domain::execution::{EventKind, EventRecord, ExecutionId, OutputRecord};
use cloacina_domain::ports::{MockEventFeed, MockExecutionStore, MockKeyStore};
use cloacina_domain::{ApiKeyId, Authority, Principal, TenantName};

use super::*;

type Stored = Arc<Mutex<Vec<EventRecord>>>;

thread_local! {
    /// The output pieces the feed holds, per test thread.
    static OUTPUT: Arc<Mutex<Vec<OutputRecord>>> = Arc::default();
}

fn piece(id: i64) -> OutputRecord {
    OutputRecord {
        id,
        execution_id: ExecutionId::from_uuid(uuid::Uuid::from_u128(7)),
        task_id: "t".into(),
        attempt: 1,
        stdout: format!("line {id}\n"),
        stderr: String::new(),
        truncated: false,
        ended: false,
        at: Utc::now(),
    }
}

fn event(id: i64) -> EventRecord {
    EventRecord {
        id,
        execution_id: ExecutionId::from_uuid(uuid::Uuid::from_u128(7)),
        at: Utc::now(),
        kind: EventKind::TaskStarted,
        task: None,
        detail: serde_json::json!({}),
    }
}

fn god() -> Principal {
    Principal {
        key_id: ApiKeyId::from_uuid(uuid::Uuid::from_u128(1)),
        key_name: "god".into(),
        authority: Authority::God,
        expires_at: None,
    }
}

/// A live feed over `stored`, whose tail starts after `start`.
fn live(stored: &Stored, start: i64, buffer: usize, keys: MockKeyStore) -> Live {
    let mut feed = MockEventFeed::new();
    feed.expect_last_event_id().returning(move |_| Ok(Some(start)));
    let rows = stored.clone();
    feed.expect_tenant_events().returning(move |_, since, limit| {
        let rows = rows.lock().unwrap();
        let mut page: Vec<EventRecord> = rows.iter().filter(|e| e.id > since).cloned().collect();
        page.sort_by_key(|e| e.id);
        page.truncate(limit as usize);
        Ok(Some(page))
    });
    feed.expect_last_output_id().returning(|_| Ok(Some(0)));
    let pieces = OUTPUT.with(|o| o.clone());
    feed.expect_tenant_output().returning(move |_, since, _| {
        Ok(Some(pieces.lock().unwrap().iter().filter(|p| p.id > since).cloned().collect()))
    });
    let config = LiveConfig { backstop: Duration::from_millis(20), buffer, per_key: 4 };
    Live::new(Arc::new(feed), Arc::new(MockExecutionStore::new()), Arc::new(keys), config)
}

async fn ids(sub: &mut Subscription, n: usize) -> Vec<i64> {
    let mut out = Vec::new();
    while out.len() < n {
        match tokio::time::timeout(Duration::from_secs(5), sub.next()).await.unwrap() {
            Next::Event(e) => out.push(e.id),
            Next::Output(p) => panic!("output {} unasked", p.id),
            Next::Closed(why) => panic!("closed ({why:?}) after {out:?}"),
        }
    }
    out
}

#[tokio::test]
async fn events_go_out_in_id_order_across_a_missing_id_and_a_late_subscriber_catches_up_once() {
    let stored: Stored = Arc::new(Mutex::new((1..=10).map(event).collect()));
    let live = live(&stored, 10, 64, MockKeyStore::new());
    let public = TenantName::public();
    let mut now = live.subscribe(&god(), &public, Scope::Tenant, None).await.unwrap();
    let mut from_five = live.subscribe(&god(), &public, Scope::Tenant, Some(5)).await.unwrap();
    assert_eq!(ids(&mut from_five, 5).await, [6, 7, 8, 9, 10], "what it missed, from the store");

    // 11 is not committed yet: 12 and 13 wait for it.
    stored.lock().unwrap().extend([event(12), event(13)]);
    (live.bell())(&public);
    assert!(tokio::time::timeout(Duration::from_millis(150), now.next()).await.is_err(), "12 waits for 11");
    stored.lock().unwrap().push(event(11));
    (live.bell())(&public);
    assert_eq!(ids(&mut now, 3).await, [11, 12, 13]);
    assert_eq!(ids(&mut from_five, 3).await, [11, 12, 13], "nothing twice, nothing skipped");
    assert_eq!(live.open_sockets(), 2);
    drop(now);
    assert_eq!(live.open_sockets(), 1);
}

#[tokio::test]
async fn a_subscriber_that_falls_behind_its_buffer_is_closed_as_a_slow_consumer() {
    let stored: Stored = Arc::new(Mutex::new(Vec::new()));
    let live = live(&stored, 0, 16, MockKeyStore::new());
    let public = TenantName::public();
    let mut slow = live.subscribe(&god(), &public, Scope::Tenant, None).await.unwrap();
    stored.lock().unwrap().extend((1..=40).map(event));
    (live.bell())(&public);
    tokio::time::sleep(Duration::from_millis(200)).await;
    match slow.next().await {
        Next::Closed(why) => assert_eq!(why, Closed::SlowConsumer),
        other => panic!("a consumer 40 behind a buffer of 16 got {other:?}"),
    }
    // It resumes from where it got to, with `since`.
    let mut resumed = live.subscribe(&god(), &public, Scope::Tenant, Some(slow.last())).await.unwrap();
    assert_eq!(ids(&mut resumed, 40).await, (1..=40).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_revoked_keys_sockets_are_told_to_close_and_a_key_has_at_most_its_cap_of_sockets() {
    let stored: Stored = Arc::new(Mutex::new(Vec::new()));
    let mut keys = MockKeyStore::new();
    keys.expect_find().returning(|_| Ok(None));
    let live = live(&stored, 0, 64, keys);
    let public = TenantName::public();
    let mut subs = Vec::new();
    for _ in 0..4 {
        subs.push(live.subscribe(&god(), &public, Scope::Tenant, None).await.unwrap());
    }
    assert!(matches!(live.subscribe(&god(), &public, Scope::Tenant, None).await, Err(LiveError::TooMany(4))));
    live.key_changed(god().key_id);
    for mut sub in subs {
        match tokio::time::timeout(Duration::from_secs(5), sub.next()).await.unwrap() {
            Next::Closed(why) => assert_eq!(why, Closed::KeyRevoked),
            other => panic!("got {other:?}"),
        }
    }
    live.close_all();
    assert!(matches!(live.subscribe(&god(), &public, Scope::Tenant, None).await, Err(LiveError::ShuttingDown)));
}

#[tokio::test]
async fn an_execution_socket_asking_for_output_gets_each_piece_before_the_event_committed_with_it() {
    let stored: Stored = Arc::new(Mutex::new(Vec::new()));
    let live = live(&stored, 0, 64, MockKeyStore::new());
    let public = TenantName::public();
    let execution = Scope::Execution(ExecutionId::from_uuid(uuid::Uuid::from_u128(7)));
    let mut with = live.subscribe_with_output(&god(), &public, execution, None, Some(0)).await.unwrap();
    let mut without = live.subscribe(&god(), &public, execution, None).await.unwrap();
    OUTPUT.with(|o| o.lock().unwrap().extend([piece(1), piece(2)]));
    stored.lock().unwrap().push(event(1));
    (live.bell())(&public);
    let mut got = Vec::new();
    for _ in 0..3 {
        match tokio::time::timeout(Duration::from_secs(5), with.next()).await.unwrap() {
            Next::Output(p) => got.push(format!("output {}", p.id)),
            Next::Event(e) => got.push(format!("event {}", e.id)),
            Next::Closed(why) => panic!("{why:?}"),
        }
    }
    assert_eq!(got, ["output 1", "output 2", "event 1"]);
    assert_eq!(with.last_output(), Some(2));
    match tokio::time::timeout(Duration::from_secs(5), without.next()).await.unwrap() {
        Next::Event(e) => assert_eq!(e.id, 1, "no output unless asked"),
        other => panic!("{other:?}"),
    }
}
