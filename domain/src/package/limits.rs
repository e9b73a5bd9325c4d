//! What one task attempt may use (docs/engine.md, "The sandbox"): memory, processes, open files
//! and CPU time.
//!
//! A task may ask for more than the defaults in its manifest
//! (`limits = { memory = "2GiB", processes = 512, open_files = 4096, cpu_time = "2h" }`); the
//! deployment sets a ceiling for each, and [`TaskLimits::resolve`] decides what an attempt gets.
//! The runner enforces the result on every process of the attempt.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use super::manifest::{MAX_DURATION, ManifestError};

const MIB: u64 = 1024 * 1024;
const GIB: u64 = 1024 * MIB;

/// The bounds a manifest may ask for, whatever the deployment allows.
pub const MIN_MEMORY: u64 = 16 * MIB;
pub const MAX_MEMORY: u64 = 1024 * GIB;
pub const MAX_PROCESSES: u32 = 1_000_000;
pub const MIN_OPEN_FILES: u32 = 16;
pub const MAX_OPEN_FILES: u32 = 1_048_576;

/// What an attempt gets when its task asks for nothing.
pub const DEFAULT_LIMITS: AttemptLimits =
    AttemptLimits { memory: GIB, processes: 256, open_files: 1024, cpu_time: Duration::from_secs(3600) };

/// The deployment's ceilings unless it sets its own.
pub const DEFAULT_CEILINGS: AttemptLimits =
    AttemptLimits { memory: 8 * GIB, processes: 4096, open_files: 65_536, cpu_time: Duration::from_secs(24 * 3600) };

/// One attempt's limits, each applying to every process of the attempt: `memory` to each
/// process's heap and anonymous mappings, `processes` to the attempt as a whole, `open_files`
/// and `cpu_time` to each process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptLimits {
    pub memory: u64,
    pub processes: u32,
    pub open_files: u32,
    pub cpu_time: Duration,
}

impl AttemptLimits {
    /// Each limit the lower of the two.
    pub fn min_with(&self, other: &Self) -> Self {
        Self {
            memory: self.memory.min(other.memory),
            processes: self.processes.min(other.processes),
            open_files: self.open_files.min(other.open_files),
            cpu_time: self.cpu_time.min(other.cpu_time),
        }
    }
}

/// What a task's manifest asks for; `None` takes the default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TaskLimits {
    pub memory: Option<u64>,
    pub processes: Option<u32>,
    pub open_files: Option<u32>,
    pub cpu_time: Option<Duration>,
}

/// A task asks for more than the deployment allows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("limits.{field} asks for {asked}; this deployment allows at most {ceiling}")]
pub struct LimitExceeded {
    pub field: &'static str,
    pub asked: String,
    pub ceiling: String,
}

impl TaskLimits {
    /// Whether the task asks for nothing.
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// The limits an attempt runs with: what the task asks for, else the default, and never
    /// above a ceiling (a default above its ceiling is lowered to it).
    ///
    /// # Errors
    /// [`LimitExceeded`] naming the first limit asked for above its ceiling.
    pub fn resolve(&self, defaults: &AttemptLimits, ceilings: &AttemptLimits) -> Result<AttemptLimits, LimitExceeded> {
        fn pick<T: Ord + Copy>(
            field: &'static str,
            asked: Option<T>,
            default: T,
            ceiling: T,
            show: impl Fn(T) -> String,
        ) -> Result<T, LimitExceeded> {
            match asked {
                Some(a) if a > ceiling => Err(LimitExceeded { field, asked: show(a), ceiling: show(ceiling) }),
                Some(a) => Ok(a),
                None => Ok(default.min(ceiling)),
            }
        }
        Ok(AttemptLimits {
            memory: pick("memory", self.memory, defaults.memory, ceilings.memory, bytes)?,
            processes: pick("processes", self.processes, defaults.processes, ceilings.processes, |n| n.to_string())?,
            open_files: pick("open_files", self.open_files, defaults.open_files, ceilings.open_files, |n| {
                n.to_string()
            })?,
            cpu_time: pick("cpu_time", self.cpu_time, defaults.cpu_time, ceilings.cpu_time, |d| {
                humantime::format_duration(d).to_string()
            })?,
        })
    }
}

/// A byte count as people write it: `1 GiB`, `512 MiB`, or plain bytes.
pub fn bytes(n: u64) -> String {
    match n {
        n if n >= GIB && n.is_multiple_of(GIB) => format!("{} GiB", n / GIB),
        n if n >= MIB && n.is_multiple_of(MIB) => format!("{} MiB", n / MIB),
        n => format!("{n} bytes"),
    }
}

/// Parses a byte size like `"2GiB"`, `"512 MiB"` or `"1000000"`.
///
/// # Errors
/// The reason, as text.
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    text.trim()
        .parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|e| format!("'{text}' is not a size like \"512MiB\" or \"2GiB\": {e}"))
}

/// `limits` of a `[[workflow.task]]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    #[serde(default)]
    memory: Option<String>,
    #[serde(default)]
    processes: Option<u32>,
    #[serde(default)]
    open_files: Option<u32>,
    #[serde(default)]
    cpu_time: Option<String>,
}

impl fmt::Debug for RawLimits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawLimits").finish_non_exhaustive()
    }
}

/// Checks a task's `limits` table; `at` is the task's field path.
pub(super) fn check_limits(at: &str, raw: Option<RawLimits>) -> Result<TaskLimits, ManifestError> {
    let Some(raw) = raw else { return Ok(TaskLimits::default()) };
    let field = |name: &str| format!("{at}.limits.{name}");
    let memory = match raw.memory.as_deref() {
        None => None,
        Some(text) => {
            let n = parse_bytes(text).map_err(|e| ManifestError::new(field("memory"), e))?;
            if !(MIN_MEMORY..=MAX_MEMORY).contains(&n) {
                return Err(ManifestError::new(
                    field("memory"),
                    format!("must be between {} and {}", bytes(MIN_MEMORY), bytes(MAX_MEMORY)),
                ));
            }
            Some(n)
        }
    };
    if let Some(n) = raw.processes
        && !(1..=MAX_PROCESSES).contains(&n)
    {
        return Err(ManifestError::new(field("processes"), format!("must be between 1 and {MAX_PROCESSES}")));
    }
    if let Some(n) = raw.open_files
        && !(MIN_OPEN_FILES..=MAX_OPEN_FILES).contains(&n)
    {
        return Err(ManifestError::new(
            field("open_files"),
            format!("must be between {MIN_OPEN_FILES} and {MAX_OPEN_FILES}"),
        ));
    }
    let cpu_time = match raw.cpu_time.as_deref() {
        None => None,
        Some(text) => {
            let d = humantime::parse_duration(text).map_err(|e| {
                ManifestError::new(field("cpu_time"), format!("'{text}' is not a duration like \"10m\" or \"2h\": {e}"))
            })?;
            if d < Duration::from_secs(1) || d > MAX_DURATION {
                return Err(ManifestError::new(field("cpu_time"), "must be between 1s and 24h"));
            }
            Some(d)
        }
    };
    Ok(TaskLimits { memory, processes: raw.processes, open_files: raw.open_files, cpu_time })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_that_asks_for_nothing_gets_the_defaults_lowered_to_the_ceilings() {
        let got = TaskLimits::default().resolve(&DEFAULT_LIMITS, &DEFAULT_CEILINGS).unwrap();
        assert_eq!(got, DEFAULT_LIMITS);
        let low = AttemptLimits { memory: 256 * MIB, processes: 64, ..DEFAULT_CEILINGS };
        let got = TaskLimits::default().resolve(&DEFAULT_LIMITS, &low).unwrap();
        assert_eq!((got.memory, got.processes, got.open_files), (256 * MIB, 64, 1024));
    }

    #[test]
    fn a_task_may_ask_up_to_the_ceiling_and_no_further() {
        let asked = TaskLimits { memory: Some(8 * GIB), processes: Some(10), ..TaskLimits::default() };
        let got = asked.resolve(&DEFAULT_LIMITS, &DEFAULT_CEILINGS).unwrap();
        assert_eq!((got.memory, got.processes), (8 * GIB, 10));
        let greedy = TaskLimits { memory: Some(9 * GIB), ..TaskLimits::default() };
        let e = greedy.resolve(&DEFAULT_LIMITS, &DEFAULT_CEILINGS).unwrap_err();
        assert_eq!(e.to_string(), "limits.memory asks for 9 GiB; this deployment allows at most 8 GiB");
    }

    #[test]
    fn sizes_parse_with_binary_units_and_show_them() {
        assert_eq!(parse_bytes("2GiB"), Ok(2 * GIB));
        assert_eq!(parse_bytes("512 MiB"), Ok(512 * MIB));
        assert_eq!(parse_bytes("1000000"), Ok(1_000_000));
        assert!(parse_bytes("lots").unwrap_err().contains("'lots' is not a size"));
        assert_eq!(bytes(3 * GIB), "3 GiB");
        assert_eq!(bytes(1536 * MIB), "1536 MiB");
        assert_eq!(bytes(1000), "1000 bytes");
    }
}
