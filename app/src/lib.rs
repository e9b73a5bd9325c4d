//! The composition root: parses the command line, and either runs the server (building every
//! adapter and wiring them into the use cases) or hands a client command to the CLI adapter.
//!
//! # Layout
//! - [`backend`] — the open database (SQLite or PostgreSQL) as port trait objects.
//! - [`migrate`] — `cloacinactl migrate`.
//! - [`database`] — database URLs (`sqlite://…`, `sqlite::memory:`, `postgres://…`).
//! - [`production`] — the `CLOACINA_ENV=production` check of insecure settings.
//! - [`serve`] — the server's start-up, run and graceful shutdown.
//! - [`tasks`] — the task runner: the sandbox made and tested at start-up, or no tasks.

pub mod backend;
pub mod database;
pub mod migrate;
pub mod production;
pub mod secrets;
pub mod serve;
pub mod tasks;

use std::process::ExitCode;

use cloacina_cli::args::ServerCommand;
use cloacina_cli::{Cli, Command, ExitStatus};

/// The binary's entry point.
pub fn main() -> ExitCode {
    // A shell asking for completions (`COMPLETE=bash`) is answered, and nothing else runs.
    cloacina_cli::complete::answer_the_shell_if_asked();
    let cli = match Cli::parse_args(std::env::args_os()) {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout with 0; usage errors to stderr with 1.
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { ExitStatus::User as u8 } else { 0 });
        }
    };
    if let Command::Secrets(cloacina_cli::args::SecretsAdminCommand::Rewrap(args)) = &cli.command {
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build();
        return match runtime.map_err(anyhow::Error::from).and_then(|r| r.block_on(secrets::rewrap(&cli.globals, args)))
        {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(ExitStatus::User as u8)
            }
        };
    }
    if let Command::Migrate(args) = &cli.command {
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build();
        return match runtime.map_err(anyhow::Error::from).and_then(|r| r.block_on(migrate::run(&cli.globals, args))) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(ExitStatus::User as u8)
            }
        };
    }
    let serve_args = match &cli.command {
        Command::Serve(args) | Command::Server(ServerCommand::Start(args)) => Some(args.clone()),
        _ => None,
    };
    let runtime = match serve_args {
        Some(_) => tokio::runtime::Builder::new_multi_thread().enable_all().build(),
        None => tokio::runtime::Builder::new_current_thread().enable_all().build(),
    };
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(ExitStatus::Server as u8);
        }
    };
    match serve_args {
        Some(args) => match runtime.block_on(serve::run(cli.globals, args)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(ExitStatus::User as u8)
            }
        },
        None => runtime.block_on(cloacina_cli::run(cli)).into(),
    }
}
