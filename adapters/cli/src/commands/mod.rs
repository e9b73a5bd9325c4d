//! The client commands, one file per noun.
//!
//! # Layout
//! - [`audit`] — `audit list [--follow]|verify`: the audit trail, checked on the client.
//! - [`auth`] — `auth whoami|status`, `version`.
//! - [`config`] — `config get|set|list`, `config profile set|list|use|delete`.
//! - [`key`] — `key create|list|revoke`.
//! - [`package`] — `package new|pack|validate` (offline), `package upload|list`.
//! - [`package_check`] — `package validate`'s every problem at once, and missing files.
//! - [`secret`] — `secret create|rotate|list|get|delete`: values in from files or a prompt.
//! - [`signing`] — `package keygen|sign` (offline), `signer add|list|remove|require`.
//! - [`tenant`] — `tenant create|list|get|delete`.
//! - [`workflow`] — `workflow list|inspect|pause|resume|run`.
//! - [`trigger`] — `trigger list|inspect|pause|resume|fire`.
//! - [`execution`] — `execution list|status|tasks|events|logs|watch|cancel|retry`.
//! - [`follow`] — following an execution to its end, over its live socket or by polling.
//! - [`ids`] — ids as typed: full, a unique prefix, or (keys) a name.

pub mod audit;
pub mod auth;
pub mod config;
pub mod execution;
pub mod follow;
pub mod ids;
pub mod key;
pub mod logs;
pub mod package;
pub mod package_check;
pub mod secret;
pub mod signing;
pub mod tenant;
pub mod trigger;
pub mod workflow;

use clap::CommandFactory;

use crate::args::{Cli, Command};
use crate::client::Context;
use crate::exit::CliError;

/// Runs one client command.
///
/// # Errors
/// The command's [`CliError`].
pub async fn dispatch(cli: Cli) -> Result<(), CliError> {
    crate::output::set_colour(cli.globals.color);
    match cli.command {
        Command::Serve(_) | Command::Server(_) | Command::Migrate(_) | Command::Secrets(_) => {
            Err(CliError::Usage("`serve`, `migrate` and `secrets` are run by the cloacinactl binary itself".into()))
        }
        Command::Completions { shell } => {
            let mut script = Vec::new();
            let mut grammar = crate::args::help::with_globals_shown(Cli::command());
            clap_complete::generate(shell, &mut grammar, "cloacinactl", &mut script);
            crate::output::write(&script)
        }
        Command::Auth(cmd) => auth::run(&Context::load(cli.globals)?, cmd).await,
        Command::Options => crate::output::line(crate::args::help::global_options(&Cli::command())),
        Command::Version => auth::version(&Context::load(cli.globals)?).await,
        Command::Config(cmd) => config::run(&mut Context::load(cli.globals)?, cmd),
        Command::Key(cmd) => key::run(&Context::load(cli.globals)?, cmd).await,
        Command::Package(cmd) => package::run(cli.globals, cmd).await,
        Command::Tenant(cmd) => tenant::run(&Context::load(cli.globals)?, cmd).await,
        Command::Workflow(cmd) => workflow::run(&Context::load(cli.globals)?, cmd).await,
        Command::Execution(cmd) => execution::run(&Context::load(cli.globals)?, cmd).await,
        Command::Trigger(cmd) => trigger::run(&Context::load(cli.globals)?, cmd).await,
        Command::Secret(cmd) => secret::run(&Context::load(cli.globals)?, cmd).await,
        Command::Signer(cmd) => signing::run(&Context::load(cli.globals)?, cmd).await,
        Command::Audit(cmd) => audit::run(&Context::load(cli.globals)?, cmd).await,
    }
}
