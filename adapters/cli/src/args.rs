//! The grammar: `cloacinactl [globals] <noun> <verb>`.
//!
//! One file on purpose, past the usual size: it is the whole command tree as clap derives it,
//! read top to bottom as the `--help` pages are, and splitting it would scatter one grammar.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Cloacina: a multi-tenant workflow control plane. One binary is the API server
/// (`serve`) and the client of its API.
#[derive(Debug, Parser)]
#[command(name = "cloacinactl", version, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub globals: Globals,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes. Each falls back to its environment variable.
#[derive(Args, Clone, Default)]
#[command(next_help_heading = "Global options")]
pub struct Globals {
    /// Server URL [default: the profile's, else http://localhost:8080]
    #[arg(long, global = true, env = "CLOACINA_SERVER", value_name = "URL")]
    pub server: Option<String>,
    /// API key: the key itself, `env:VAR` or `file:PATH`
    #[arg(long, global = true, env = "CLOACINA_API_KEY", hide_env_values = true, value_name = "KEY")]
    pub api_key: Option<String>,
    /// Tenant [default: the profile's, else the key's own, else `public`]
    #[arg(long, global = true, env = "CLOACINA_TENANT", value_name = "NAME")]
    pub tenant: Option<String>,
    /// Profile from config.toml [default: `default_profile`]
    #[arg(long, global = true, env = "CLOACINA_PROFILE", value_name = "NAME")]
    pub profile: Option<String>,
    /// Output format
    #[arg(short = 'o', long, global = true, value_enum, value_name = "FORMAT")]
    pub output: Option<OutputFormat>,
    /// Same as `-o json`
    #[arg(long, global = true, conflicts_with = "output")]
    pub json: bool,
    /// Debug-level logs (`serve`)
    #[arg(short = 'v', long, global = true)]
    pub verbose: bool,
    /// Cloacina's folder [default: ~/.cloacina]
    #[arg(long, global = true, env = "CLOACINA_HOME", value_name = "DIR")]
    pub home: Option<PathBuf>,
}

impl Globals {
    /// The output format asked for.
    pub fn format(&self) -> OutputFormat {
        if self.json { OutputFormat::Json } else { self.output.unwrap_or(OutputFormat::Table) }
    }
}

impl std::fmt::Debug for Globals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Globals")
            .field("server", &self.server)
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .field("tenant", &self.tenant)
            .field("profile", &self.profile)
            .finish_non_exhaustive()
    }
}

/// `-o`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
    Yaml,
    Id,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the API server
    Serve(ServeArgs),
    /// The API server
    #[command(subcommand)]
    Server(ServerCommand),
    /// Apply pending database migrations and exit (a pre-deploy step; `serve` also does it)
    Migrate(MigrateArgs),
    /// Create, list, inspect and delete tenants (admin keys; PostgreSQL)
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Make, pack and check workflow packages; upload and list them
    #[command(subcommand)]
    Package(PackageCommand),
    /// A tenant's workflows
    #[command(subcommand)]
    Workflow(WorkflowCommand),
    /// Follow, cancel and retry a tenant's executions
    #[command(subcommand)]
    Execution(ExecutionCommand),
    /// A tenant's cron triggers: list, inspect, pause, resume, fire by hand
    #[command(subcommand)]
    Trigger(TriggerCommand),
    /// Read and change ~/.cloacina/config.toml
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Create, list and revoke API keys
    #[command(subcommand)]
    Key(KeyCommand),
    /// Print shell completions
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

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
    /// Address to listen on
    #[arg(long, default_value = "0.0.0.0:8080", value_name = "ADDR")]
    pub bind: SocketAddr,
    /// The first admin key, used only while no admin key exists (16+ characters)
    #[arg(long, env = "CLOACINA_BOOTSTRAP_KEY", hide_env_values = true, value_name = "KEY")]
    pub bootstrap_key: Option<String>,
    /// Seconds in-flight requests get to finish after SIGINT/SIGTERM
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    pub shutdown_timeout: u64,
    /// Seconds a request may run before it is answered 503
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    pub request_timeout: u64,
    /// Failed authentications allowed per client address per minute (0: unlimited)
    #[arg(long, default_value_t = 60, value_name = "N")]
    pub auth_failures_per_minute: u32,
    /// Seconds a verified key stays cached (revocation on this server is immediate regardless)
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    pub auth_cache_ttl: u64,
    /// Behind a trusted reverse proxy: take the client address from X-Forwarded-For
    #[arg(long)]
    pub behind_proxy: bool,
    /// Refuse to start if the database schema is behind, instead of migrating it (run
    /// `cloacinactl migrate` first)
    #[arg(long)]
    pub no_migrate: bool,
    #[command(flatten)]
    pub db: DbArgs,
    #[command(flatten)]
    pub engine: EngineArgs,
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
    /// Most connections held, whatever the number of tenants
    #[arg(long, default_value_t = 16, value_name = "N", value_parser = clap::value_parser!(u32).range(2..=10_000))]
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

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print one setting (database_url, default_profile)
    Get {
        key: String,
        /// Print a database URL's password instead of masking it
        #[arg(long)]
        reveal: bool,
    },
    /// Change one setting (database_url, default_profile)
    Set { key: String, value: String },
    /// Print every setting, secrets masked
    List,
    /// Named connection profiles
    #[command(subcommand)]
    Profile(ProfileCommand),
}

#[derive(Debug, Subcommand)]
pub enum ProfileCommand {
    /// Create or update a profile from --server, --api-key (prefer env:VAR or file:PATH) and --tenant
    Set { name: String },
    /// List profiles, secrets masked
    List,
    /// Make a profile the default
    Use { name: String },
    /// Delete a profile
    Delete { name: String },
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant: its schema, database role and tables
    Create {
        name: String,
        /// Free text shown in listings
        #[arg(long)]
        description: Option<String>,
    },
    /// List tenants
    List,
    /// Show one tenant
    #[command(alias = "inspect")]
    Get { name: String },
    /// Change a tenant's settings (god keys)
    Update {
        name: String,
        /// How its tasks reach the network; `default` follows the servers' --task-network
        #[arg(long, value_name = "host|none|default", value_parser = ["host", "none", "default"])]
        task_network: Option<String>,
    },
    /// Delete a tenant: revoke its keys, drop its schema and role
    Delete {
        name: String,
        /// Do not ask for confirmation
        #[arg(long, short = 'y')]
        yes: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum PackageCommand {
    /// Scaffold a package folder NAME/ that runs as is: three tasks passing data downstream
    New {
        /// The package name: lowercase letters, digits and '-'
        name: String,
        /// Where to create the folder [default: ./NAME]
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Build `<name>-<version>.cloacina` from a package folder
    Pack {
        /// The folder holding package.toml
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Where to write the archive [default: ./<name>-<version>.cloacina]
        #[arg(long, short = 'f', value_name = "FILE")]
        file: Option<PathBuf>,
    },
    /// Check a package folder or archive without uploading it
    Validate {
        /// A folder holding package.toml, or a .cloacina archive
        path: PathBuf,
    },
    /// Upload a .cloacina archive to the tenant (the same bytes again change nothing)
    Upload {
        /// The archive, as `package pack` writes it
        file: PathBuf,
    },
    /// List the tenant's packages, every version
    List,
    /// Show every uploaded version of one package
    Inspect { name: String },
    /// Delete one version of a package; the newest remaining version takes its place
    Delete {
        name: String,
        #[arg(id = "package_version", value_name = "VERSION")]
        version: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum WorkflowCommand {
    /// List the tenant's workflows
    List,
    /// Show one workflow: its package version, tasks and state
    Inspect { name: String },
    /// Pause a workflow: its triggers stop firing and new runs are refused
    Pause { name: String },
    /// Resume a paused workflow
    Resume { name: String },
    /// Run a workflow: prints the new execution's id (with --wait, its outcome)
    Run {
        name: String,
        /// The initial context: a JSON object, or @FILE to read one from a file
        #[arg(long, value_name = "JSON|@FILE")]
        context: Option<String>,
        /// Wait for the execution to finish; exit 1 unless it succeeded
        #[arg(long)]
        wait: bool,
        /// Seconds --wait waits at most (0: no limit)
        #[arg(long, default_value_t = 0, value_name = "SECS", requires = "wait")]
        wait_timeout: u64,
        /// A repeat with the same key returns the first execution instead of starting another
        #[arg(long, value_name = "KEY")]
        idempotency_key: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ExecutionCommand {
    /// List executions, newest first
    List {
        /// Only this status: Pending, Running, Completed, Failed, Cancelled (any case)
        #[arg(long, value_name = "STATUS")]
        status: Option<String>,
        /// Only executions of this workflow
        #[arg(long, value_name = "NAME")]
        workflow: Option<String>,
        /// Only executions this trigger started (on schedule or by hand)
        #[arg(long, value_name = "NAME")]
        trigger: Option<String>,
        /// Page size (1 to 1000)
        #[arg(long, default_value_t = 100, value_name = "N")]
        limit: u32,
        /// Executions to skip
        #[arg(long, default_value_t = 0, value_name = "N")]
        offset: u64,
    },
    /// Show one execution: status, timings, context, error, origin
    Status { id: String },
    /// Show an execution's tasks
    Tasks { id: String },
    /// Show an execution's events
    Events {
        id: String,
        /// Only events after this event id
        #[arg(long, default_value_t = 0, value_name = "EVENT_ID")]
        since: i64,
    },
    /// Show a task's captured stdout and stderr, every attempt
    Logs { id: String, task: String },
    /// Follow an execution's events until it finishes
    Watch { id: String },
    /// Cancel an unfinished execution
    Cancel { id: String },
    /// Run a failed or cancelled execution's unsuccessful tasks again
    Retry { id: String },
}

#[derive(Debug, Subcommand)]
pub enum TriggerCommand {
    /// List the tenant's triggers by name, with their next and last fire
    List {
        /// Page size (1 to 1000)
        #[arg(long, default_value_t = 100, value_name = "N")]
        limit: u32,
        /// Triggers to skip
        #[arg(long, default_value_t = 0, value_name = "N")]
        offset: u64,
    },
    /// Show one trigger: schedule, policies, counts, next 5 fire times, recent executions
    Inspect { name: String },
    /// Pause a trigger: nothing fires or is counted until it is resumed
    Pause { name: String },
    /// Resume a paused trigger: scheduled again from now (no catch-up of the pause)
    Resume { name: String },
    /// Fire a trigger now, outside its schedule: prints the new execution's id
    Fire {
        name: String,
        /// Merged over the trigger's context: a JSON object, or @FILE to read one from a file
        #[arg(long, value_name = "JSON|@FILE")]
        event: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create a key: `--admin` for an admin (god) key, else a key of the tenant with a role
    Create {
        name: String,
        /// An admin key: every tenant, tenant and admin-key management
        #[arg(long, conflicts_with = "role")]
        admin: bool,
        /// The tenant key's role: read, write or admin [default: read]
        #[arg(long, value_name = "ROLE")]
        role: Option<String>,
        /// Expiry, RFC 3339 (e.g. 2027-01-01T00:00:00Z)
        #[arg(long, value_name = "TIME")]
        expires_at: Option<String>,
    },
    /// List keys: every key for an admin key (or of --tenant when given), else the tenant's
    List,
    /// Revoke a key by id
    Revoke { id: String },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_grammar_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn tenant_and_role_may_follow_the_verb() {
        let cli =
            Cli::try_parse_from(["cloacinactl", "key", "create", "acme-ci", "--role", "write", "--tenant", "acme"])
                .unwrap();
        assert_eq!(cli.globals.tenant.as_deref(), Some("acme"));
        assert!(matches!(cli.command, Command::Key(KeyCommand::Create { role: Some(ref r), .. }) if r == "write"));
    }

    #[test]
    fn serve_binds_all_interfaces_on_8080_by_default() {
        let cli = Cli::try_parse_from(["cloacinactl", "serve"]).unwrap();
        let Command::Serve(args) = cli.command else { panic!("not serve") };
        assert_eq!(args.bind.to_string(), "0.0.0.0:8080");
    }
}
