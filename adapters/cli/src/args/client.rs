//! The client commands' verbs: `config`, `tenant`, `package`, `workflow`, `execution`,
//! `trigger`, `auth`, `key` (the trust verbs are in `trust`).

use std::path::PathBuf;

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print one setting (database_url, default_profile)
    Get {
        /// The setting: database_url or default_profile
        key: String,
        /// Print a database URL's password instead of masking it
        #[arg(long)]
        reveal: bool,
    },
    /// Change one setting (database_url, default_profile)
    Set {
        /// The setting: database_url or default_profile
        key: String,
        /// Its new value
        value: String,
    },
    /// Print every setting, secrets masked
    #[command(visible_alias = "ls")]
    List,
    /// Named connection profiles
    #[command(subcommand)]
    Profile(ProfileCommand),
}

#[derive(Debug, Subcommand)]
pub enum ProfileCommand {
    /// Create or update a profile from --server, --api-key (prefer env:VAR or file:PATH) and
    /// --tenant as given on this command line (CLOACINA_* variables are never stored)
    Set {
        /// The profile's name: letters, digits, '-' or '_'
        name: String,
        /// Store a raw key (not env:VAR or file:PATH) without asking
        #[arg(long)]
        allow_raw_key: bool,
    },
    /// List profiles, secrets masked
    #[command(visible_alias = "ls")]
    List,
    /// Make a profile the default
    Use {
        /// The profile's name
        name: String,
    },
    /// Delete a profile
    Delete {
        /// The profile's name
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant: its schema, database role and tables
    Create {
        /// The new tenant's name
        name: String,
        /// Free text shown in listings
        #[arg(long)]
        description: Option<String>,
    },
    /// List tenants
    #[command(visible_alias = "ls")]
    List,
    /// Show one tenant
    #[command(visible_alias = "inspect")]
    Get {
        /// The tenant's name
        name: String,
    },
    /// Change a tenant's settings (god keys)
    Update {
        /// The tenant's name
        name: String,
        /// How its tasks reach the network; `default` follows the servers' --task-network
        #[arg(long, value_name = "host|none|default", value_parser = ["host", "none", "default"])]
        task_network: Option<String>,
    },
    /// Write all of a tenant's data to one file (JSON lines): packages, workflows, triggers,
    /// executions, tasks, events, logs, audit rows, keys' metadata; never a key or a secret
    Export {
        /// The tenant's name
        name: String,
        /// Where to write it (written whole or not at all)
        #[arg(long, short = 'f', value_name = "FILE")]
        file: std::path::PathBuf,
    },
    /// Make a tenant from an export, on this deployment: all of it or nothing (keys are not
    /// imported: mint new ones)
    Import {
        /// The file `tenant export` wrote
        file: std::path::PathBuf,
        /// The new tenant's name [default: the exported tenant's]
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
    },
    /// Delete a tenant: revoke its keys, drop its schema and role
    Delete {
        /// The tenant's name
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
    /// Upload a .cloacina archive to the tenant (the same bytes again change nothing); its
    /// signature, FILE.sig, goes with it when it exists
    Upload {
        /// The archive, as `package pack` writes it
        file: PathBuf,
    },
    /// Make an Ed25519 signing key pair: NAME.key (private, mode 0600) and NAME.pub
    Keygen {
        /// The key pair's name: letters, digits, '-', '_' or '.'
        name: String,
        /// Where to write the two files
        #[arg(long, value_name = "DIR", default_value = ".")]
        dir: PathBuf,
    },
    /// Sign an archive with a private key: writes FILE.sig beside it
    Sign {
        /// The archive, as `package pack` writes it
        file: PathBuf,
        /// The private key file `package keygen` wrote (NAME.key)
        #[arg(long, value_name = "KEYFILE")]
        key: PathBuf,
    },
    /// List the tenant's packages, every version
    #[command(visible_alias = "ls")]
    List,
    /// Show every uploaded version of one package (NAME), or one version (NAME@VERSION, as
    /// `package list -o id` prints it)
    #[command(name = "get", visible_alias = "inspect")]
    Inspect {
        /// NAME or NAME@VERSION
        name: String,
    },
    /// Delete one version of a package; the newest remaining version takes its place
    Delete {
        /// The package's name, or NAME@VERSION as `package list -o id` prints it
        name: String,
        /// The version to delete (unless NAME@VERSION gave it)
        #[arg(id = "package_version", value_name = "VERSION")]
        version: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum WorkflowCommand {
    /// List the tenant's workflows
    #[command(visible_alias = "ls")]
    List,
    /// Show one workflow: its package version, task graph, triggers and state
    #[command(name = "get", visible_alias = "inspect")]
    Inspect {
        /// The workflow's name
        #[arg(add = crate::complete::workflows())]
        name: String,
    },
    /// Pause a workflow: its triggers stop firing and new runs are refused
    Pause {
        /// The workflow's name
        #[arg(add = crate::complete::workflows())]
        name: String,
    },
    /// Resume a paused workflow
    Resume {
        /// The workflow's name
        #[arg(add = crate::complete::workflows())]
        name: String,
    },
    /// Run a workflow: prints the new execution's id (with --wait, its outcome)
    Run {
        /// The workflow's name
        #[arg(add = crate::complete::workflows())]
        name: String,
        /// The initial context: a JSON object, @FILE to read one from a file, or @- from stdin
        #[arg(long, value_name = "JSON|@FILE")]
        context: Option<String>,
        /// Wait for the execution to finish; exit 6 if it failed or was cancelled
        #[arg(long)]
        wait: bool,
        /// Follow it to the end: a status board on a terminal, a line per event otherwise,
        /// NDJSON with -o json (implies --wait)
        #[arg(long)]
        watch: bool,
        /// Seconds --wait (or --watch) waits at most, then exit 7 (0: no limit)
        #[arg(long, default_value_t = 0, value_name = "SECS")]
        wait_timeout: u64,
        /// A repeat with the same key returns the first execution instead of starting another
        #[arg(long, value_name = "KEY")]
        idempotency_key: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ExecutionCommand {
    /// List executions, newest first
    #[command(visible_alias = "ls")]
    List {
        /// Only this status: Pending, Running, Completed, Failed, Cancelled (any case)
        #[arg(long, value_name = "STATUS", add = crate::complete::statuses())]
        status: Option<String>,
        /// Only executions of this workflow
        #[arg(long, value_name = "NAME", add = crate::complete::workflows())]
        workflow: Option<String>,
        /// Only executions this trigger started (on schedule or by hand)
        #[arg(long, value_name = "NAME", add = crate::complete::triggers())]
        trigger: Option<String>,
        /// Page size (1 to 1000)
        #[arg(long, default_value_t = 100, value_name = "N")]
        limit: u32,
        /// Executions to skip
        #[arg(long, default_value_t = 0, value_name = "N")]
        offset: u64,
        /// Every matching execution, page after page (instead of --limit and --offset)
        #[arg(long, conflicts_with_all = ["limit", "offset"])]
        all: bool,
    },
    /// Show one execution: status, timings, context, error, origin
    #[command(name = "get", visible_alias = "status")]
    Status {
        /// The execution's id, or a unique prefix of it (8+ characters)
        #[arg(required_unless_present = "latest", add = crate::complete::executions())]
        id: Option<String>,
        /// The newest execution instead (of --workflow, when given)
        #[arg(long, conflicts_with = "id")]
        latest: bool,
        /// With --latest: the newest execution of this workflow
        #[arg(long, requires = "latest", value_name = "NAME", add = crate::complete::workflows())]
        workflow: Option<String>,
    },
    /// Show an execution's tasks
    Tasks {
        /// The execution's id, or a unique prefix of it (8+ characters)
        #[arg(add = crate::complete::executions())]
        id: String,
    },
    /// Show an execution's events
    Events {
        /// The execution's id, or a unique prefix of it (8+ characters)
        #[arg(add = crate::complete::executions())]
        id: String,
        /// Only events after this event id
        #[arg(long, default_value_t = 0, value_name = "EVENT_ID")]
        since: i64,
    },
    /// Show the captured stdout and stderr of a task (or of every task), every attempt
    Logs {
        /// The execution's id, or a unique prefix of it (8+ characters)
        #[arg(add = crate::complete::executions())]
        id: String,
        /// The task's id in the workflow (every task's output when left out)
        task: Option<String>,
        /// Follow the output as it comes until the execution finishes
        #[arg(short = 'f', long)]
        follow: bool,
        /// Only the tasks that failed
        #[arg(long, conflicts_with = "task")]
        failed: bool,
    },
    /// Follow an execution's events until it finishes
    Watch {
        /// The execution's id, or a unique prefix of it (8+ characters)
        #[arg(add = crate::complete::executions())]
        id: String,
    },
    /// Cancel an unfinished execution
    Cancel {
        /// The execution's id, or a unique prefix of it (8+ characters)
        #[arg(add = crate::complete::executions())]
        id: String,
    },
    /// Run a failed or cancelled execution's unsuccessful tasks again
    Retry {
        /// The execution's id, or a unique prefix of it (8+ characters)
        #[arg(add = crate::complete::executions())]
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TriggerCommand {
    /// List the tenant's triggers by name, with their next and last fire
    #[command(visible_alias = "ls")]
    List {
        /// Page size (1 to 1000)
        #[arg(long, default_value_t = 100, value_name = "N")]
        limit: u32,
        /// Triggers to skip
        #[arg(long, default_value_t = 0, value_name = "N")]
        offset: u64,
    },
    /// Show one trigger: schedule, policies, counts, next 5 fire times, recent executions
    #[command(name = "get", visible_alias = "inspect")]
    Inspect {
        /// The trigger's name
        #[arg(add = crate::complete::triggers())]
        name: String,
    },
    /// Pause a trigger: nothing fires or is counted until it is resumed
    Pause {
        /// The trigger's name
        #[arg(add = crate::complete::triggers())]
        name: String,
    },
    /// Resume a paused trigger: scheduled again from now (no catch-up of the pause)
    Resume {
        /// The trigger's name
        #[arg(add = crate::complete::triggers())]
        name: String,
    },
    /// Fire a trigger now, outside its schedule: prints the new execution's id
    Fire {
        /// The trigger's name
        #[arg(add = crate::complete::triggers())]
        name: String,
        /// Merged over the trigger's context: a JSON object, @FILE to read one from a file, or @- from stdin
        #[arg(long, value_name = "JSON|@FILE")]
        event: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuthCommand {
    /// The key in force: its name, id, tenant and role
    Whoami,
    /// The server (and where its URL came from), its release, and the key in force
    Status,
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create a key: `--admin` for an admin (god) key, else a key of the tenant with a role
    Create {
        /// The key's name, unique among the scope's unrevoked keys
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
    #[command(visible_alias = "ls")]
    List,
    /// Revoke a key by id, a unique id prefix (8+ characters), or its name when no other
    /// active key in scope has it
    Revoke {
        /// The key's id, id prefix or name
        key: String,
    },
}
