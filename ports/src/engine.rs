//! The engine: a server's workers, claiming ready tasks from the queue in the database,
//! running them through the runner port, and recording how they ended (docs/engine.md).
//!
//! One loop claims; each claimed attempt runs in a task of its own, holding one of the
//! server's `workers` slots. The loop takes the tenants with work due round-robin, claiming
//! a fair share of the free slots for each, so a tenant with a deep backlog cannot starve
//! another. It sleeps while nothing is due, until a wake-up (a commit that readied tasks,
//! on any replica), the earliest known due time, or the slow poll. A heartbeat renews the
//! leases of running attempts every third of the lease; an attempt whose lease is gone
//! (expired, or its execution cancelled) is stopped. On shutdown the loop stops claiming,
//! running attempts get the drain time to finish, and the rest are given back.
//!
//! Here: the claim loop and the attempts. `record` holds the recorder, `leases` the
//! heartbeat and the give-back at shutdown, `output` an attempt's output kept as it comes. [`EngineRun`] is the one right to run it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cloacina_domain::TenantName;
use cloacina_domain::execution::{Attempt, AttemptReport, ClaimedTask, Recorded, TaskKey};
use cloacina_domain::ports::{
    Clock, PackageFiles, SecretSource, StopSignal, StoreError, TaskJob, TaskOutcome, TaskQueue, TaskRun, TaskRunner,
};

use crate::AttemptOutcome;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};
use tokio::task::AbortHandle;

/// How a server's workers behave.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The most task attempts this server runs at once.
    pub workers: usize,
    /// How long a claim holds a task without a heartbeat.
    pub lease: Duration,
    /// The most tasks claimed from one tenant in one query.
    pub batch: usize,
    /// The slow poll: how long the loop sleeps at most with nothing due.
    pub poll: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self { workers: 4, lease: Duration::from_secs(30), batch: 32, poll: Duration::from_secs(30) }
    }
}

/// The ports the engine drives.
#[derive(Clone)]
pub struct EnginePorts {
    pub queue: Arc<dyn TaskQueue>,
    pub runner: Arc<dyn TaskRunner>,
    pub files: Arc<dyn PackageFiles>,
    /// Opens the secrets a task declares, as its attempt starts.
    pub secrets: Arc<dyn SecretSource>,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<dyn crate::Metrics>,
}

impl std::fmt::Debug for EnginePorts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EnginePorts")
    }
}

/// A running attempt. Dropping it (taking it out of the map) tells the attempt to stop: it
/// kills its sandbox and keeps its output; `abort` drops it where it stands instead.
struct Running {
    tenant: TenantName,
    attempt: u32,
    abort: AbortHandle,
    _stop: oneshot::Sender<()>,
}

/// An outcome waiting to be recorded, and where to say how that went.
struct ToRecord {
    tenant: TenantName,
    report: AttemptReport,
    done: oneshot::Sender<Result<Recorded, StoreError>>,
}

/// The most outcomes recorded in one transaction.
const RECORD_BATCH: usize = 64;

/// A server's workers.
pub struct Engine {
    ports: EnginePorts,
    config: EngineConfig,
    worker: String,
    slots: Arc<Semaphore>,
    running: Mutex<HashMap<TaskKey, Running>>,
    /// Recently deleted tenants: the number of the stop that took each one's attempts, and
    /// when. A claim in flight at the stop committed before the delete and comes back after
    /// it: its attempts must not start. Taken only while `running` is held, so a stop and a
    /// start never interleave.
    stopped: Mutex<HashMap<TenantName, (u64, tokio::time::Instant)>>,
    /// How many tenant stops there have been; a claim notes it before it is asked.
    stops: AtomicU64,
    /// A slot came free or this server readied tasks.
    local: Notify,
    /// Outcomes go to one recorder, which writes all that have queued up in one transaction:
    /// one at a time when idle, batched under load.
    outcomes: mpsc::UnboundedSender<ToRecord>,
}

/// The one right to run an [`Engine`], handed out with it by [`EngineRun::new`]: running consumes
/// it, so an engine runs once, and it owns the recorder's end of the outcome channel.
#[must_use = "an engine claims nothing until its run is started"]
pub struct EngineRun {
    engine: Arc<Engine>,
    recorder: mpsc::UnboundedReceiver<ToRecord>,
}

impl std::fmt::Debug for EngineRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineRun").field("engine", &self.engine).finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("worker", &self.worker).field("config", &self.config).finish_non_exhaustive()
    }
}

fn std_until(from: chrono::DateTime<chrono::Utc>, to: chrono::DateTime<chrono::Utc>) -> Duration {
    (to - from).to_std().unwrap_or(Duration::ZERO)
}

fn later(now: chrono::DateTime<chrono::Utc>, d: Duration) -> chrono::DateTime<chrono::Utc> {
    now + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

impl EngineRun {
    /// An engine whose leases carry `worker` as their owner (unique per server process), and
    /// the right to run it.
    pub fn new(ports: EnginePorts, config: EngineConfig, worker: String) -> Self {
        let slots = Arc::new(Semaphore::new(config.workers.max(1)));
        let (outcomes, recorder) = mpsc::unbounded_channel();
        let engine = Arc::new(Engine {
            ports,
            config,
            worker,
            slots,
            running: Mutex::new(HashMap::new()),
            stopped: Mutex::new(HashMap::new()),
            stops: AtomicU64::new(0),
            local: Notify::new(),
            outcomes,
        });
        Self { engine, recorder }
    }

    /// The engine, to hand to whoever must reach it while it runs (to stop a deleted
    /// tenant's attempts, to count what runs).
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// Runs until `stop` turns true, then drains for at most `drain` and gives back what is
    /// still running.
    pub async fn run(self, stop: watch::Receiver<bool>, drain: Duration) {
        self.engine.run(self.recorder, stop, drain).await;
    }
}

impl Engine {
    /// Attempts running now.
    pub fn running(&self) -> usize {
        self.attempts().len()
    }

    /// The running attempts. The map holds plain data, changed in single steps, so a panic
    /// while it was held leaves it whole: a poisoned lock is taken over, never a reason to drop
    /// an attempt.
    fn attempts(&self) -> std::sync::MutexGuard<'_, HashMap<TaskKey, Running>> {
        self.running.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Stops every attempt of `tenant` this server runs, because the tenant is gone: each is
    /// aborted, which kills its sandbox and every process in it, and nothing is recorded (its
    /// schema went with it). Returns how many were stopped.
    pub fn stop_tenant(&self, tenant: &TenantName) -> usize {
        let mut running = self.attempts();
        {
            // Claims in flight longer than a lease hold nothing worth running anyway.
            let now = tokio::time::Instant::now();
            let mut stopped = self.stopped.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            stopped.retain(|_, (_, at)| now.duration_since(*at) < self.config.lease);
            let stop = self.stops.fetch_add(1, Ordering::SeqCst) + 1;
            stopped.insert(tenant.clone(), (stop, now));
        }
        let doomed: Vec<TaskKey> = running.iter().filter(|(_, r)| r.tenant == *tenant).map(|(k, _)| *k).collect();
        for key in &doomed {
            if let Some(r) = running.remove(key) {
                r.abort.abort();
                self.ports.metrics.task_attempt(AttemptOutcome::Stopped, 0.0);
            }
        }
        if !doomed.is_empty() {
            tracing::info!(%tenant, stopped = doomed.len(), "tenant deleted: its running attempts were stopped");
        }
        doomed.len()
    }

    /// A tenant was deleted: its attempts stop ([`Engine::stop_tenant`]) and the package
    /// folders this server unpacked for it are removed.
    pub async fn purge_tenant(&self, tenant: &TenantName) {
        self.stop_tenant(tenant);
        self.ports.files.forget_tenant(tenant).await;
    }

    /// Runs until `stop` turns true, then drains for at most `drain` and gives back what is
    /// still running.
    async fn run(
        self: Arc<Self>,
        recorder: mpsc::UnboundedReceiver<ToRecord>,
        mut stop: watch::Receiver<bool>,
        drain: Duration,
    ) {
        let heartbeat = tokio::spawn(self.clone().heartbeat());
        let recorder = tokio::spawn(self.clone().record_loop(recorder));
        let mut cursor = 0usize;
        tracing::info!(worker = %self.worker, workers = self.config.workers, "workers started");
        let (slots, all) = (self.slots.clone(), self.config.workers.max(1) as u64);
        self.ports
            .metrics
            .observe_workers(Arc::new(move || (all.saturating_sub(slots.available_permits() as u64), all)));
        loop {
            if *stop.borrow() || stop.has_changed().is_err() {
                break;
            }
            if self.slots.available_permits() == 0 {
                tokio::select! {
                    () = self.local.notified() => continue,
                    _ = stop.changed() => continue,
                }
            }
            let now = self.ports.clock.now();
            let due = match self.ports.queue.due_tenants(now).await {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the work queue; trying again");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = stop.changed() => {}
                    }
                    continue;
                }
            };
            let (claimed, more) = self.claim_round(&due.tenants, &mut cursor).await;
            if more {
                continue;
            }
            let mut wait = due.next.map_or(self.config.poll, |n| std_until(now, n)).min(self.config.poll);
            if claimed == 0 && !due.tenants.is_empty() {
                // Due, yet nothing to claim: another replica holds it, uncommitted. Look again soon.
                wait = wait.min(Duration::from_millis(50));
            }
            tokio::select! {
                () = self.ports.queue.wait_for_work(wait) => {}
                () = self.local.notified() => {}
                _ = stop.changed() => {}
            }
        }
        self.drain(drain).await;
        heartbeat.abort();
        recorder.abort();
        tracing::info!(worker = %self.worker, "workers stopped");
    }

    /// One round over the tenants with work due; returns how many attempts were claimed and
    /// whether more may be waiting (a claim came back full).
    async fn claim_round(self: &Arc<Self>, tenants: &[TenantName], cursor: &mut usize) -> (usize, bool) {
        if tenants.is_empty() {
            return (0, false);
        }
        let n = tenants.len();
        let start = *cursor % n;
        *cursor = cursor.wrapping_add(1);
        let share = (self.slots.available_permits() / n).clamp(1, self.config.batch.max(1));
        let (mut claimed, mut more) = (0, false);
        for i in 0..n {
            let tenant = &tenants[(start + i) % n];
            let want = share.min(self.slots.available_permits());
            if want == 0 {
                return (claimed, true);
            }
            let permits = match self.slots.clone().try_acquire_many_owned(u32::try_from(want).unwrap_or(1)) {
                Ok(p) => p,
                Err(_) => return (claimed, true),
            };
            let now = self.ports.clock.now();
            let (started, asked) = (std::time::Instant::now(), self.stops.load(Ordering::SeqCst));
            match self.ports.queue.claim(tenant, &self.worker, now, self.config.lease, want).await {
                Ok(tasks) => {
                    self.ports.metrics.tasks_claimed(tasks.len() as u64, started.elapsed().as_secs_f64());
                    more |= tasks.len() == want;
                    claimed += tasks.len();
                    let mut permits = permits;
                    for task in tasks {
                        let Some(permit) = permits.split(1) else { break };
                        self.start(tenant.clone(), task, permit, asked);
                    }
                }
                Err(e) => tracing::warn!(%tenant, error = %e, "cannot claim tasks"),
            }
        }
        (claimed, more)
    }

    /// Starts a claimed attempt, unless its tenant was deleted after the claim was asked (the
    /// claim was asked when there had been `asked` stops).
    fn start(self: &Arc<Self>, tenant: TenantName, task: ClaimedTask, permit: OwnedSemaphorePermit, asked: u64) {
        let key = task.key;
        let mut running = self.attempts();
        let gone = self
            .stopped
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&tenant)
            .is_some_and(|(stop, _)| *stop > asked);
        if gone {
            drop((running, permit));
            self.local.notify_one();
            self.ports.metrics.task_attempt(AttemptOutcome::Stopped, 0.0);
            tracing::info!(%tenant, execution = %key.execution_id, position = key.position,
                "claimed attempt not started: its tenant was deleted while the claim was in flight");
            return;
        }
        let engine = self.clone();
        let t = tenant.clone();
        let attempt = task.attempt;
        let started = std::time::Instant::now();
        let (stop, stopped) = oneshot::channel();
        let handle = tokio::spawn(async move {
            let outcome = engine.attempt(&t, task, stopped).await;
            engine.ports.metrics.task_attempt(outcome, started.elapsed().as_secs_f64());
            {
                // Unless it was taken out (stopped) and the task claimed here again since.
                let mut running = engine.attempts();
                if running.get(&key).is_some_and(|r| r.attempt == attempt) {
                    running.remove(&key);
                }
            }
            drop(permit);
            engine.local.notify_one();
        });
        running.insert(key, Running { tenant, attempt, abort: handle.abort_handle(), _stop: stop });
    }

    /// Runs one attempt and records its outcome, retrying the record while the database is
    /// unavailable (until the lease would have run out: then another worker runs it again).
    /// Its output is kept as it comes; an attempt told to stop (`stop` resolves) keeps its
    /// output and records nothing.
    async fn attempt(&self, tenant: &TenantName, task: ClaimedTask, mut stop: oneshot::Receiver<()>) -> AttemptOutcome {
        // The task's secrets first: they are masked in everything kept of its output.
        let secrets = if task.secrets.is_empty() {
            Ok(Vec::new())
        } else {
            self.ports.secrets.resolve(tenant, &task.secrets).await
        };
        let masks: Vec<String> = secrets.iter().flatten().map(|(_, v)| v.expose().to_owned()).collect();
        let pending = Arc::new(output::Pending::masking(masks.clone()));
        let run = match self.ports.files.workdir(tenant, task.package_id).await {
            Ok(_) if !matches!(stop.try_recv(), Err(oneshot::error::TryRecvError::Empty)) => {
                return AttemptOutcome::Stopped;
            }
            Ok(_) if secrets.is_err() => TaskRun {
                outcome: TaskOutcome::Failed {
                    reason: format!(
                        "cannot set the task's secrets: {}",
                        secrets.as_ref().err().cloned().unwrap_or_default()
                    ),
                },
                stdout_cut: 0,
                stderr_cut: 0,
                duration: Duration::ZERO,
            },
            Ok(workdir) => {
                let job = TaskJob {
                    tenant: tenant.clone(),
                    workdir,
                    command: task.command.clone(),
                    env: task.env.clone(),
                    secrets: secrets.unwrap_or_default(),
                    context: task.context.clone(),
                    timeout: task.timeout,
                    limits: task.limits,
                    network: task.network,
                };
                let stop: StopSignal = Box::pin(async move { drop(stop.await) });
                self.run_keeping_output(tenant, &task, job, &pending, stop).await
            }
            Err(reason) => TaskRun {
                outcome: TaskOutcome::Failed { reason: format!("cannot prepare the package: {reason}") },
                stdout_cut: 0,
                stderr_cut: 0,
                duration: Duration::ZERO,
            },
        };
        let (mut stdout, mut stderr) = pending.take(true);
        stdout.push_str(&output::cut_note("stdout", run.stdout_cut));
        stderr.push_str(&output::cut_note("stderr", run.stderr_cut));
        let truncated = run.truncated();
        let succeeded = matches!(run.outcome, TaskOutcome::Succeeded { .. });
        let (outcome, output) = match run.outcome {
            TaskOutcome::Succeeded { output } => (Attempt::Succeeded, output.map(|o| output::mask_object(o, &masks))),
            TaskOutcome::Failed { reason } => (Attempt::Failed(reason), None),
            TaskOutcome::TimedOut => {
                (Attempt::Failed(format!("timed out after {}", humantime::format_duration(task.timeout))), None)
            }
            TaskOutcome::Stopped => {
                self.keep_last(tenant, &task, stdout, stderr, truncated).await;
                return AttemptOutcome::Stopped;
            }
        };
        let report = AttemptReport { key: task.key, attempt: task.attempt, outcome, output, stdout, stderr, truncated };
        let mut wait = Duration::from_millis(100);
        let mut waited = Duration::ZERO;
        loop {
            let (done, result) = oneshot::channel();
            let queued = ToRecord { tenant: tenant.clone(), report: report.clone(), done };
            if self.outcomes.send(queued).is_err() {
                return AttemptOutcome::Stopped;
            }
            let Ok(recorded) = result.await else { return AttemptOutcome::Stopped };
            match recorded {
                Ok(Recorded::Done { readied }) => {
                    if readied {
                        self.local.notify_one();
                    }
                    return if succeeded { AttemptOutcome::Succeeded } else { AttemptOutcome::Failed };
                }
                Ok(Recorded::Stale) => {
                    tracing::info!(%tenant, execution = %task.key.execution_id, task = %task.task_id,
                        "attempt no longer held (lease expired or execution cancelled); outcome dropped");
                    // Its output is still its own.
                    self.keep_last(tenant, &task, report.stdout, report.stderr, report.truncated).await;
                    return AttemptOutcome::Stale;
                }
                Err(StoreError::Unavailable(e)) if waited < self.config.lease => {
                    tracing::warn!(%tenant, error = %e, "cannot record a task outcome yet; retrying");
                    tokio::time::sleep(wait).await;
                    waited += wait;
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
                Err(e) => {
                    tracing::error!(%tenant, execution = %task.key.execution_id, task = %task.task_id, error = %e,
                        "cannot record a task outcome; its lease will expire and it will run again");
                    return AttemptOutcome::Stale;
                }
            }
        }
    }
}

mod leases;
mod output;
mod record;

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
