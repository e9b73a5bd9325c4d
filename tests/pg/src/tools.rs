//! Outside tools the tests use, installed the way PostgreSQL is: found on `PATH`, else, as
//! root on Debian or Ubuntu, installed with `apt-get`, else a failure saying what to install.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

fn on_path(binary: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(binary)).find(|p| p.is_file())
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
