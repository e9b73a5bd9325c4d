//! The `EventFeed` and `TicketStore` contracts: a tenant's events as one stream in id order,
//! and single-use tickets.

use std::sync::Arc;

use cloacina_domain::execution::{Attempt, ExecutionId, OutputPiece};
use cloacina_domain::ports::Lookup;
use cloacina_domain::{ApiKeyId, TenantName};
use uuid::Uuid;

use crate::Store;
use crate::executions::{RecordOne, claim, create, new_execution, report, secs, setup, t0};

pub async fn the_tenant_feed_is_every_executions_events_in_id_order_in_pages(store: Store) {
    let public = TenantName::public();
    assert_eq!(store.last_event_id(&public).await.unwrap(), Some(0), "no events yet");
    let (plan, package) = setup(&store, 0).await;
    let first = new_execution(&plan, package, t0(), None);
    let second = new_execution(&plan, package, t0() + secs(1), None);
    create(&store, &first).await;
    create(&store, &second).await;
    let a = claim(&store, "w", t0() + secs(2), 1).await.remove(0);
    store.record_one(&public, "w", &report(&a, Attempt::Succeeded, None), t0() + secs(3)).await.unwrap();

    let mut expected = Vec::new();
    for id in [first.id, second.id] {
        expected.extend(store.execution_events(&public, id, 0, 1000).await.unwrap().into_found().unwrap());
    }
    expected.sort_by_key(|e| e.id);
    let all = store.tenant_events(&public, 0, 1000).await.unwrap().unwrap();
    assert_eq!(all, expected, "both executions' events, in id order");
    assert!(all.len() >= 5);
    let page = store.tenant_events(&public, 0, 2).await.unwrap().unwrap();
    assert_eq!(page, all[..2]);
    let rest = store.tenant_events(&public, page[1].id, 1000).await.unwrap().unwrap();
    assert_eq!(rest, all[2..]);
    assert_eq!(store.last_event_id(&public).await.unwrap(), Some(all.last().unwrap().id));
    assert!(store.tenant_events(&public, all.last().unwrap().id, 10).await.unwrap().unwrap().is_empty());

    let unknown = TenantName::parse("nobody-here").unwrap();
    assert_eq!(store.tenant_events(&unknown, 0, 10).await.unwrap(), None);
    assert_eq!(store.last_event_id(&unknown).await.unwrap(), None);
    assert_eq!(store.tenant_output(&unknown, 0, 10).await.unwrap(), None);
    assert_eq!(store.last_output_id(&unknown).await.unwrap(), None);
    assert_eq!(store.execution_output(&unknown, first.id, 0, 10).await.unwrap(), Lookup::NoTenant);
}

pub async fn the_tenant_output_is_every_kept_piece_in_id_order_and_by_execution(store: Store) {
    let public = TenantName::public();
    assert_eq!(store.last_output_id(&public).await.unwrap(), Some(0));
    let (plan, package) = setup(&store, 0).await;
    let first = new_execution(&plan, package, t0(), None);
    let second = new_execution(&plan, package, t0() + secs(1), None);
    create(&store, &first).await;
    create(&store, &second).await;
    let a = claim(&store, "w", t0() + secs(2), 1).await.remove(0);
    assert_eq!(a.key.execution_id, first.id);
    store.record_one(&public, "w", &report(&a, Attempt::Succeeded, None), t0() + secs(3)).await.unwrap();
    let running = claim(&store, "w", t0() + secs(4), 1).await.remove(0);
    assert_eq!(running.key.execution_id, second.id);
    let partial = OutputPiece {
        key: running.key,
        task_id: running.task_id.clone(),
        attempt: running.attempt,
        stdout: "half way\n".into(),
        stderr: "careful\n".into(),
        truncated: false,
        ended: false,
    };
    store.append_output(&public, partial, t0() + secs(5)).await.unwrap();

    let all = store.tenant_output(&public, 0, 100).await.unwrap().unwrap();
    assert_eq!(all.len(), 2, "{all:?}");
    assert!(all[0].id < all[1].id);
    assert_eq!(
        (all[0].execution_id, all[0].task_id.as_str(), all[0].attempt, all[0].ended),
        (first.id, "a", 1, true),
        "the piece kept with the outcome ends its attempt"
    );
    assert_eq!(all[0].stdout, "out of a #1");
    assert_eq!(
        (all[1].execution_id, all[1].stdout.as_str(), all[1].stderr.as_str()),
        (second.id, "half way\n", "careful\n")
    );
    assert!(!all[1].ended);
    assert_eq!(all[1].at, t0() + secs(5));
    assert_eq!(store.tenant_output(&public, all[0].id, 100).await.unwrap().unwrap(), all[1..]);
    assert_eq!(store.tenant_output(&public, 0, 1).await.unwrap().unwrap(), all[..1]);
    assert_eq!(store.last_output_id(&public).await.unwrap(), Some(all[1].id));
    assert_eq!(store.execution_output(&public, second.id, 0, 100).await.unwrap(), Lookup::Found(all[1..].to_vec()));
    assert_eq!(store.execution_output(&public, first.id, all[0].id, 100).await.unwrap(), Lookup::Found(Vec::new()));
    let unknown = ExecutionId::from_uuid(Uuid::new_v4());
    assert_eq!(store.execution_output(&public, unknown, 0, 100).await.unwrap(), Lookup::Missing);
}

fn digest(n: u8) -> [u8; 32] {
    [n; 32]
}

pub async fn a_ticket_is_redeemed_once_before_it_expires_and_never_after(store: Store) {
    let key = ApiKeyId::from_uuid(Uuid::new_v4());
    let until = t0() + secs(60);
    store.insert_ticket(digest(1), key, until, t0()).await.unwrap();
    assert_eq!(store.redeem_ticket(digest(1), t0() + secs(1)).await.unwrap(), Some(key));
    assert_eq!(store.redeem_ticket(digest(1), t0() + secs(2)).await.unwrap(), None, "single-use");
    assert_eq!(store.redeem_ticket(digest(9), t0()).await.unwrap(), None, "unknown");

    store.insert_ticket(digest(2), key, until, t0()).await.unwrap();
    assert_eq!(store.redeem_ticket(digest(2), until).await.unwrap(), None, "expired at its time");

    // Inserting sweeps what expired: ticket 3 is gone before its own time comes.
    store.insert_ticket(digest(3), key, t0() + secs(10), t0()).await.unwrap();
    store.insert_ticket(digest(4), key, t0() + secs(80), t0() + secs(20)).await.unwrap();
    assert_eq!(store.redeem_ticket(digest(3), t0() + secs(5)).await.unwrap(), None);

    // Of concurrent redeemers, exactly one gets the key.
    store.insert_ticket(digest(5), key, until, t0()).await.unwrap();
    let store = Arc::new(store);
    let racers: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.redeem_ticket(digest(5), t0() + secs(1)).await.unwrap() })
        })
        .collect();
    let mut won = 0;
    for r in racers {
        if r.await.unwrap() == Some(key) {
            won += 1;
        }
    }
    assert_eq!(won, 1);
}
