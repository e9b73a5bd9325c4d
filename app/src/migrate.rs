//! `cloacinactl migrate`: the server's start-up migrations as a separate pre-deploy step.
//! Idempotent; exits non-zero when a migration fails (or, with `--check`, when any is pending).

use anyhow::bail;
use cloacina_cli::args::{Globals, MigrateArgs};
use cloacina_cli::home::Home;
use cloacina_telemetry::init_logging;

use crate::backend::Backend;
use crate::serve::resolve_database;

/// Runs `migrate`.
///
/// # Errors
/// The database cannot be opened, a migration fails, or `--check` finds work pending.
pub async fn run(globals: &Globals, args: &MigrateArgs) -> anyhow::Result<()> {
    let home = Home::resolve(globals.home.as_deref()).map_err(anyhow::Error::msg)?;
    let _log_guard = init_logging(None, globals.verbose)?;
    let database = resolve_database(&home, args.database_url.as_deref())?;
    let backend = Backend::open(&database, &args.db).await?;
    let pending = backend.pending().await?;
    if args.check {
        if pending.is_empty() {
            println!("the database schema is current");
            return Ok(());
        }
        bail!("migrations pending: {}", pending.join(", "));
    }
    let applied = backend.migrate().await?;
    println!(
        "applied {} control-schema and {} tenant-schema migration(s) over {} tenant(s); the database schema is current",
        applied.control, applied.tenant, applied.tenants
    );
    Ok(())
}
