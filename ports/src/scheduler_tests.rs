use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cloacina_domain::audit::AuditEntry;
use cloacina_domain::ports::{DueWork, FirePass, Lookup, NoMetrics, TriggerPage};
use cloacina_domain::trigger::TriggerRecord;
use tokio::sync::Semaphore;

use super::*;

/// Tenants `a*` on lane 0, whose passes wait at a gate; tenants `b*` on lane 1, whose passes
/// end at once. Records each pass that ended.
struct TwoLanes {
    due: Vec<TenantName>,
    gate: Semaphore,
    ended: Mutex<Vec<String>>,
}

#[async_trait]
impl TriggerStore for TwoLanes {
    async fn list_triggers(&self, _: &TenantName, _: u32, _: u64) -> Result<Option<TriggerPage>, StoreError> {
        unreachable!("the scheduler lists no triggers")
    }

    async fn get_trigger(&self, _: &TenantName, _: &str) -> Result<Lookup<TriggerRecord>, StoreError> {
        unreachable!("the scheduler reads no trigger")
    }

    async fn set_trigger_paused(
        &self,
        _: &TenantName,
        _: &str,
        _: bool,
        _: DateTime<Utc>,
        _: &AuditEntry,
    ) -> Result<Lookup<TriggerRecord>, StoreError> {
        unreachable!("the scheduler pauses nothing")
    }

    async fn due_trigger_tenants(&self, _: DateTime<Utc>) -> Result<DueWork, StoreError> {
        Ok(DueWork { tenants: self.due.clone(), next: None })
    }

    async fn fire_due(&self, tenant: &TenantName, _: DateTime<Utc>, _: usize) -> Result<Option<FirePass>, StoreError> {
        if self.pass_lane(tenant) == 0 {
            self.gate.acquire().await.expect("the gate stays open").forget();
        }
        self.ended.lock().unwrap().push(tenant.to_string());
        Ok(Some(FirePass::default()))
    }

    async fn wait_for_triggers(&self, _: Duration) {}

    fn pass_lane(&self, tenant: &TenantName) -> usize {
        usize::from(tenant.as_str().starts_with('b'))
    }
}

struct Now;

impl Clock for Now {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

#[tokio::test]
async fn a_lane_whose_passes_are_held_up_holds_back_no_other_lanes_tenants() {
    // Lane 0's tenants come first in the due list, more of them than go under way at once.
    let due = ["a0", "a1", "a2", "a3", "a4", "a5", "b0", "b1", "b2", "b3", "b4", "b5"];
    let store = Arc::new(TwoLanes {
        due: due.iter().map(|t| TenantName::parse(t).unwrap()).collect(),
        gate: Semaphore::new(0),
        ended: Mutex::new(Vec::new()),
    });
    let scheduler = Arc::new(TriggerScheduler {
        store: store.clone(),
        clock: Arc::new(Now),
        metrics: Arc::new(NoMetrics),
        per_lane: 2,
        backstop: Duration::from_secs(30),
    });
    let round = tokio::spawn({
        let scheduler = scheduler.clone();
        async move { scheduler.once().await }
    });
    // Every lane-1 pass ends while every lane-0 pass is held at the gate.
    tokio::time::timeout(Duration::from_secs(10), async {
        while store.ended.lock().unwrap().len() < 6 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("lane 1's passes ended while lane 0's were held up");
    let ended = store.ended.lock().unwrap().clone();
    assert!(ended.iter().all(|t| t.starts_with('b')), "{ended:?}");
    assert!(!round.is_finished(), "the round waits for lane 0");
    store.gate.add_permits(6);
    let wait = tokio::time::timeout(Duration::from_secs(10), round).await.expect("the round ends").unwrap();
    assert_eq!(wait, Duration::ZERO, "tenants were due: look again at once");
    assert_eq!(store.ended.lock().unwrap().len(), 12);
}
