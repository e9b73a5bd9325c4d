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
//! (`setsid`, a double fork, `nohup`). The limits are set inside the namespace by `prlimit`, so
//! the process count is the attempt's own and not shared with other attempts of the same user.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use cloacina_domain::package::AttemptLimits;
use tokio::process::Command;

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

/// How tasks reach the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskNetwork {
    /// The host's network (the task still holds no credential of the server's).
    Host,
    /// None: a network namespace of its own with only a loopback interface.
    None,
}

impl std::str::FromStr for TaskNetwork {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "host" => Ok(Self::Host),
            "none" => Ok(Self::None),
            other => Err(format!("'{other}' is neither \"host\" nor \"none\"")),
        }
    }
}

impl std::fmt::Display for TaskNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Host => "host",
            Self::None => "none",
        })
    }
}

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
        Self { bwrap, identity, network, system, etc, task_etc: task_dir.etc() }
    }

    pub fn identity(&self) -> &TaskIdentity {
        &self.identity
    }

    pub fn network(&self) -> TaskNetwork {
        self.network
    }

    /// The command that runs `argv` in `package` with `scratch`, under `limits`.
    pub fn command(&self, package: &Path, scratch: &Scratch, limits: &AttemptLimits, argv: &[String]) -> Command {
        let mut cmd = Command::new(&self.bwrap);
        cmd.args(["--unshare-user", "--disable-userns", "--unshare-pid", "--unshare-ipc", "--unshare-uts"]).args([
            "--unshare-cgroup-try",
            "--hostname",
            "cloacina-task",
            "--new-session",
            "--die-with-parent",
        ]);
        if self.network == TaskNetwork::None {
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
        let mut cmd = self.command(package.path(), &scratch, limits, &["true".to_owned()]);
        cmd.env("PATH", crate::TASK_PATH).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
        let out = cmd.output().await.map_err(|e| format!("cannot start {}: {e}", self.bwrap.display()))?;
        scratch.remove().await;
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
