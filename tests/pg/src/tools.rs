//! Outside tools the tests use, installed the way PostgreSQL is: found on `PATH`, else, as
//! root on Debian or Ubuntu, installed with `apt-get`, else a failure saying what to install.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

fn on_path(binary: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(binary)).find(|p| p.is_file())
}

/// `binary` from Debian's `package`, installed if missing. Test binaries run at once may all
/// want it: a lock file lets one of them install while the others wait.
fn debian_tool(binary: &str, package: &str) -> PathBuf {
    if let Some(p) = on_path(binary) {
        return p;
    }
    if super::running_as_root() && std::path::Path::new("/usr/bin/apt-get").exists() {
        let lock = std::fs::File::create(std::env::temp_dir().join("cloacina-test-apt.lock")).unwrap();
        lock.lock().unwrap();
        if let Some(p) = on_path(binary) {
            return p;
        }
        eprintln!("{binary} is not installed: installing Debian's {package} with apt-get");
        let install = || {
            Command::new("apt-get")
                .args(["install", "-y", "--no-install-recommends", package])
                .env("DEBIAN_FRONTEND", "noninteractive")
                .status()
                .is_ok_and(|s| s.success())
        };
        if !install() {
            let _ = Command::new("apt-get").arg("update").env("DEBIAN_FRONTEND", "noninteractive").status();
            install();
        }
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
