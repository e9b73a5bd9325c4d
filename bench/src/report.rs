//! Where results go: stdout and `docs/benchmarks.md`, with the machine they ran on.

use std::io::Write;
use std::process::Command;

use crate::procs::root;

/// `nproc`, memory and CPU model.
pub fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map_or("unknown", |m| m.trim_start_matches([' ', '\t', ':']));
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    format!("{cpus} CPUs ({model}), {mem_gib:.1} GiB")
}

fn commit() -> String {
    Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(root())
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// Appends one run's sections to `docs/benchmarks.md`.
pub fn append(command: &str, sections: &[String]) -> anyhow::Result<()> {
    let path = root().join("docs/benchmarks.md");
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&path)?;
    writeln!(
        f,
        "\n## {} — commit {}\n\n- machine: {}\n- command: `{command}`\n",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        commit(),
        machine()
    )?;
    for s in sections {
        writeln!(f, "{s}\n")?;
    }
    println!("appended to {}", path.display());
    Ok(())
}
