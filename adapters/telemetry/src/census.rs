//! The census gauges: executions and queued tasks by state and tenant, the tenant label
//! bounded to the largest tenants and `other` whatever the number of tenants.

use std::sync::{Arc, RwLock};

use cloacina_ports::TenantCensus;
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Meter, ObservableGauge};

/// How many tenants the census gauges name; the rest are summed as `tenant="other"`, so the
/// series stay bounded however many tenants there are.
pub const CENSUS_TENANTS: usize = 20;

/// The census with every tenant past the `keep` largest (by executions and queued tasks)
/// summed into one named `other`.
pub(crate) fn bounded(mut census: Vec<TenantCensus>, keep: usize) -> Vec<TenantCensus> {
    let size = |c: &TenantCensus| c.executions.iter().chain(&c.tasks).map(|(_, n)| n).sum::<u64>();
    census.sort_by(|a, b| size(b).cmp(&size(a)).then(a.tenant.cmp(&b.tenant)));
    if census.len() <= keep {
        return census;
    }
    let rest = census.split_off(keep);
    let mut other = TenantCensus { tenant: "other".into(), ..TenantCensus::default() };
    for c in rest {
        for (into, from) in [(&mut other.executions, c.executions), (&mut other.tasks, c.tasks)] {
            for (state, n) in from {
                match into.iter_mut().find(|(s, _)| *s == state) {
                    Some((_, total)) => *total += n,
                    None => into.push((state, n)),
                }
            }
        }
    }
    census.push(other);
    census
}

/// `cloacina_executions` and `cloacina_queue_tasks`, read from the latest census at scrape time.
pub(crate) fn census_gauges(meter: &Meter, census: &Arc<RwLock<Vec<TenantCensus>>>) -> Vec<ObservableGauge<u64>> {
    let mut gauges = Vec::new();
    for (name, description, tasks) in [
        ("cloacina_executions", "Executions by state and tenant, at the last census (taken when scraped)", false),
        ("cloacina_queue_tasks", "Tasks ready to claim and running, by state and tenant, at the last census", true),
    ] {
        let c = census.clone();
        gauges.push(
            meter
                .u64_observable_gauge(name)
                .with_description(description)
                .with_callback(move |o| {
                    let Ok(census) = c.read() else { return };
                    for t in census.iter() {
                        for (state, n) in if tasks { &t.tasks } else { &t.executions } {
                            o.observe(
                                *n,
                                &[KeyValue::new("state", state.clone()), KeyValue::new("tenant", t.tenant.clone())],
                            );
                        }
                    }
                })
                .build(),
        );
    }
    gauges
}
