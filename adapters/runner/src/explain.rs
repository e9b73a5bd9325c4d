//! Why a failed attempt failed, in words: its exit status or signal, and which limit it ran
//! into when its death shows one (a CPU-time signal) or its last words do (an allocation or a
//! fork refused). A task can print such words itself; that only changes its own error.

use std::process::ExitStatus;

use cloacina_domain::package::AttemptLimits;
use cloacina_domain::package::limits::bytes;
use std::os::unix::process::ExitStatusExt as _;

use crate::cgroup::CgroupLimit;

/// The exit code `prlimit` gives when it cannot run the command (util-linux).
const EXEC_NOT_FOUND: i32 = 127;
const EXEC_FAILED: i32 = 126;

fn signal_name(n: i32) -> String {
    nix::sys::signal::Signal::try_from(n).map_or_else(|_| format!("signal {n}"), |s| s.as_str().to_owned())
}

/// How the process ended. In a sandbox, bubblewrap reports a task killed by signal N as exit
/// status 128 + N.
pub fn status_reason(status: ExitStatus, sandboxed: bool) -> (String, Option<i32>) {
    if let Some(sig) = status.signal() {
        return (format!("killed by {}", signal_name(sig)), Some(sig));
    }
    match status.code() {
        Some(code) if sandboxed && (129..=128 + 64).contains(&code) => {
            (format!("killed by {}", signal_name(code - 128)), Some(code - 128))
        }
        Some(code) => (format!("exited with status {code}"), None),
        None => ("ended without a status".to_owned(), None),
    }
}

/// The reason of a failed attempt. `enforced` is the limit the attempt's cgroup counted it
/// running into, where it has one: the kernel's word beats the task's last words.
pub fn failure(
    status: ExitStatus,
    stderr: &str,
    limits: Option<&AttemptLimits>,
    enforced: Option<CgroupLimit>,
    program: &str,
) -> String {
    let sandboxed = limits.is_some();
    if sandboxed {
        // The sandbox itself could not be made, or the command could not be started in it.
        if let Some(line) = stderr.lines().find(|l| l.starts_with("bwrap: ")) {
            return format!("the sandbox could not be made: {}", line.trim_start_matches("bwrap: "));
        }
        if matches!(status.code(), Some(EXEC_NOT_FOUND | EXEC_FAILED))
            && let Some(line) = stderr.lines().find(|l| l.starts_with("prlimit: failed to execute"))
        {
            let why = line.rsplit(": ").next().unwrap_or("cannot be run");
            return format!("cannot start {program}: {why}");
        }
    }
    let (mut reason, signal) = status_reason(status, sandboxed);
    let Some(limits) = limits else { return reason };
    let said = stderr.to_ascii_lowercase();
    let said_any = |words: &[&str]| words.iter().any(|w| said.contains(w));
    if enforced == Some(CgroupLimit::Memory) {
        reason.push_str(&format!(": it ran out of memory (its limit is {} for the attempt)", bytes(limits.memory)));
    } else if enforced == Some(CgroupLimit::Processes) {
        reason.push_str(&format!(": it reached its limit of {} processes", limits.processes));
    } else if signal == Some(nix::sys::signal::Signal::SIGXCPU as i32) {
        reason.push_str(&format!(": it used up its CPU time limit of {}", humantime::format_duration(limits.cpu_time)));
    } else if said_any(&["memoryerror", "cannot allocate memory", "out of memory", "memory allocation of", "bad_alloc"])
    {
        reason.push_str(&format!(": it ran out of memory (its limit is {} per process)", bytes(limits.memory)));
    } else if said_any(&["resource temporarily unavailable", "cannot fork", "fork: retry"]) {
        reason.push_str(&format!(": it reached its limit of {} processes", limits.processes));
    } else if said_any(&["too many open files"]) {
        reason.push_str(&format!(": it reached its limit of {} open files", limits.open_files));
    }
    reason
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloacina_domain::package::DEFAULT_LIMITS;

    fn exited(code: i32) -> ExitStatus {
        ExitStatus::from_raw(code << 8)
    }

    #[test]
    fn a_signal_reported_by_the_sandbox_is_named() {
        assert_eq!(failure(exited(137), "", Some(&DEFAULT_LIMITS), None, "sh"), "killed by SIGKILL");
        assert_eq!(failure(exited(137), "", None, None, "sh"), "exited with status 137");
        assert_eq!(failure(ExitStatus::from_raw(9), "", None, None, "sh"), "killed by SIGKILL");
    }

    #[test]
    fn the_limit_an_attempt_ran_into_is_named() {
        let l = DEFAULT_LIMITS;
        assert_eq!(
            failure(exited(152), "", Some(&l), None, "sh"),
            "killed by SIGXCPU: it used up its CPU time limit of 1h"
        );
        assert_eq!(
            failure(exited(1), "Traceback…\nMemoryError\n", Some(&l), None, "python3"),
            "exited with status 1: it ran out of memory (its limit is 1 GiB per process)"
        );
        assert_eq!(
            failure(
                exited(1),
                "BlockingIOError: [Errno 11] Resource temporarily unavailable",
                Some(&l),
                None,
                "python3"
            ),
            "exited with status 1: it reached its limit of 256 processes"
        );
        assert_eq!(failure(exited(3), "broken", Some(&l), None, "sh"), "exited with status 3");
    }

    #[test]
    fn what_the_attempts_cgroup_counted_is_named_over_the_tasks_own_words() {
        let l = DEFAULT_LIMITS;
        assert_eq!(
            failure(exited(137), "", Some(&l), Some(CgroupLimit::Memory), "sh"),
            "killed by SIGKILL: it ran out of memory (its limit is 1 GiB for the attempt)"
        );
        assert_eq!(
            failure(exited(1), "MemoryError", Some(&l), Some(CgroupLimit::Processes), "python3"),
            "exited with status 1: it reached its limit of 256 processes"
        );
    }

    #[test]
    fn a_missing_program_and_a_broken_sandbox_are_told_apart_from_the_task_failing() {
        let l = DEFAULT_LIMITS;
        let missing = "prlimit: failed to execute nope: No such file or directory";
        assert_eq!(
            failure(exited(127), missing, Some(&l), None, "nope"),
            "cannot start nope: No such file or directory"
        );
        let broken = "bwrap: Can't find source path /x: No such file or directory";
        assert_eq!(
            failure(exited(1), broken, Some(&l), None, "sh"),
            "the sandbox could not be made: Can't find source path /x: No such file or directory"
        );
    }
}
