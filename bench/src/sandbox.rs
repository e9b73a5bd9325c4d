//! B10: what the task sandbox costs an attempt. Real `true` processes through the real
//! runner, sandboxed (bubblewrap, the task user, `prlimit`) and unconfined, interleaved in the
//! same run so that the machine's drift cancels out.

use std::os::unix::fs::PermissionsExt as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cloacina_domain::TenantName;
use cloacina_domain::package::TaskLimits;
use cloacina_domain::ports::{OutputSink, OutputStream, TaskJob, TaskOutcome, TaskRunner};
use cloacina_runner::{ProcessRunner, Sandbox, TaskDir, TaskIdentity, TaskNetwork, find_bwrap};

use crate::Options;
use crate::load::median;

fn quantile(sorted: &[f64], q: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted.get(i).copied().unwrap_or(f64::NAN)
}

/// A sink that drops what it is given: the bench measures starting attempts, not output.
struct Discard;

impl OutputSink for Discard {
    fn write(&self, _: OutputStream, _: &[u8]) {}
}

/// Attempts per second with `slots` attempts in flight for `seconds`.
async fn throughput(runner: Arc<ProcessRunner>, job: &TaskJob, slots: usize, seconds: u64) -> f64 {
    let until = Instant::now() + Duration::from_secs(seconds);
    let mut handles = Vec::new();
    for _ in 0..slots {
        let (runner, job) = (runner.clone(), job.clone());
        handles.push(tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < until {
                let r = runner.run(job.clone(), Arc::new(Discard), Box::pin(std::future::pending())).await;
                assert!(matches!(r.outcome, TaskOutcome::Succeeded { .. }), "{:?}", r.outcome);
                n += 1;
            }
            n
        }));
    }
    let mut total = 0;
    for h in handles {
        total += h.await.unwrap_or(0);
    }
    total as f64 / seconds as f64
}

pub async fn b10(o: &Options) -> anyhow::Result<String> {
    let root = tempfile::tempdir()?;
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o711))?;
    let identity = TaskIdentity::resolve(None).map_err(anyhow::Error::msg)?;
    let task_dir = TaskDir::create(&root.path().join("tasks"), &identity).map_err(anyhow::Error::msg)?;
    let package = root.path().join("package");
    std::fs::create_dir(&package)?;
    std::fs::set_permissions(&package, std::fs::Permissions::from_mode(0o755))?;
    let bwrap = find_bwrap().map_err(anyhow::Error::msg)?;
    let sandbox = Sandbox::new(bwrap, identity.clone(), TaskNetwork::None, &task_dir);
    let sandboxed = Arc::new(ProcessRunner::sandboxed(sandbox, task_dir.clone()));
    let unconfined = Arc::new(ProcessRunner::unconfined(task_dir, identity.clone()));
    let job = TaskJob {
        tenant: TenantName::public(),
        workdir: package,
        command: vec!["true".into()],
        env: Default::default(),
        secrets: Vec::new(),
        context: Default::default(),
        timeout: Duration::from_secs(30),
        limits: TaskLimits::default(),
        network: None,
    };
    let attempts = (o.runs * 50).max(200);
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for i in 0..attempts {
        // Alternate which goes first, so neither always follows the other's cleanup.
        let order: [(&ProcessRunner, bool); 2] = if i % 2 == 0 {
            [(&sandboxed, true), (&unconfined, false)]
        } else {
            [(&unconfined, false), (&sandboxed, true)]
        };
        for (runner, is_sandboxed) in order {
            let start = Instant::now();
            let r = runner.run(job.clone(), Arc::new(Discard), Box::pin(std::future::pending())).await;
            anyhow::ensure!(matches!(r.outcome, TaskOutcome::Succeeded { .. }), "{:?}", r.outcome);
            let ms = start.elapsed().as_secs_f64() * 1000.0;
            if is_sandboxed { with.push(ms) } else { without.push(ms) }
        }
    }
    with.sort_by(f64::total_cmp);
    without.sort_by(f64::total_cmp);
    let slots = 4;
    let mut tps_with = Vec::new();
    let mut tps_without = Vec::new();
    for _ in 0..3 {
        tps_with.push(throughput(sandboxed.clone(), &job, slots, o.seconds.max(2)).await);
        tps_without.push(throughput(unconfined.clone(), &job, slots, o.seconds.max(2)).await);
    }
    let (p50_with, p50_without) = (quantile(&with, 0.5), quantile(&without, 0.5));
    let out = [
        format!(
            "### B10 — the task sandbox: one attempt of `true`, {attempts} of each kind interleaved; then {slots} at a time, 3 rounds of {}s (task user: {})",
            o.seconds.max(2),
            identity.name
        ),
        String::new(),
        "| figure | sandboxed | unconfined | added by the sandbox | goal |".into(),
        "|---|---|---|---|---|".into(),
        format!(
            "| attempt p50 | {p50_with:.2} ms | {p50_without:.2} ms | {:.2} ms | < 10 ms |",
            p50_with - p50_without
        ),
        format!(
            "| attempt p99 | {:.2} ms | {:.2} ms | {:.2} ms | |",
            quantile(&with, 0.99),
            quantile(&without, 0.99),
            quantile(&with, 0.99) - quantile(&without, 0.99)
        ),
        format!(
            "| attempts/s, {slots} slots (median of 3) | {:.0} | {:.0} | {:.2}× | |",
            median(tps_with.clone()),
            median(tps_without.clone()),
            median(tps_with) / median(tps_without)
        ),
        String::new(),
        "An attempt here is the runner's whole `run`: scratch folder made and locked, context written, the process \
         started (through `bwrap` and `prlimit` when sandboxed), waited for, its output read and its folder removed."
            .into(),
    ];
    Ok(out.join("\n"))
}
