//! The task runner a worker server uses: the sandbox made and tested at start-up, or, where
//! it cannot be made, no task running at all (fail closed) unless `--unsafe-no-sandbox` says
//! otherwise.

use std::path::PathBuf;

use anyhow::Context as _;
use cloacina_cli::args::SandboxArgs;
use cloacina_cli::home::Home;
use cloacina_domain::package::{AttemptLimits, DEFAULT_LIMITS};
use cloacina_runner::{ProcessRunner, Sandbox, TaskCgroups, TaskDir, TaskIdentity, TaskNetwork, find_bwrap};

/// The task folder when none is configured: inside the home, unless the server runs as root
/// and so runs tasks as another user, who cannot pass through a private home.
fn default_task_dir(home: &Home, identity: &TaskIdentity) -> PathBuf {
    if identity.switch { PathBuf::from("/var/lib/cloacina/tasks") } else { home.dir().join("tasks") }
}

/// The runner, or `None` with the reason logged and printed when tasks cannot be sandboxed.
///
/// # Errors
/// Settings that cannot work whatever the host: an unknown or root task user, a task folder
/// that cannot be made.
pub async fn runner(home: &Home, args: &SandboxArgs) -> anyhow::Result<Option<ProcessRunner>> {
    let identity = TaskIdentity::resolve(args.task_user.as_deref()).map_err(anyhow::Error::msg)?;
    let dir = args.task_dir.clone().unwrap_or_else(|| default_task_dir(home, &identity));
    let task_dir = TaskDir::create(&dir, &identity).map_err(anyhow::Error::msg).context("--task-dir")?;
    let swept = task_dir.sweep();
    if swept > 0 {
        tracing::info!(swept, dir = %task_dir.root().display(), "removed scratch folders left by attempts of a server that died");
    }
    let ceilings = AttemptLimits {
        memory: args.task_max_memory,
        processes: args.task_max_processes,
        open_files: args.task_max_open_files,
        cpu_time: args.task_max_cpu_time,
    };
    let with_limits = |mut r: ProcessRunner| {
        r.ceilings = ceilings;
        r
    };
    if args.unsafe_no_sandbox {
        tracing::warn!(
            "--unsafe-no-sandbox: tasks run WITHOUT a sandbox, as this server's own user, and can read its keys, \
             its database and every tenant's files"
        );
        return Ok(Some(with_limits(ProcessRunner::unconfined(task_dir, identity))));
    }
    let network: TaskNetwork = args.task_network.parse().map_err(anyhow::Error::msg)?;
    let made = match find_bwrap().and_then(|bwrap| {
        let sandbox = Sandbox::new(bwrap, identity, network, &task_dir);
        match &args.task_cgroup {
            Some(dir) => TaskCgroups::prepare(dir)
                .map(|c| sandbox.with_cgroups(c))
                .map_err(|e| format!("--task-cgroup {}: {e}", dir.display())),
            None => Ok(sandbox),
        }
    }) {
        Ok(sandbox) => sandbox.probe(&task_dir, &DEFAULT_LIMITS.min_with(&ceilings)).await.map(|()| sandbox),
        Err(why) => Err(why),
    };
    match made {
        Ok(sandbox) => {
            let limits = sandbox.cgroups().map_or_else(
                || "rlimits".to_owned(),
                |c| format!("rlimits and a cgroup per attempt under {}", c.root().display()),
            );
            tracing::info!(user = %sandbox.identity().name, network = %network, dir = %task_dir.root().display(),
                %limits, "task sandbox ready");
            Ok(Some(with_limits(ProcessRunner::sandboxed(sandbox, task_dir))))
        }
        Err(why) => {
            eprintln!(
                "cannot run tasks: {why}\nThis server runs no tasks: install bubblewrap and restart it, or pass \
                 --workers 0 to say it serves the API only (--unsafe-no-sandbox runs tasks unconfined, for \
                 debugging only)."
            );
            tracing::error!(reason = %why, "the task sandbox cannot be made: this server runs no tasks");
            Ok(None)
        }
    }
}
