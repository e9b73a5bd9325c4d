//! The `cloacinactl` command line: its grammar, the config file with its profiles, and the
//! commands that talk to a server over HTTP. `serve` is parsed here and run by the app crate,
//! which alone sees the server's adapters.
//!
//! # Layout
//! - [`args`] — the clap grammar ([`Cli`], [`Command`], [`ServeArgs`]).
//! - [`home`] — where `~/.cloacina` is (`--home`, `CLOACINA_HOME`).
//! - [`config`] — `config.toml`: reading, atomic 0600 writes, profiles.
//! - [`client`] — the HTTP client, key references (`env:`, `file:`), tenant resolution.
//! - [`output`] — `-o table|json|yaml|id`.
//! - [`complete`] — completions that ask the server (`COMPLETE=bash cloacinactl`).
//! - [`dag`] — a workflow's task graph drawn by levels.
//! - [`exit`] — [`CliError`] and the exit codes 0–5.
//! - [`commands`] — one file per noun.

#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod args;
pub mod board;
pub mod client;
pub mod commands;
pub mod complete;
pub mod config;
pub mod context;
pub mod dag;
pub mod exit;
pub mod home;
pub mod output;
pub mod socket;

pub use args::{Cli, Command, ServeArgs};
pub use exit::{CliError, ExitStatus};

/// Runs a client command (anything but `serve`), printing results to stdout and one error
/// line to stderr.
pub async fn run(cli: Cli) -> ExitStatus {
    match commands::dispatch(cli).await {
        Ok(()) => ExitStatus::Ok,
        Err(CliError::Closed) => ExitStatus::BrokenPipe,
        Err(e) => {
            output::note(format!("error: {e}"));
            e.status()
        }
    }
}
