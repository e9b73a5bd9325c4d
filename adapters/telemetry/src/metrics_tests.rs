//! The Prometheus exposition of each metric (`metrics.rs`).

use super::*;

#[test]
fn counted_requests_and_auth_outcomes_appear_in_the_exposition() {
    let m = PrometheusMetrics::new().unwrap();
    m.http_request("GET", "/v1/auth/whoami", 200, 0.002);
    m.auth_outcome(AuthOutcome::BadChecksum);
    m.auth_cache(true);
    m.argon2_verification();
    let text = m.render();
    assert!(
        text.contains(r#"cloacina_http_requests_total{method="GET",route="/v1/auth/whoami",status="200"} 1"#),
        "{text}"
    );
    assert!(text.contains("cloacina_http_request_duration_seconds_bucket"), "{text}");
    assert!(text.contains(r#"cloacina_auth_attempts_total{outcome="bad_checksum"} 1"#), "{text}");
    assert!(text.contains(r#"cloacina_auth_cache_lookups_total{result="hit"} 1"#), "{text}");
    assert!(text.contains("cloacina_auth_argon2_verifications_total 1"), "{text}");
    assert!(!text.contains("cloacina_db_pool"), "no pool, no pool series: {text}");
}

#[test]
fn the_census_names_the_twenty_largest_tenants_and_sums_the_rest_as_other() {
    let m = PrometheusMetrics::new().unwrap();
    assert!(!m.render().contains("cloacina_executions{"), "no census, no series");
    let census: Vec<TenantCensus> = (0..25u64)
        .map(|n| TenantCensus {
            tenant: format!("t{n:02}"),
            executions: vec![("Completed".into(), n + 1), ("Pending".into(), 1)],
            tasks: vec![("ready".into(), 2)],
        })
        .collect();
    m.census(census);
    let text = m.render();
    let named: std::collections::BTreeSet<&str> = text
        .lines()
        .filter(|l| l.starts_with("cloacina_executions{"))
        .filter_map(|l| l.split("tenant=\"").nth(1)?.split('"').next())
        .collect();
    assert_eq!(named.len(), 21, "20 named and other: {named:?}");
    assert!(named.contains("t24") && !named.contains("t00"), "the largest are named: {named:?}");
    // t00..t04 folded: Completed 1+2+3+4+5, Pending 5, ready 10.
    assert!(text.contains(r#"cloacina_executions{state="Completed",tenant="other"} 15"#), "{text}");
    assert!(text.contains(r#"cloacina_executions{state="Pending",tenant="other"} 5"#), "{text}");
    assert!(text.contains(r#"cloacina_queue_tasks{state="ready",tenant="other"} 10"#), "{text}");
    assert!(text.contains(r#"cloacina_executions{state="Completed",tenant="t24"} 25"#), "{text}");
}

#[test]
fn the_pool_is_read_when_metrics_are_rendered() {
    let m = PrometheusMetrics::new().unwrap();
    let in_use = Arc::new(AtomicU64::new(3));
    let seen = in_use.clone();
    m.observe_pool(Arc::new(move || cloacina_ports::PoolStats {
        in_use: u32::try_from(seen.load(Ordering::Relaxed)).unwrap_or(0),
        idle: 2,
        max: 16,
    }));
    let text = m.render();
    assert!(text.contains(r#"cloacina_db_pool_connections{state="in_use"} 3"#), "{text}");
    assert!(text.contains(r#"cloacina_db_pool_connections{state="idle"} 2"#), "{text}");
    assert!(text.contains("cloacina_db_pool_max_connections 16"), "{text}");
    in_use.store(7, Ordering::Relaxed);
    assert!(m.render().contains(r#"cloacina_db_pool_connections{state="in_use"} 7"#));
}

#[test]
fn engine_claims_attempts_and_slots_appear_in_the_exposition() {
    let m = PrometheusMetrics::new().unwrap();
    assert!(!m.render().contains("cloacina_worker_slots"), "no workers, no slot series");
    m.tasks_claimed(3, 0.001);
    m.task_attempt(AttemptOutcome::Succeeded, 0.2);
    m.task_attempt(AttemptOutcome::Failed, 1.5);
    m.observe_workers(Arc::new(|| (1, 4)));
    let text = m.render();
    assert!(text.contains("cloacina_tasks_claimed_total 3"), "{text}");
    assert!(text.contains("cloacina_claim_duration_seconds_bucket"), "{text}");
    assert!(text.contains(r#"cloacina_task_attempts_total{outcome="succeeded"} 1"#), "{text}");
    assert!(text.contains(r#"cloacina_task_attempts_total{outcome="failed"} 1"#), "{text}");
    assert!(text.contains(r#"cloacina_task_duration_seconds_bucket{outcome="failed""#), "{text}");
    assert!(text.contains(r#"cloacina_worker_slots{state="busy"} 1"#), "{text}");
    assert!(text.contains(r#"cloacina_worker_slots{state="free"} 3"#), "{text}");
}

#[test]
fn trigger_fires_lateness_leadership_and_prunes_appear_in_the_exposition() {
    let m = PrometheusMetrics::new().unwrap();
    let text = m.render();
    assert!(text.contains("cloacina_leader 0"), "a server starts as a follower: {text}");
    assert!(text.contains("cloacina_leadership_changes_total 0"), "{text}");
    m.trigger_fires(FireOutcome::Fired, 2);
    m.trigger_fires(FireOutcome::Missed, 5);
    m.trigger_fires(FireOutcome::SkippedPaused, 0);
    for seconds in [0.2, 0.9, 1.2] {
        m.trigger_lateness(seconds);
    }
    m.leadership(true);
    m.retention_pruned(7);
    let text = m.render();
    assert!(text.contains(r#"cloacina_trigger_fires_total{outcome="fired"} 2"#), "{text}");
    assert!(text.contains(r#"cloacina_trigger_fires_total{outcome="missed"} 5"#), "{text}");
    assert!(!text.contains("skipped_paused"), "no count, no series: {text}");
    for (le, n) in [("0.1", 0), ("0.25", 1), ("0.75", 1), ("1", 2), ("1.25", 3), ("1.5", 3)] {
        let line = format!("cloacina_trigger_fire_lateness_seconds_bucket{{le=\"{le}\"}} {n}\n");
        assert!(text.contains(&line), "{line}: {text}");
    }
    assert!(text.contains("cloacina_leader 1"), "{text}");
    assert!(text.contains("cloacina_leadership_changes_total 1"), "{text}");
    assert!(text.contains("cloacina_retention_prunes_total 1"), "{text}");
    assert!(text.contains("cloacina_executions_pruned_total 7"), "{text}");
    m.leadership(false);
    let text = m.render();
    assert!(text.contains("cloacina_leader 0") && text.contains("cloacina_leadership_changes_total 2"), "{text}");
}
