//! cgroups v2 for task attempts, where the machine delegates a cgroup to the server
//! (`--task-cgroup DIR`, e.g. a systemd unit with `Delegate=yes`): each attempt gets a child
//! cgroup of its own with a memory limit for the whole attempt (no swap) and a process
//! limit, counted by the kernel, and is killed whole through `cgroup.kill` when it ends.
//! Without one, the rlimits set inside the sandbox are the limits (docs/engine.md).
//!
//! An attempt enters its cgroup before it can fork: the sandbox is started behind a gate
//! (`sh` waiting for one line on stdin), the server writes the gate's pid into the cgroup's
//! `cgroup.procs`, and only then sends the line.

use std::path::{Path, PathBuf};
use std::time::Duration;

use cloacina_domain::package::AttemptLimits;

/// The controllers an attempt's cgroup needs.
const CONTROLLERS: [&str; 2] = ["memory", "pids"];

/// The gate: waits for one line on stdin, then becomes the sandbox (`"$@"`).
pub const GATE: &str = "read -r _ && exec \"$@\"";

/// A delegated cgroup under which each attempt gets a child.
#[derive(Debug, Clone)]
pub struct TaskCgroups {
    root: PathBuf,
}

/// A limit the kernel enforced on an attempt, read from its cgroup's event counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupLimit {
    /// The kernel's OOM killer ended a process of the attempt.
    Memory,
    /// A fork was refused at the attempt's process limit.
    Processes,
}

/// One attempt's cgroup.
#[derive(Debug)]
pub struct AttemptCgroup {
    dir: PathBuf,
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("cannot write {text:?} to {}: {e}", path.display()))
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// The value of `key` in a flat-keyed file such as `memory.events` (`oom_kill 0`).
fn counter(text: &str, key: &str) -> u64 {
    text.lines()
        .filter_map(|l| l.split_once(' '))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0)
}

impl TaskCgroups {
    /// Makes `root` ready for attempt cgroups: created if missing, the memory and pids
    /// controllers enabled for its children (and for itself, in its parent, where they are
    /// not yet).
    ///
    /// # Errors
    /// What is missing: a folder that is no cgroup v2, a controller not delegated, a file the
    /// server may not write.
    pub fn prepare(root: &Path) -> Result<Self, String> {
        let parent = root.parent().ok_or_else(|| format!("{} has no parent cgroup", root.display()))?;
        if !parent.join("cgroup.controllers").is_file() {
            return Err(format!("{} is not in a cgroup v2 hierarchy (no cgroup.controllers)", parent.display()));
        }
        if !root.exists() {
            std::fs::create_dir(root).map_err(|e| format!("cannot create the cgroup {}: {e}", root.display()))?;
        }
        for (dir, scope) in [(parent, "its parent"), (root, "it")] {
            let available = read(&dir.join("cgroup.controllers"))?;
            let enabled = read(&dir.join("cgroup.subtree_control"))?;
            for c in CONTROLLERS {
                if !available.split_whitespace().any(|a| a == c) {
                    return Err(format!(
                        "the {c} controller is not delegated to {} ({scope}): its cgroup.controllers says {:?}",
                        dir.display(),
                        available.trim()
                    ));
                }
                if !enabled.split_whitespace().any(|a| a == c) {
                    write(&dir.join("cgroup.subtree_control"), &format!("+{c}"))?;
                }
            }
        }
        // What attempts of a server that died left: empty cgroups (their processes died with
        // it). A live server's attempts are not empty, and stay.
        if let Ok(entries) = std::fs::read_dir(root) {
            for entry in entries.flatten().filter(|e| e.file_type().is_ok_and(|t| t.is_dir())) {
                let _ = std::fs::remove_dir(entry.path());
            }
        }
        Ok(Self { root: root.to_owned() })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Creates the cgroup of attempt `name` with `limits`: memory for the whole attempt,
    /// no swap, and the process count.
    ///
    /// # Errors
    /// The cgroup or one of its limits could not be written.
    pub fn create(&self, name: &str, limits: &AttemptLimits) -> Result<AttemptCgroup, String> {
        let dir = self.root.join(name);
        std::fs::create_dir(&dir).map_err(|e| format!("cannot create the attempt's cgroup {}: {e}", dir.display()))?;
        let cgroup = AttemptCgroup { dir };
        let set = [
            ("memory.max", limits.memory.to_string()),
            ("memory.swap.max", "0".to_owned()),
            ("pids.max", limits.processes.to_string()),
        ];
        for (file, value) in set {
            // Without swap accounting the file is absent, and memory.max still holds.
            if file == "memory.swap.max" && !cgroup.dir.join(file).exists() {
                continue;
            }
            write(&cgroup.dir.join(file), &value)?;
        }
        Ok(cgroup)
    }
}

impl AttemptCgroup {
    /// Moves process `pid` (the gate, before it forks) into the cgroup.
    ///
    /// # Errors
    /// The kernel refused the move.
    pub fn enter(&self, pid: u32) -> Result<(), String> {
        write(&self.dir.join("cgroup.procs"), &pid.to_string())
    }

    /// The limit the kernel enforced on the attempt, if any.
    pub fn ran_into(&self) -> Option<CgroupLimit> {
        let events = |file: &str, key: &str| read(&self.dir.join(file)).map(|t| counter(&t, key)).unwrap_or(0);
        if events("memory.events", "oom_kill") > 0 {
            Some(CgroupLimit::Memory)
        } else if events("pids.events", "max") > 0 {
            Some(CgroupLimit::Processes)
        } else {
            None
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for AttemptCgroup {
    /// Kills whatever is left in the cgroup and removes it, on a thread of its own that waits
    /// (briefly) for the kernel to reap the processes.
    fn drop(&mut self) {
        // The kernel's file (5.14 and later); never created where it is missing.
        if let Ok(mut kill) = std::fs::OpenOptions::new().write(true).open(self.dir.join("cgroup.kill")) {
            let _ = std::io::Write::write_all(&mut kill, b"1");
        }
        if std::fs::remove_dir(&self.dir).is_ok() {
            return;
        }
        let dir = self.dir.clone();
        std::thread::spawn(move || {
            for _ in 0..100 {
                std::thread::sleep(Duration::from_millis(10));
                match std::fs::remove_dir(&dir) {
                    Ok(()) => return,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
                    Err(_) => {}
                }
            }
            tracing::warn!(cgroup = %dir.display(), "cannot remove an attempt's cgroup: it still holds processes");
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloacina_domain::package::DEFAULT_LIMITS;

    /// A folder laid out as a delegated cgroup v2 looks to the server: the kernel's own
    /// files, as regular files. (This machine's kernel has memory and pids on cgroups v1, so
    /// the kernel's side is not exercised here.)
    fn delegated(controllers: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cgroup.controllers"), controllers).unwrap();
        std::fs::write(dir.path().join("cgroup.subtree_control"), "").unwrap();
        dir
    }

    fn fake_kernel_files(root: &Path) {
        std::fs::write(root.join("cgroup.controllers"), "cpu memory pids").unwrap();
        std::fs::write(root.join("cgroup.subtree_control"), "").unwrap();
    }

    #[test]
    fn an_attempt_gets_its_limits_and_the_controllers_are_enabled_where_missing() {
        let parent = delegated("cpu memory pids");
        let root = parent.path().join("tasks");
        std::fs::create_dir(&root).unwrap();
        fake_kernel_files(&root);
        let cgroups = TaskCgroups::prepare(&root).unwrap();
        // Each write of a real subtree_control adds one; the fake keeps the last.
        assert_eq!(std::fs::read_to_string(root.join("cgroup.subtree_control")).unwrap(), "+pids");
        assert_eq!(std::fs::read_to_string(parent.path().join("cgroup.subtree_control")).unwrap(), "+pids");
        let attempt = cgroups.create("a1", &DEFAULT_LIMITS).unwrap();
        let file = |f: &str| std::fs::read_to_string(attempt.dir().join(f)).unwrap();
        assert_eq!(file("memory.max"), (1u64 << 30).to_string());
        assert_eq!(file("pids.max"), "256");
        assert!(!attempt.dir().join("memory.swap.max").exists(), "only where the kernel accounts swap");
        attempt.enter(4242).unwrap();
        assert_eq!(file("cgroup.procs"), "4242");
        assert_eq!(attempt.ran_into(), None);
        std::fs::write(attempt.dir().join("pids.events"), "max 3\n").unwrap();
        assert_eq!(attempt.ran_into(), Some(CgroupLimit::Processes));
        std::fs::write(attempt.dir().join("memory.events"), "low 0\nhigh 0\nmax 9\noom 1\noom_kill 1\n").unwrap();
        assert_eq!(attempt.ran_into(), Some(CgroupLimit::Memory), "memory first");
    }

    #[test]
    fn a_controller_that_is_not_delegated_or_a_v1_folder_is_refused_by_name() {
        let parent = delegated("cpu pids");
        let err = TaskCgroups::prepare(&parent.path().join("tasks")).unwrap_err();
        assert!(err.contains("the memory controller is not delegated"), "{err}");
        let plain = tempfile::tempdir().unwrap();
        let err = TaskCgroups::prepare(&plain.path().join("tasks")).unwrap_err();
        assert!(err.contains("not in a cgroup v2 hierarchy"), "{err}");
    }

    #[test]
    fn an_empty_attempt_cgroup_is_removed_and_leftovers_are_swept() {
        let parent = delegated("memory pids");
        let root = parent.path().join("tasks");
        std::fs::create_dir(&root).unwrap();
        fake_kernel_files(&root);
        let cgroups = TaskCgroups::prepare(&root).unwrap();
        let attempt = AttemptCgroup { dir: cgroups.root().join("empty") };
        std::fs::create_dir(attempt.dir()).unwrap();
        let dir = attempt.dir().to_owned();
        drop(attempt);
        assert!(!dir.exists());
        std::fs::create_dir(root.join("left-by-a-crash")).unwrap();
        TaskCgroups::prepare(&root).unwrap();
        assert!(!root.join("left-by-a-crash").exists(), "swept at start-up");
    }

    #[test]
    fn counters_are_read_by_key() {
        assert_eq!(counter("low 0\noom_kill 2\n", "oom_kill"), 2);
        assert_eq!(counter("oom 5\n", "oom_kill"), 0);
        assert_eq!(counter("", "max"), 0);
    }
}
