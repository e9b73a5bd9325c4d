//! The processes a benchmark measures.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use anyhow::{Context as _, bail};

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_owned).unwrap_or_default()
}

/// Builds the release `cloacinactl` and returns its path.
pub fn build_release() -> anyhow::Result<PathBuf> {
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--release", "--locked", "-p", "cloacina-app", "--bin", "cloacinactl"])
        .current_dir(root())
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("cargo build --release failed");
    }
    Ok(root().join("target/release/cloacinactl"))
}

/// A child process that printed an address.
pub struct Running {
    pub child: Child,
    pub url: String,
    /// From spawn to the printed address.
    pub started: Instant,
    pub home: Option<tempfile::TempDir>,
}

impl Running {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory in MiB, from /proc.
    pub fn rss_mib(&self) -> f64 {
        self.status_mib("VmRSS:")
    }

    /// The most resident memory so far (the high-water mark) in MiB, from /proc.
    pub fn peak_rss_mib(&self) -> f64 {
        self.status_mib("VmHWM:")
    }

    /// User + system CPU seconds so far, from /proc.
    pub fn cpu_seconds(&self) -> f64 {
        cpu_seconds_of(&std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap_or_default())
    }

    fn status_mib(&self, field: &str) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    }
}

impl Running {
    /// Stops the process and hands back its home folder, for a restart on the same data.
    pub fn into_home(mut self) -> Option<tempfile::TempDir> {
        self.home.take()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }
}

/// Starts `cloacinactl serve` on a free loopback port with a fresh home (or `home`).
pub fn start_server(
    binary: &Path,
    home: Option<tempfile::TempDir>,
    extra: &[&str],
) -> anyhow::Result<(Running, String)> {
    let home = match home {
        Some(h) => h,
        None => tempfile::tempdir()?,
    };
    let mut cmd = Command::new(binary);
    cmd.args(["serve", "--bind", "127.0.0.1:0", "--home"]).arg(home.path()).args(extra).args(unlimited(extra));
    cmd.env_remove("DATABASE_URL").env_remove("CLOACINA_BOOTSTRAP_KEY").env("RUST_LOG", "warn");
    let mut running = spawn_printing_address(cmd, "API server is running on ")?;
    let key = std::fs::read_to_string(home.path().join("bootstrap-key")).context("reading the bootstrap key")?;
    running.home = Some(home);
    Ok((running, key.trim().to_owned()))
}

/// Starts another server on a database that has its admin key already (no bootstrap key file
/// is written).
pub fn start_replica(binary: &Path, extra: &[&str]) -> anyhow::Result<Running> {
    let home = tempfile::tempdir()?;
    let mut cmd = Command::new(binary);
    cmd.args(["serve", "--bind", "127.0.0.1:0", "--home"]).arg(home.path()).args(extra).args(unlimited(extra));
    cmd.env_remove("DATABASE_URL").env_remove("CLOACINA_BOOTSTRAP_KEY").env("RUST_LOG", "warn");
    let mut running = spawn_printing_address(cmd, "API server is running on ")?;
    running.home = Some(home);
    Ok(running)
}

/// The request rate limits off, unless `extra` sets them: a bench measures what the server
/// can do, not what its limits let one client do.
fn unlimited(extra: &[&str]) -> &'static [&'static str] {
    if extra.iter().any(|a| a.starts_with("--rate-limit")) {
        &[]
    } else {
        &["--rate-limit-per-key", "0", "--rate-limit-per-address", "0"]
    }
}

/// Starts the bare axum route that sets the machine's HTTP ceiling.
pub fn start_ceiling() -> anyhow::Result<Running> {
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.arg("ceiling");
    spawn_printing_address(cmd, "ceiling on ")
}

fn spawn_printing_address(mut cmd: Command, prefix: &str) -> anyhow::Result<Running> {
    let started = Instant::now();
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().context("starting a child process")?;
    let stdout = child.stdout.take().context("child stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let url = loop {
        match lines.next() {
            Some(Ok(line)) => {
                if let Some(a) = line.strip_prefix(prefix) {
                    break a.trim().to_owned();
                }
            }
            _ => bail!("child exited before printing its address"),
        }
    };
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Ok(Running { child, url, started, home: None })
}

/// The `ceiling` subcommand: `GET /` answers `{"status":"ok"}`, nothing else.
pub fn serve_ceiling() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let app = axum::Router::new()
            .route("/", axum::routing::get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        println!("ceiling on http://{}", listener.local_addr()?);
        axum::serve(listener, app).await?;
        Ok(())
    })
}

/// User + system CPU seconds of a process, from its `/proc/<pid>/stat` line (0 if unreadable).
pub fn cpu_seconds_of(stat: &str) -> f64 {
    // Fields after the command (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the line (in clock ticks, 100 a second on
    // Linux): indices 11 and 12 counting the state, field 3, as 0.
    (ticks(11) + ticks(12)) / 100.0
}
