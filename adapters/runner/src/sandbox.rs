//! The sandbox of one attempt, made by bubblewrap (`bwrap`, the tool Flatpak uses): new user,
//! mount, PID, IPC, UTS and cgroup namespaces (and network, unless the tenant's tasks use the
//! host's), run as the unprivileged task user with no capabilities.
//!
//! Inside, the task sees only:
//! - the system's runtime read-only: `/usr` and the `/bin`, `/sbin` and `/lib*` beside it, and
//!   the few files of `/etc` that programs need ([`ETC_FILES`]), with a `passwd` and `group`
//!   naming the task user alone;
//! - its package folder read-only at `/package` (its working directory), its scratch folder
//!   read-write at `/scratch` (`HOME` and `TMPDIR`), a private `/tmp` no larger than its memory
//!   limit, a `/proc` of its own PID namespace, a minimal `/dev`; everything else read-only.
//!
//! bubblewrap runs as PID 1 of the namespace: when the task's first process ends, or when
//! bubblewrap is killed, or when the server dies (`--die-with-parent`), the kernel kills every
//! process left in the namespace, so nothing outlives its attempt, however it detached
//! (`setsid`, a double fork, `nohup`). bubblewrap starts in a new session of its own, with no
//! controlling terminal a task could write into, and every process of the attempt stays in
//! that session's process group unless it leaves it inside the namespace: killing the group
//! therefore reaches PID 1 even at the instant bubblewrap forks it. It is set to die with the
//! server before it runs at all, so a server killed as an attempt starts leaves nothing. The limits are set inside the namespace by `prlimit`, so
//! the process count is the attempt's own and not shared with other attempts of the same user.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use cloacina_domain::TaskNetwork;
use cloacina_domain::package::AttemptLimits;
use tokio::io::AsyncWriteExt as _;
use tokio::process::{Child, Command};

use crate::cgroup::{AttemptCgroup, GATE, TaskCgroups};
use crate::identity::TaskIdentity;
use crate::task_dir::{CONTEXT_FILE, OUTPUT_FILE, Scratch, TaskDir};

/// Where a task's package and scratch folders appear inside its sandbox.
pub const PACKAGE_MOUNT: &str = "/package";
pub const SCRATCH_MOUNT: &str = "/scratch";

/// The files and folders of `/etc` bound into the sandbox when the host has them: the dynamic
/// linker's cache, name resolution, TLS roots, time zone, and Debian's alternatives.
pub const ETC_FILES: &[&str] = &[
    "alternatives",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "nsswitch.conf",
    "hosts",
    "host.conf",
    "resolv.conf",
    "gai.conf",
    "protocols",
    "services",
    "ssl/certs",
    "ssl/openssl.cnf",
    "ca-certificates.conf",
    "mime.types",
    "os-release",
];

/// The folders beside `/usr` that hold programs and libraries: bound, or recreated as the
/// symlinks they are on a merged-`/usr` system.
const SYSTEM_DIRS: &[&str] = &["bin", "sbin", "lib", "lib32", "lib64", "libx32"];

/// Where `prlimit` is expected inside the sandbox (util-linux, essential on Debian).
pub const PRLIMIT: &str = "/usr/bin/prlimit";

#[derive(Debug, Clone)]
enum SystemEntry {
    Symlink { name: &'static str, target: PathBuf },
    Dir(&'static str),
}

/// How attempts are sandboxed on this server.
#[derive(Debug, Clone)]
pub struct Sandbox {
    bwrap: PathBuf,
    identity: TaskIdentity,
    network: TaskNetwork,
    system: Vec<SystemEntry>,
    etc: Vec<&'static str>,
    task_etc: PathBuf,
    cgroups: Option<TaskCgroups>,
}

/// In the child, before it becomes the sandbox: a session (and so a process group) of its own,
/// with no controlling terminal, so that everything of the attempt, bubblewrap's PID 1
/// included, is in the group the runner kills (bubblewrap's `--new-session` would put PID 1
/// in a group the runner cannot name, and a bubblewrap killed just after it forked left that
/// PID 1 running); and killed when the server dies, asked for before it runs anything, with
/// no gap for the server to die in unseen (`server` is who it was forked by).
fn of_its_own(server: nix::unistd::Pid) -> std::io::Result<()> {
    nix::unistd::setsid()?;
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)?;
    if nix::unistd::getppid() != server {
        return Err(std::io::Error::from_raw_os_error(nix::libc::ESRCH));
    }
    Ok(())
}

/// Finds `bwrap` on `PATH`.
///
/// # Errors
/// What to install, when it is missing.
pub fn find_bwrap() -> Result<PathBuf, String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("bwrap"))
        .find(|p| p.is_file())
        .ok_or_else(|| "bubblewrap is not installed (no `bwrap` on PATH): install it (Debian and Ubuntu: apt-get install bubblewrap)".to_owned())
}

impl Sandbox {
    /// A sandbox for tasks run as `identity`, with what this host has of the system runtime.
    pub fn new(bwrap: PathBuf, identity: TaskIdentity, network: TaskNetwork, task_dir: &TaskDir) -> Self {
        let system = SYSTEM_DIRS
            .iter()
            .filter_map(|name| {
                let host = Path::new("/").join(name);
                let meta = std::fs::symlink_metadata(&host).ok()?;
                if meta.file_type().is_symlink() {
                    Some(SystemEntry::Symlink { name, target: std::fs::read_link(&host).ok()? })
                } else if meta.is_dir() {
                    Some(SystemEntry::Dir(name))
                } else {
                    None
                }
            })
            .collect();
        let etc = ETC_FILES.iter().copied().filter(|f| Path::new("/etc").join(f).exists()).collect();
        Self { bwrap, identity, network, system, etc, task_etc: task_dir.etc(), cgroups: None }
    }

    /// Gives each attempt a cgroup of its own under `cgroups` as well as its rlimits.
    #[must_use]
    pub fn with_cgroups(mut self, cgroups: TaskCgroups) -> Self {
        self.cgroups = Some(cgroups);
        self
    }

    /// Where attempts get their cgroups, if they do.
    pub fn cgroups(&self) -> Option<&TaskCgroups> {
        self.cgroups.as_ref()
    }

    pub fn identity(&self) -> &TaskIdentity {
        &self.identity
    }

    /// The deployment's task network: what a tenant with no setting of its own gets.
    pub fn network(&self) -> TaskNetwork {
        self.network
    }

    /// The command that runs `argv` in `package` with `scratch`, under `limits`, on the
    /// tenant's own network if it has one (else the deployment's).
    pub fn command(
        &self,
        package: &Path,
        scratch: &Scratch,
        limits: &AttemptLimits,
        tenant_network: Option<TaskNetwork>,
        argv: &[String],
    ) -> Command {
        let mut cmd = if self.cgroups.is_some() {
            // Behind the gate, until the runner has put it in the attempt's cgroup.
            let mut gate = Command::new("/bin/sh");
            gate.args(["-c", GATE, "cloacina-gate"]).arg(&self.bwrap);
            gate
        } else {
            Command::new(&self.bwrap)
        };
        cmd.args(["--unshare-user", "--disable-userns", "--unshare-pid", "--unshare-ipc", "--unshare-uts"]).args([
            "--unshare-cgroup-try",
            "--hostname",
            "cloacina-task",
            "--die-with-parent",
        ]);
        if TaskNetwork::for_tenant(tenant_network, self.network) == TaskNetwork::None {
            cmd.arg("--unshare-net");
        }
        cmd.args(["--ro-bind", "/usr", "/usr"]);
        for entry in &self.system {
            match entry {
                SystemEntry::Symlink { name, target } => {
                    cmd.arg("--symlink").arg(target).arg(Path::new("/").join(name));
                }
                SystemEntry::Dir(name) => {
                    let p = Path::new("/").join(name);
                    cmd.arg("--ro-bind").arg(&p).arg(&p);
                }
            }
        }
        for f in &self.etc {
            let p = Path::new("/etc").join(f);
            cmd.arg("--ro-bind-try").arg(&p).arg(&p);
        }
        for f in ["passwd", "group"] {
            cmd.arg("--ro-bind").arg(self.task_etc.join(f)).arg(Path::new("/etc").join(f));
        }
        cmd.args(["--proc", "/proc", "--dev", "/dev"])
            .arg("--size")
            .arg(limits.memory.to_string())
            .args(["--tmpfs", "/tmp"])
            .arg("--ro-bind")
            .arg(package)
            .arg(PACKAGE_MOUNT)
            .arg("--bind")
            .arg(scratch.path())
            .arg(SCRATCH_MOUNT)
            .args(["--remount-ro", "/", "--chdir", PACKAGE_MOUNT, "--", PRLIMIT])
            .arg(format!("--nproc={0}:{0}", limits.processes))
            .arg(format!("--data={0}:{0}", limits.memory))
            .arg(format!("--nofile={0}:{0}", limits.open_files))
            .arg(format!("--cpu={}:{}", limits.cpu_time.as_secs().max(1), limits.cpu_time.as_secs().max(1) + 5))
            .args(["--core=0:0", "--"])
            .args(argv)
            // bubblewrap itself needs no folder of the server's.
            .current_dir("/")
            .env_clear();
        if self.identity.switch {
            cmd.uid(self.identity.uid).gid(self.identity.gid);
        }
        cmd
    }

    /// Starts `cmd` (made by [`Sandbox::command`], stdin piped). With cgroups, the attempt's
    /// cgroup `name` is made and the gate moved into it before it may go on: the caller then
    /// writes one line to its stdin before anything else.
    ///
    /// # Errors
    /// The process or its cgroup could not be made; nothing of it is left.
    pub fn spawn(
        &self,
        cmd: &mut Command,
        name: &str,
        limits: &AttemptLimits,
    ) -> Result<(Child, Option<AttemptCgroup>), String> {
        let cgroup = self.cgroups.as_ref().map(|c| c.create(name, limits)).transpose()?;
        let server = nix::unistd::getpid();
        // SAFETY: the closure runs in the forked child before it execs, and calls only
        // async-signal-safe functions (setsid, prctl, getppid), allocating nothing.
        #[allow(unsafe_code)]
        unsafe {
            cmd.pre_exec(move || of_its_own(server));
        }
        let child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => return Err(format!("cannot start {}: {e}", self.bwrap.display())),
        };
        if let Some(c) = &cgroup {
            // Behind its gate the child has not forked yet: all it will start is in the cgroup.
            if let Err(e) = child.id().ok_or_else(|| "the gate exited at once".to_owned()).and_then(|pid| c.enter(pid))
            {
                drop(child); // killed on drop, and the cgroup removed with `cgroup`
                return Err(format!("cannot put the attempt in its cgroup: {e}"));
            }
        }
        Ok((child, cgroup))
    }

    /// The paths the task sees for its context and output files.
    pub fn files(&self) -> (PathBuf, PathBuf) {
        let scratch = Path::new(SCRATCH_MOUNT);
        (scratch.join(CONTEXT_FILE), scratch.join(OUTPUT_FILE))
    }

    /// Makes one sandbox for real, running `true` in an empty package folder, so that a
    /// server that cannot sandbox its tasks says why at start-up.
    ///
    /// # Errors
    /// What failed, with bubblewrap's own words.
    pub async fn probe(&self, task_dir: &TaskDir, limits: &AttemptLimits) -> Result<(), String> {
        let package = tempfile::Builder::new()
            .prefix(".probe-")
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .tempdir_in(task_dir.packages())
            .map_err(|e| format!("cannot create a probe folder in {}: {e}", task_dir.packages().display()))?;
        let scratch = Scratch::create(task_dir, &self.identity, b"{}")?;
        let mut cmd = self.command(package.path(), &scratch, limits, None, &["true".to_owned()]);
        cmd.env("PATH", crate::TASK_PATH)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let made = self.spawn(&mut cmd, &scratch.name(), limits);
        let out = match made {
            Ok((mut child, cgroup)) => {
                if let Some(mut stdin) = child.stdin.take() {
                    let _ = stdin.write_all(b"\n").await;
                }
                let out = child.wait_with_output().await;
                drop(cgroup);
                out.map_err(|e| format!("cannot wait for {}: {e}", self.bwrap.display()))
            }
            Err(e) => Err(e),
        };
        scratch.remove().await;
        let out = out?;
        if out.status.success() {
            return Ok(());
        }
        let said = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        let hint = if said.contains("setting up uid map") || said.contains("No permission") {
            " (are unprivileged user namespaces enabled? sysctl kernel.unprivileged_userns_clone=1 and \
             user.max_user_namespaces > 0)"
        } else if said.contains("Permission denied") {
            " (the task user must be able to pass through every folder above the task folder: set --task-dir \
             to a folder outside any private home)"
        } else {
            ""
        };
        Err(format!("a test sandbox failed ({}): {said}{hint}", out.status))
    }
}
