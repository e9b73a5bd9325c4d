//! The engine's rules, each against mocked ports on tokio's paused clock: fairness across
//! tenants, heartbeats stopping an attempt whose lease is gone, give-back at shutdown, outcomes
//! recorded in batches, stale outcomes, a tenant's attempts stopped when it is deleted, and an
//! attempt never dropped for a poisoned lock.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{TimeZone, Utc};
use cloacina_domain::TenantName;
use cloacina_domain::execution::{AttemptReport, ClaimedTask, ExecutionId, OutputPiece, Recorded, TaskKey};
use cloacina_domain::package::TaskLimits;
use cloacina_domain::ports::{
    DueWork, MockClock, MockPackageFiles, MockTaskQueue, MockTaskRunner, OutputSink, OutputStream, StopSignal,
    StoreError, TaskOutcome, TaskRun,
};
use tokio::sync::watch;

use super::{EngineConfig, EnginePorts, EngineRun};
use cloacina_domain::ports::{AttemptOutcome, AuthOutcome, Metrics, PoolProbe, WorkerProbe};

/// Counts attempt outcomes, and holds the output pieces the queue was given to keep.
#[derive(Default)]
struct Outcomes {
    counts: Mutex<BTreeMap<&'static str, u32>>,
    pieces: Mutex<Vec<OutputPiece>>,
}

impl Outcomes {
    fn get(&self, outcome: AttemptOutcome) -> u32 {
        self.counts.lock().unwrap().get(outcome.as_str()).copied().unwrap_or(0)
    }

    fn pieces(&self) -> Vec<OutputPiece> {
        self.pieces.lock().unwrap().clone()
    }
}

impl Metrics for Outcomes {
    fn http_request(&self, _: &'static str, _: &'static str, _: u16, _: f64) {}
    fn auth_outcome(&self, _: AuthOutcome) {}
    fn auth_cache(&self, _: bool) {}
    fn argon2_verification(&self) {}
    fn observe_pool(&self, _: PoolProbe) {}
    fn tasks_claimed(&self, _: u64, _: f64) {}
    fn task_attempt(&self, outcome: AttemptOutcome, _: f64) {
        *self.counts.lock().unwrap().entry(outcome.as_str()).or_default() += 1;
    }
    fn observe_workers(&self, _: WorkerProbe) {}
    fn trigger_fires(&self, _: cloacina_domain::trigger::FireOutcome, _: u64) {}
    fn trigger_lateness(&self, _: f64) {}
    fn leadership(&self, _: bool) {}
    fn retention_pruned(&self, _: u64) {}
    fn socket_opened(&self) {}
    fn socket_closed(&self, _: u16) {}
    fn frame_sent(&self) {}
    fn census(&self, _: Vec<cloacina_domain::ports::TenantCensus>) {}
    fn render(&self) -> String {
        String::new()
    }
}

fn tenant(name: &str) -> TenantName {
    TenantName::parse(name).unwrap()
}

fn task(n: u128) -> ClaimedTask {
    ClaimedTask {
        key: TaskKey { execution_id: ExecutionId::from_uuid(uuid::Uuid::from_u128(n)), position: 0 },
        attempt: 1,
        task_id: format!("t{n}"),
        package_id: uuid::Uuid::nil(),
        command: vec!["true".into()],
        env: BTreeMap::new(),
        secrets: Default::default(),
        timeout: Duration::from_secs(3600),
        limits: TaskLimits::default(),
        context: serde_json::Map::new(),
        network: None,
    }
}

fn ran(output: TaskOutcome) -> TaskRun {
    TaskRun { outcome: output, stdout_cut: 0, stderr_cut: 0, duration: Duration::ZERO }
}

/// The ports, with a queue the test shapes, a runner that takes `run_for` per attempt, and a
/// fixed wall clock.
fn engine(queue: MockTaskQueue, run_for: Duration, workers: usize) -> (EngineRun, Arc<Outcomes>) {
    let mut runner = MockTaskRunner::new();
    runner.expect_run().returning(|_, _, _| ran(TaskOutcome::Succeeded { output: None }));
    let runner = Slow { inner: runner, run_for };
    let mut files = MockPackageFiles::new();
    files.expect_workdir().returning(|_, _| Ok(std::path::PathBuf::from("/nonexistent")));
    let mut clock = MockClock::new();
    clock.expect_now().returning(|| Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap());
    let outcomes = Arc::new(Outcomes::default());
    let ports = EnginePorts {
        queue: Arc::new(Waiting(queue, outcomes.clone())),
        runner: Arc::new(runner),
        files: Arc::new(files),
        secrets: Arc::new(crate::NoSecrets),
        clock: Arc::new(clock),
        metrics: outcomes.clone(),
    };
    let config = EngineConfig { workers, lease: Duration::from_secs(30), batch: 32, poll: Duration::from_secs(30) };
    (EngineRun::new(ports, config, "w1".into()), outcomes)
}

/// The mocked queue, whose wait for work takes its time on tokio's clock (a mock answers at
/// once, and the engine's loop would then never let the clock move), and which keeps output
/// pieces in the test's [`Outcomes`].
struct Waiting(MockTaskQueue, Arc<Outcomes>);

#[async_trait::async_trait]
impl cloacina_domain::ports::TaskQueue for Waiting {
    async fn due_tenants(&self, now: chrono::DateTime<Utc>) -> Result<DueWork, StoreError> {
        self.0.due_tenants(now).await
    }
    async fn claim(
        &self,
        tenant: &TenantName,
        worker: &str,
        now: chrono::DateTime<Utc>,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<ClaimedTask>, StoreError> {
        self.0.claim(tenant, worker, now, lease, limit).await
    }
    async fn renew(
        &self,
        tenant: &TenantName,
        worker: &str,
        keys: Vec<TaskKey>,
        until: chrono::DateTime<Utc>,
    ) -> Result<Vec<TaskKey>, StoreError> {
        self.0.renew(tenant, worker, keys, until).await
    }
    async fn record(
        &self,
        tenant: &TenantName,
        worker: &str,
        reports: Vec<AttemptReport>,
        now: chrono::DateTime<Utc>,
    ) -> Result<Vec<Recorded>, StoreError> {
        self.0.record(tenant, worker, reports, now).await
    }
    async fn release(
        &self,
        tenant: &TenantName,
        worker: &str,
        keys: Vec<TaskKey>,
        now: chrono::DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.0.release(tenant, worker, keys, now).await
    }
    async fn append_output(
        &self,
        _: &TenantName,
        piece: OutputPiece,
        _: chrono::DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.1.pieces.lock().unwrap().push(piece);
        Ok(())
    }
    async fn wait_for_work(&self, max: Duration) {
        tokio::time::sleep(max.max(Duration::from_millis(1))).await;
    }
}

/// A runner that prints `started` at once, takes `run_for` (on tokio's clock), prints `done`
/// and answers as `inner` does; told to stop, it stops.
struct Slow {
    inner: MockTaskRunner,
    run_for: Duration,
}

#[async_trait::async_trait]
impl cloacina_domain::ports::TaskRunner for Slow {
    async fn run(
        &self,
        job: cloacina_domain::ports::TaskJob,
        output: Arc<dyn OutputSink>,
        stop: StopSignal,
    ) -> TaskRun {
        output.write(OutputStream::Stdout, b"started\n");
        tokio::select! {
            () = tokio::time::sleep(self.run_for) => {}
            () = stop => return ran(TaskOutcome::Stopped),
        }
        output.write(OutputStream::Stdout, b"done\n");
        self.inner.run(job, output, Box::pin(std::future::pending())).await
    }
}

/// The claims a queue was asked for: (tenant, limit), in order.
type Claims = Arc<Mutex<Vec<(String, usize)>>>;

/// A queue whose tenants are due until their tasks are claimed.
fn queue_with(tasks: Vec<(&'static str, Vec<ClaimedTask>)>) -> (MockTaskQueue, Claims) {
    let pending: Arc<Mutex<BTreeMap<String, Vec<ClaimedTask>>>> =
        Arc::new(Mutex::new(tasks.into_iter().map(|(t, v)| (t.to_owned(), v)).collect()));
    let claims = Arc::new(Mutex::new(Vec::new()));
    let mut q = MockTaskQueue::new();
    let p = pending.clone();
    q.expect_due_tenants().returning(move |_| {
        let tenants = p.lock().unwrap().iter().filter(|(_, v)| !v.is_empty()).map(|(t, _)| tenant(t)).collect();
        Ok(DueWork { tenants, next: None })
    });
    let (p, c) = (pending.clone(), claims.clone());
    q.expect_claim().returning(move |t, _, _, _, limit| {
        c.lock().unwrap().push((t.to_string(), limit));
        let mut p = p.lock().unwrap();
        let v = p.entry(t.to_string()).or_default();
        let n = limit.min(v.len());
        Ok(v.drain(..n).collect())
    });
    (q, claims)
}

async fn until(mut done: impl FnMut() -> bool) {
    for _ in 0..10_000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never happened");
}

#[tokio::test(start_paused = true)]
async fn a_tenant_with_a_deep_backlog_does_not_starve_one_with_a_single_task() {
    let backlog: Vec<ClaimedTask> = (0..100).map(task).collect();
    let (mut queue, claims) = queue_with(vec![("deep", backlog), ("small", vec![task(1000)])]);
    queue.expect_record().returning(|_, _, r, _| Ok(r.iter().map(|_| Recorded::Done { readied: false }).collect()));
    queue.expect_renew().returning(|_, _, keys, _| Ok(keys));
    let (engine, _) = engine(queue, Duration::from_secs(60), 4);
    let (stop, rx) = watch::channel(false);
    let handle = engine;
    let run = tokio::spawn(handle.run(rx, Duration::ZERO));
    until(|| claims.lock().unwrap().iter().any(|(t, _)| t == "small")).await;
    let first_round: Vec<(String, usize)> = claims.lock().unwrap().iter().take(2).cloned().collect();
    assert!(first_round.iter().any(|(t, _)| t == "small"), "small is claimed in the first round: {first_round:?}");
    assert!(first_round.iter().all(|(_, n)| *n <= 2), "each takes a fair share of the 4 slots: {first_round:?}");
    let _ = stop.send(true);
    run.abort();
}

#[tokio::test(start_paused = true)]
async fn a_heartbeat_that_finds_the_lease_gone_stops_the_attempt() {
    let (mut queue, _) = queue_with(vec![("acme", vec![task(1)])]);
    // The execution was cancelled: the renewal holds nothing.
    queue.expect_renew().returning(|_, _, _, _| Ok(Vec::new()));
    queue.expect_record().never();
    let (engine, outcomes) = engine(queue, Duration::from_secs(3600), 2);
    let (stop, rx) = watch::channel(false);
    let (engine, handle) = (engine.engine().clone(), engine);
    let run = tokio::spawn(handle.run(rx, Duration::ZERO));
    until(|| outcomes.get(AttemptOutcome::Stopped) == 1).await;
    assert_eq!(engine.running(), 0, "nothing of it is left running");
    // Its output was kept as it came (before the heartbeat, due a third of the lease in),
    // and its end with it.
    let pieces = outcomes.pieces();
    assert_eq!(
        pieces.iter().map(|p| (p.stdout.as_str(), p.ended)).collect::<Vec<_>>(),
        [("started\n", false), ("", true)]
    );
    assert_eq!(outcomes.get(AttemptOutcome::Stopped), 1, "counted once");
    let _ = stop.send(true);
    run.abort();
}

#[tokio::test(start_paused = true)]
async fn output_is_kept_while_the_attempt_runs_and_the_rest_goes_with_its_outcome() {
    let (mut queue, _) = queue_with(vec![("acme", vec![task(4)])]);
    queue.expect_renew().returning(|_, _, keys, _| Ok(keys));
    let reports = Arc::new(Mutex::new(Vec::new()));
    let r = reports.clone();
    queue.expect_record().returning(move |_, _, got, _| {
        r.lock().unwrap().extend(got.iter().cloned());
        Ok(got.iter().map(|_| Recorded::Done { readied: false }).collect())
    });
    let (engine, outcomes) = engine(queue, Duration::from_secs(5), 2);
    let (stop, rx) = watch::channel(false);
    let run = tokio::spawn(engine.run(rx, Duration::ZERO));
    until(|| outcomes.get(AttemptOutcome::Succeeded) == 1).await;
    let pieces = outcomes.pieces();
    assert_eq!(pieces.len(), 1, "kept once while it ran: {pieces:?}");
    assert_eq!((pieces[0].stdout.as_str(), pieces[0].ended, pieces[0].attempt), ("started\n", false, 1));
    let reports = reports.lock().unwrap().clone();
    assert_eq!(reports.iter().map(|r| r.stdout.as_str()).collect::<Vec<_>>(), ["done\n"], "the rest, with the outcome");
    let _ = stop.send(true);
    run.abort();
}

#[tokio::test(start_paused = true)]
async fn at_shutdown_an_unfinished_attempt_is_given_back_after_the_drain() {
    let (mut queue, _) = queue_with(vec![("acme", vec![task(7)])]);
    queue.expect_renew().returning(|_, _, keys, _| Ok(keys));
    queue.expect_record().never();
    let released = Arc::new(Mutex::new(Vec::new()));
    let r = released.clone();
    queue.expect_release().returning(move |t, _, keys, _| {
        r.lock().unwrap().push((t.to_string(), keys));
        Ok(())
    });
    let (engine, outcomes) = engine(queue, Duration::from_secs(3600), 2);
    let (stop, rx) = watch::channel(false);
    let (engine, handle) = (engine.engine().clone(), engine);
    let run = tokio::spawn(handle.run(rx, Duration::from_secs(5)));
    until(|| engine.running() == 1).await;
    let _ = stop.send(true);
    run.await.unwrap();
    let released = released.lock().unwrap().clone();
    assert_eq!(released.len(), 1, "{released:?}");
    assert_eq!((released[0].0.as_str(), released[0].1.clone()), ("acme", vec![task(7).key]));
    assert_eq!(outcomes.get(AttemptOutcome::Stopped), 1);
    let kept: String = outcomes.pieces().iter().map(|p| p.stdout.as_str()).collect();
    assert_eq!(kept, "started\n", "a given-back attempt keeps its output");
    assert!(outcomes.pieces().last().is_some_and(|p| p.ended));
}

#[tokio::test(start_paused = true)]
async fn outcomes_that_finish_together_are_recorded_in_one_call() {
    let tasks: Vec<ClaimedTask> = (0..8).map(task).collect();
    let (mut queue, _) = queue_with(vec![("acme", tasks)]);
    queue.expect_renew().returning(|_, _, keys, _| Ok(keys));
    let batches = Arc::new(Mutex::new(Vec::new()));
    let b = batches.clone();
    queue.expect_record().returning(move |_, _, reports, _| {
        b.lock().unwrap().push(reports.len());
        Ok(reports.iter().map(|_| Recorded::Done { readied: false }).collect())
    });
    let (engine, outcomes) = engine(queue, Duration::from_secs(1), 8);
    let (stop, rx) = watch::channel(false);
    let handle = engine;
    let run = tokio::spawn(handle.run(rx, Duration::ZERO));
    until(|| outcomes.get(AttemptOutcome::Succeeded) == 8).await;
    let batches = batches.lock().unwrap().clone();
    assert_eq!(batches.iter().sum::<usize>(), 8, "{batches:?}");
    assert!(batches.len() < 8, "eight outcomes at once take fewer than eight transactions: {batches:?}");
    let _ = stop.send(true);
    run.abort();
}

#[tokio::test(start_paused = true)]
async fn an_outcome_the_store_calls_stale_is_dropped_and_counted_as_such() {
    let (mut queue, _) = queue_with(vec![("acme", vec![task(3)])]);
    queue.expect_renew().returning(|_, _, keys, _| Ok(keys));
    queue.expect_record().returning(|_, _, r, _| Ok(r.iter().map(|_| Recorded::Stale).collect()));
    let (engine, outcomes) = engine(queue, Duration::from_millis(10), 2);
    let (stop, rx) = watch::channel(false);
    let handle = engine;
    let run = tokio::spawn(handle.run(rx, Duration::ZERO));
    until(|| outcomes.get(AttemptOutcome::Stale) == 1).await;
    assert_eq!(outcomes.get(AttemptOutcome::Succeeded), 0);
    let _ = stop.send(true);
    run.abort();
}

#[tokio::test(start_paused = true)]
async fn a_deleted_tenants_attempts_stop_and_another_tenants_run_on() {
    let (mut queue, _) = queue_with(vec![("doomed", vec![task(1), task(2)]), ("other", vec![task(3)])]);
    queue.expect_renew().returning(|_, _, keys, _| Ok(keys));
    queue.expect_record().never();
    let (engine, outcomes) = engine(queue, Duration::from_secs(3600), 4);
    let (stop, rx) = watch::channel(false);
    let (engine, handle) = (engine.engine().clone(), engine);
    let run = tokio::spawn(handle.run(rx, Duration::ZERO));
    until(|| engine.running() == 3).await;
    assert_eq!(engine.stop_tenant(&tenant("doomed")), 2);
    assert_eq!(engine.running(), 1, "the other tenant's attempt runs on");
    assert_eq!(outcomes.get(AttemptOutcome::Stopped), 2);
    let _ = stop.send(true);
    run.abort();
}

/// The delete commits after a claim did but is heard before the claim comes back: the claimed
/// attempts must not start (on PostgreSQL the stop comes from the listener, in any order with
/// the claim's answer). A claim asked after the stop (a tenant of the same name created again)
/// runs as usual.
#[tokio::test(start_paused = true)]
async fn attempts_claimed_before_their_tenant_was_deleted_but_back_after_the_stop_never_start() {
    let slot: Arc<std::sync::OnceLock<Arc<super::Engine>>> = Arc::default();
    let mut queue = MockTaskQueue::new();
    let claims = Arc::new(Mutex::new(0));
    let c = claims.clone();
    queue.expect_due_tenants().returning(move |_| {
        let tenants = if *c.lock().unwrap() < 2 { vec![tenant("doomed")] } else { Vec::new() };
        Ok(DueWork { tenants, next: None })
    });
    let (s, c) = (slot.clone(), claims.clone());
    queue.expect_claim().returning(move |t, _, _, _, _| {
        let mut n = c.lock().unwrap();
        *n += 1;
        if *n == 1 {
            // The tenant's delete is heard while its claim is on the wire.
            assert_eq!(s.get().unwrap().stop_tenant(t), 0, "nothing of it runs yet");
            return Ok(vec![task(1), task(2)]);
        }
        Ok(if *n == 2 { vec![task(3)] } else { Vec::new() })
    });
    queue.expect_renew().returning(|_, _, keys, _| Ok(keys));
    let recorded = Arc::new(Mutex::new(Vec::new()));
    let r = recorded.clone();
    queue.expect_record().returning(move |_, _, reports, _| {
        r.lock().unwrap().extend(reports.iter().map(|x| x.key));
        Ok(reports.iter().map(|_| Recorded::Done { readied: false }).collect())
    });
    let (handle, outcomes) = engine(queue, Duration::from_millis(10), 4);
    let engine = handle.engine().clone();
    assert!(slot.set(engine.clone()).is_ok());
    let (stop, rx) = watch::channel(false);
    let run = tokio::spawn(handle.run(rx, Duration::ZERO));
    until(|| outcomes.get(AttemptOutcome::Succeeded) == 1).await;
    assert_eq!(outcomes.get(AttemptOutcome::Stopped), 2, "both attempts of the in-flight claim were dropped");
    assert_eq!(*recorded.lock().unwrap(), vec![task(3).key], "only the later claim ran");
    let _ = stop.send(true);
    run.abort();
}

#[tokio::test(start_paused = true)]
async fn a_poisoned_lock_never_drops_a_claimed_attempt() {
    let (mut queue, _) = queue_with(vec![("acme", vec![task(9)])]);
    queue.expect_renew().returning(|_, _, keys, _| Ok(keys));
    queue.expect_record().returning(|_, _, r, _| Ok(r.iter().map(|_| Recorded::Done { readied: false }).collect()));
    let (handle, outcomes) = engine(queue, Duration::from_millis(10), 2);
    // Something panicked while it held the running attempts' lock.
    let poisoner = handle.engine().clone();
    let _ = std::thread::spawn(move || {
        let _held = poisoner.running.lock().unwrap();
        panic!("poison the lock");
    })
    .join();
    assert!(handle.engine().running.is_poisoned());
    let (stop, rx) = watch::channel(false);
    let run = tokio::spawn(handle.run(rx, Duration::ZERO));
    until(|| outcomes.get(AttemptOutcome::Succeeded) == 1).await;
    let _ = stop.send(true);
    run.abort();
}
