//! The master key from where the operator keeps it (the environment or a file, never the
//! command line), and `cloacinactl secrets rewrap`: every tenant's data key rewrapped under a
//! new master key, on the database directly, opening no secret (docs/secrets.md).

use std::path::Path;

use anyhow::{Context as _, bail};
use cloacina_cli::args::{Globals, MasterKeyArgs, RewrapArgs};
use cloacina_cli::home::Home;
use cloacina_domain::secrets::{MasterKey, MasterKeys};
use cloacina_telemetry::init_logging;

use crate::backend::Backend;
use crate::serve::resolve_database;

/// A key from a file, else from an environment variable; `None` when neither is set.
fn key_from(file: Option<&Path>, var: &str) -> anyhow::Result<Option<MasterKey>> {
    let text = match file {
        Some(path) => Some(
            std::fs::read_to_string(path).with_context(|| format!("cannot read the key file {}", path.display()))?,
        ),
        None => std::env::var(var).ok().filter(|v| !v.trim().is_empty()),
    };
    let origin = file.map_or_else(|| var.to_owned(), |p| p.display().to_string());
    text.map(|t| MasterKey::parse(&t).map_err(|e| anyhow::anyhow!("{origin}: {e}"))).transpose()
}

/// The server's master keys (`--master-key-file` or `CLOACINA_MASTER_KEY`; during a rotation
/// also `--previous-master-key-file` or `CLOACINA_PREVIOUS_MASTER_KEY`). `None`: secrets are
/// unavailable.
///
/// # Errors
/// An unreadable file or a key that is not 32 bytes of base64 (never printing it).
pub fn master_keys(args: &MasterKeyArgs) -> anyhow::Result<Option<MasterKeys>> {
    let current = key_from(args.master_key_file.as_deref(), "CLOACINA_MASTER_KEY")?;
    let previous = key_from(args.previous_master_key_file.as_deref(), "CLOACINA_PREVIOUS_MASTER_KEY")?;
    match (current, previous) {
        (Some(current), previous) => Ok(Some(MasterKeys { current, previous })),
        (None, Some(_)) => bail!("a previous master key was given without the current one"),
        (None, None) => Ok(None),
    }
}

/// Runs `secrets rewrap`.
///
/// # Errors
/// A key missing or unreadable, the database unreachable, or a data key neither key opens.
pub async fn rewrap(globals: &Globals, args: &RewrapArgs) -> anyhow::Result<()> {
    let home = Home::resolve(globals.home.as_deref()).map_err(anyhow::Error::msg)?;
    let _log_guard = init_logging(None, globals.verbose)?;
    let old = key_from(args.old_key_file.as_deref(), "CLOACINA_OLD_MASTER_KEY")?
        .context("the old master key is needed: --old-key-file or CLOACINA_OLD_MASTER_KEY")?;
    let new = key_from(args.new_key_file.as_deref(), "CLOACINA_NEW_MASTER_KEY")?
        .context("the new master key is needed: --new-key-file or CLOACINA_NEW_MASTER_KEY")?;
    if old.id() == new.id() {
        bail!("the old and the new master key are the same key");
    }
    let database = resolve_database(&home, args.database_url.as_deref())?;
    let backend = Backend::open(&database, &args.db).await?;
    let done = backend.rewrap(&old, &new).await?;
    println!(
        "rewrapped {} tenant data key(s) from master key {} to {}; {} already were; {} tenant(s) have no secrets",
        done.rewrapped,
        old.id(),
        new.id(),
        done.already,
        done.without
    );
    Ok(())
}
