//! The grammar: `cloacinactl [globals] <noun> <verb>`, as clap derives it: the globals and
//! the nouns here, `serve`/`migrate`'s flags in [`server`], the client commands' verbs in
//! [`client`] and [`trust`] (all re-exported here).

use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

mod client;
pub mod help;
mod server;
mod trust;

pub use client::*;
pub use server::*;
pub use trust::*;

/// Cloacina: a multi-tenant workflow control plane. One binary is the API server
/// (`serve`) and the client of its API.
#[derive(Debug, Parser)]
#[command(name = "cloacinactl", version)]
pub struct Cli {
    #[command(flatten)]
    pub globals: Globals,
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Parses `args` (the first is the program's name). An environment variable that is set
    /// but empty counts as unset, as it does for most Unix tools; each global notes whether
    /// its value came from the environment, for messages and for `config profile set`.
    ///
    /// # Errors
    /// clap's usage error, help or version.
    pub fn parse_args<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let matches = help::for_people(without_empty_env(Self::command())).try_get_matches_from(args)?;
        let mut cli = Self::from_arg_matches(&matches)?;
        cli.globals.from_env = FromEnv {
            server: from_env(&matches, "server"),
            api_key: from_env(&matches, "api_key"),
            tenant: from_env(&matches, "tenant"),
        };
        Ok(cli)
    }
}

fn from_env(matches: &ArgMatches, id: &str) -> bool {
    matches.value_source(id) == Some(ValueSource::EnvVariable)
}

/// `cmd` with the environment fallback of every argument whose variable is set but empty
/// taken away, in every subcommand.
fn without_empty_env(mut cmd: clap::Command) -> clap::Command {
    let empty: Vec<clap::Id> = cmd
        .get_arguments()
        .filter(|a| a.get_env().and_then(std::env::var_os).is_some_and(|v| v.is_empty()))
        .map(|a| a.get_id().clone())
        .collect();
    for id in empty {
        cmd = cmd.mut_arg(id, |a| a.env(None));
    }
    let names: Vec<String> = cmd.get_subcommands().map(|c| c.get_name().to_owned()).collect();
    for name in names {
        cmd = cmd.mut_subcommand(name, without_empty_env);
    }
    cmd
}

/// Which globals took their value from the environment rather than a flag.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FromEnv {
    pub server: bool,
    pub api_key: bool,
    pub tenant: bool,
}

/// Options every command takes. Each falls back to its environment variable.
#[derive(Args, Clone, Default)]
#[command(next_help_heading = "Global options")]
pub struct Globals {
    /// Server URL [default: the profile's, else http://localhost:8080]
    #[arg(long, global = true, hide = true, env = "CLOACINA_SERVER", value_name = "URL")]
    pub server: Option<String>,
    /// API key: `env:VAR`, `file:PATH` (`~/` is the home folder), `-` (a line of stdin) or the key itself
    #[arg(long, global = true, hide = true, env = "CLOACINA_API_KEY", hide_env_values = true, value_name = "KEY")]
    pub api_key: Option<String>,
    /// Tenant [default: the profile's, else the key's own, else `public`]
    #[arg(long, global = true, hide = true, env = "CLOACINA_TENANT", value_name = "NAME")]
    pub tenant: Option<String>,
    /// Profile from config.toml [default: `default_profile`]
    #[arg(long, global = true, hide = true, env = "CLOACINA_PROFILE", value_name = "NAME")]
    pub profile: Option<String>,
    /// Output format
    #[arg(short = 'o', long, global = true, hide = true, value_enum, value_name = "FORMAT")]
    pub output: Option<OutputFormat>,
    /// Same as `-o json`
    #[arg(long, global = true, hide = true, conflicts_with = "output")]
    pub json: bool,
    /// Debug-level logs (`serve`)
    #[arg(short = 'v', long, global = true, hide = true)]
    pub verbose: bool,
    /// Cloacina's folder [default: ~/.cloacina]
    #[arg(long, global = true, hide = true, env = "CLOACINA_HOME", value_name = "DIR")]
    pub home: Option<PathBuf>,
    /// How long a request may take, e.g. `30s`, `2m` or `30` (seconds): a client gives up
    /// waiting for the answer; `serve` answers 503 [default: 30s]
    #[arg(long, global = true, hide = true, env = "CLOACINA_REQUEST_TIMEOUT", value_name = "DURATION",
        value_parser = parse_timeout)]
    pub request_timeout: Option<std::time::Duration>,
    /// Colour states in tables: auto (on a terminal, unless NO_COLOR is set), always, never
    #[arg(long, global = true, hide = true, value_enum, value_name = "WHEN", default_value = "auto")]
    pub color: ColorChoice,
    #[arg(skip)]
    pub from_env: FromEnv,
}

/// `--color`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    #[default]
    Auto,
    Always,
    Never,
}

/// The longest `--request-timeout` taken: a day.
const LONGEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(86_400);

/// `--request-timeout` when none is given.
pub const DEFAULT_REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

impl Globals {
    /// `--request-timeout`, else its default.
    pub fn request_timeout(&self) -> std::time::Duration {
        self.request_timeout.unwrap_or(DEFAULT_REQUEST_TIMEOUT)
    }
}

fn parse_timeout(text: &str) -> Result<std::time::Duration, String> {
    let d = match text.parse::<u64>() {
        Ok(secs) => std::time::Duration::from_secs(secs),
        Err(_) => humantime::parse_duration(text).map_err(|e| format!("{e} (e.g. 30s, 2m, or 30 for seconds)"))?,
    };
    if d.is_zero() || d > LONGEST_TIMEOUT {
        return Err("must be more than 0 and at most 1 day".into());
    }
    Ok(d)
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
    /// The deployment's master key: rewrap every tenant's data key under a new one
    #[command(subcommand)]
    Secrets(SecretsAdminCommand),
    /// A tenant's secrets: create, rotate, list, show (names only) and delete
    #[command(subcommand)]
    Secret(SecretCommand),
    /// Create, list, show and delete tenants (admin keys; PostgreSQL)
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
    /// A tenant's cron triggers: list, show, pause, resume, fire by hand
    #[command(subcommand)]
    Trigger(TriggerCommand),
    /// The keys a tenant trusts to sign its packages, and whether it requires signatures
    #[command(subcommand)]
    Signer(SignerCommand),
    /// The audit trail: list a chain's rows, follow them, verify its hashes
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Read and change ~/.cloacina/config.toml
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Create, list and revoke API keys
    #[command(subcommand)]
    Key(KeyCommand),
    /// Who the key in force is, and where it talks to
    #[command(subcommand)]
    Auth(AuthCommand),
    /// The client's release, and the server's when it answers
    Version,
    /// The global options, which every command takes
    Options,
    /// Print shell completions
    Completions {
        /// The shell to complete for
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
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
