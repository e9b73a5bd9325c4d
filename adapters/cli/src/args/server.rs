//! `serve`, `server start` and `migrate`: the server's flags (database, workers, sandbox).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub enum ServerCommand {
    /// Run the API server (same as `serve`)
    Start(ServeArgs),
}

/// `serve` and `server start`.
#[derive(Args, Clone)]
pub struct ServeArgs {
    /// Database: postgres://…, sqlite:///abs/path.db, sqlite://relative.db or sqlite::memory:
    /// [default: DATABASE_URL, else `database_url` in config.toml, else ~/.cloacina/cloacina.db]
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, value_name = "URL")]
    pub database_url: Option<String>,
    /// A file holding the database URL (kept out of the process arguments, which every local
    /// user can read)
    #[arg(long, value_name = "FILE", conflicts_with = "database_url")]
    pub database_url_file: Option<std::path::PathBuf>,
    /// Address to listen on
    #[arg(long, default_value = "0.0.0.0:8080", value_name = "ADDR")]
    pub bind: SocketAddr,
    /// The first admin key, used only while no admin key exists (16+ characters)
    #[arg(long, env = "CLOACINA_BOOTSTRAP_KEY", hide_env_values = true, value_name = "KEY")]
    pub bootstrap_key: Option<String>,
    /// A file holding the first admin key (kept out of the process arguments)
    #[arg(long, value_name = "FILE", conflicts_with = "bootstrap_key")]
    pub bootstrap_key_file: Option<std::path::PathBuf>,
    /// Seconds in-flight requests get to finish after SIGINT/SIGTERM
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    pub shutdown_timeout: u64,
    /// Failed authentications allowed per client address per minute (0: unlimited)
    #[arg(long, default_value_t = 60, value_name = "N")]
    pub auth_failures_per_minute: u32,
    /// Authenticated requests a second allowed per API key, in bursts of up to two seconds'
    /// worth (0: unlimited)
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub rate_limit_per_key: u32,
    /// Authenticated requests a second allowed per client address, in bursts of up to two
    /// seconds' worth (0: unlimited)
    #[arg(long, default_value_t = 2000, value_name = "N")]
    pub rate_limit_per_address: u32,
    /// Seconds a verified key stays cached (revocation on this server is immediate regardless)
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    pub auth_cache_ttl: u64,
    /// Behind a trusted reverse proxy: take the client address from X-Forwarded-For or
    /// X-Real-IP when the connection comes from a --trusted-proxy
    #[arg(long)]
    pub behind_proxy: bool,
    /// A proxy address or network whose forwarding headers are believed (repeatable;
    /// default: loopback, 127.0.0.0/8 and ::1)
    #[arg(long, value_name = "CIDR", value_parser = parse_network)]
    pub trusted_proxy: Vec<String>,
    /// A request's headers must arrive within this, or its connection is closed (slow
    /// clients; e.g. 10s)
    #[arg(long, default_value = "10s", value_name = "DURATION", value_parser = parse_connection_timeout)]
    pub header_read_timeout: std::time::Duration,
    /// A connection that sends and receives nothing for this long is closed (e.g. 75s)
    #[arg(long, default_value = "75s", value_name = "DURATION", value_parser = parse_connection_timeout)]
    pub idle_timeout: std::time::Duration,
    /// The most connections open at once; one more is closed at once
    #[arg(long, default_value_t = 4096, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections: u32,
    /// Refuse to start if the database schema is behind, instead of migrating it (run
    /// `cloacinactl migrate` first)
    #[arg(long)]
    pub no_migrate: bool,
    #[command(flatten)]
    pub keys: MasterKeyArgs,
    #[command(flatten)]
    pub db: DbArgs,
    #[command(flatten)]
    pub engine: EngineArgs,
}

/// The master key that wraps tenants' data keys (docs/secrets.md). Never on the command
/// line: from the environment or a file.
#[derive(Args, Clone, Debug, Default)]
#[command(next_help_heading = "Secrets")]
pub struct MasterKeyArgs {
    /// A file holding the master key (32 random bytes, base64: openssl rand -base64 32);
    /// CLOACINA_MASTER_KEY holds it in the environment instead. Without one, secrets are
    /// unavailable
    #[arg(long, value_name = "FILE")]
    pub master_key_file: Option<std::path::PathBuf>,
    /// During a rotation: a file holding the previous master key, to open data keys not yet
    /// rewrapped (CLOACINA_PREVIOUS_MASTER_KEY in the environment)
    #[arg(long, value_name = "FILE")]
    pub previous_master_key_file: Option<std::path::PathBuf>,
}

/// `secrets rewrap`.
#[derive(Args, Clone)]
pub struct RewrapArgs {
    /// Database: postgres://…, sqlite:///abs/path.db, sqlite://relative.db
    /// [default: DATABASE_URL, else `database_url` in config.toml, else ~/.cloacina/cloacina.db]
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, value_name = "URL")]
    pub database_url: Option<String>,
    /// A file holding the master key the data keys are wrapped by now
    /// (CLOACINA_OLD_MASTER_KEY in the environment)
    #[arg(long, value_name = "FILE")]
    pub old_key_file: Option<std::path::PathBuf>,
    /// A file holding the master key to wrap them by (CLOACINA_NEW_MASTER_KEY in the
    /// environment)
    #[arg(long, value_name = "FILE")]
    pub new_key_file: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub db: DbArgs,
}

impl std::fmt::Debug for RewrapArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RewrapArgs").finish_non_exhaustive()
    }
}

/// The workers of `serve`.
#[derive(Args, Clone, Debug)]
#[command(next_help_heading = "Workers")]
pub struct EngineArgs {
    /// Task attempts this server runs at once (0: API only, no workers)
    #[arg(long, default_value_t = 4, value_name = "N", value_parser = clap::value_parser!(u32).range(0..=10_000))]
    pub workers: u32,
    /// Seconds a claimed task is held without a heartbeat; a server that dies loses its
    /// tasks to others after this
    #[arg(long, default_value_t = 30, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub task_lease: u64,
    /// Finished executions are deleted after this long (e.g. 30d, 12h)
    #[arg(long, default_value = "30d", value_name = "DURATION", value_parser = parse_retention)]
    pub retention: std::time::Duration,
    /// How often the leader deletes the executions past the retention (e.g. 1h, 5m)
    #[arg(long, default_value = "1h", value_name = "DURATION", value_parser = parse_prune_every)]
    pub prune_every: std::time::Duration,
    /// Audit rows are deleted after this long, oldest first, by the leader (e.g. 365d); each
    /// chain keeps an anchor, so it still verifies
    #[arg(long, default_value = "365d", value_name = "DURATION", value_parser = parse_retention)]
    pub audit_retention: std::time::Duration,
    #[command(flatten)]
    pub sandbox: SandboxArgs,
}

/// How `serve` sandboxes task attempts (docs/engine.md, "The sandbox").
#[derive(Args, Clone, Debug)]
#[command(next_help_heading = "Task sandbox")]
pub struct SandboxArgs {
    /// Folder of unpacked packages and attempt scratch folders; the task user must be able to
    /// pass through every folder above it [default: ~/.cloacina/tasks, or
    /// /var/lib/cloacina/tasks when the server runs as root]
    #[arg(long, env = "CLOACINA_TASK_DIR", value_name = "DIR")]
    pub task_dir: Option<PathBuf>,
    /// The unprivileged user tasks run as when the server runs as root [default: nobody]
    #[arg(long, env = "CLOACINA_TASK_USER", value_name = "USER")]
    pub task_user: Option<String>,
    /// The network tasks get: `none` (a loopback of their own) or `host` (the host's)
    #[arg(long, env = "CLOACINA_TASK_NETWORK", default_value = "none", value_name = "host|none",
          value_parser = ["host", "none"])]
    pub task_network: String,
    /// A cgroup v2 folder delegated to the server (e.g. systemd `Delegate=yes`): each attempt
    /// gets a child cgroup limiting its memory and processes as a whole, besides its rlimits
    #[arg(long, env = "CLOACINA_TASK_CGROUP", value_name = "DIR")]
    pub task_cgroup: Option<PathBuf>,
    /// Run tasks WITHOUT a sandbox, as the server's own user, able to read its keys and
    /// database. For debugging only; refused with CLOACINA_ENV=production
    #[arg(long)]
    pub unsafe_no_sandbox: bool,
    /// The most memory a task may ask for, per process (e.g. 8GiB)
    #[arg(long, default_value = "8GiB", value_name = "SIZE", value_parser = parse_size)]
    pub task_max_memory: u64,
    /// The most processes a task may ask for, per attempt
    #[arg(long, default_value_t = 4096, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub task_max_processes: u32,
    /// The most open files a task may ask for, per process
    #[arg(long, default_value_t = 65_536, value_name = "N", value_parser = clap::value_parser!(u32).range(16..=1_048_576))]
    pub task_max_open_files: u32,
    /// The most CPU time a task may ask for, per process (e.g. 24h)
    #[arg(long, default_value = "24h", value_name = "DURATION", value_parser = parse_cpu_time)]
    pub task_max_cpu_time: std::time::Duration,
}

fn parse_size(s: &str) -> Result<u64, String> {
    let n = cloacina_domain::package::limits::parse_bytes(s)?;
    if n < cloacina_domain::package::limits::MIN_MEMORY {
        return Err("must be at least 16MiB".into());
    }
    Ok(n)
}

fn parse_cpu_time(s: &str) -> Result<std::time::Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{e} (e.g. 24h, 30m)"))?;
    if d < std::time::Duration::from_secs(1) {
        return Err("must be at least 1s".into());
    }
    Ok(d)
}

fn parse_prune_every(s: &str) -> Result<std::time::Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{e} (e.g. 1h, 5m)"))?;
    if d < std::time::Duration::from_secs(1) || d > std::time::Duration::from_secs(7 * 86_400) {
        return Err("must be between 1s and 7d".into());
    }
    Ok(d)
}

fn parse_network(s: &str) -> Result<String, String> {
    let ok = s.parse::<std::net::IpAddr>().is_ok() || is_network(s);
    if ok { Ok(s.to_owned()) } else { Err(format!("'{s}' is neither an IP address nor a network like 10.0.0.0/8")) }
}

/// Whether `s` is `ADDRESS/PREFIX` with a prefix that fits the address.
fn is_network(s: &str) -> bool {
    let Some((addr, prefix)) = s.split_once('/') else { return false };
    let Ok(prefix) = prefix.parse::<u8>() else { return false };
    match addr.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(_)) => prefix <= 32,
        Ok(std::net::IpAddr::V6(_)) => prefix <= 128,
        Err(_) => false,
    }
}

fn parse_connection_timeout(s: &str) -> Result<std::time::Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{e} (e.g. 10s, 2m)"))?;
    if d < std::time::Duration::from_millis(100) || d > std::time::Duration::from_secs(3600) {
        return Err("must be between 100ms and 1h".into());
    }
    Ok(d)
}

fn parse_retention(s: &str) -> Result<std::time::Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{e} (e.g. 30d, 12h)"))?;
    if d < std::time::Duration::from_secs(60) {
        return Err("must be at least 1m".into());
    }
    Ok(d)
}

/// PostgreSQL pool and session settings (`serve` and `migrate`).
#[derive(Args, Clone, Debug)]
#[command(next_help_heading = "PostgreSQL")]
pub struct DbArgs {
    /// Most connections held, whatever the number of tenants (a quarter serve tenant listings,
    /// a quarter trigger passes)
    #[arg(long, default_value_t = 16, value_name = "N", value_parser = clap::value_parser!(u32).range(4..=10_000))]
    pub db_max_connections: u32,
    /// Seconds a statement may run before PostgreSQL cancels it (0: no limit)
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    pub db_statement_timeout: u64,
    /// Seconds to wait for a database connection
    #[arg(long, default_value_t = 5, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=600))]
    pub db_connect_timeout: u64,
    /// Seconds after which a pooled connection is replaced, bounding the server-side memory
    /// each connection accumulates per tenant it touches
    #[arg(long, default_value_t = 600, value_name = "SECS", value_parser = clap::value_parser!(u64).range(10..))]
    pub db_max_lifetime: u64,
}

/// `migrate`.
#[derive(Args, Clone)]
pub struct MigrateArgs {
    /// Database: postgres://…, sqlite:///abs/path.db, sqlite://relative.db
    /// [default: DATABASE_URL, else `database_url` in config.toml, else ~/.cloacina/cloacina.db]
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, value_name = "URL")]
    pub database_url: Option<String>,
    /// Only report what is pending; change nothing (exit 1 if anything is)
    #[arg(long)]
    pub check: bool,
    #[command(flatten)]
    pub db: DbArgs,
}

impl std::fmt::Debug for MigrateArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MigrateArgs").field("check", &self.check).finish_non_exhaustive()
    }
}

impl std::fmt::Debug for ServeArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeArgs").field("bind", &self.bind).finish_non_exhaustive()
    }
}
