//! Signed packages from the command line: `package keygen` and `package sign` (offline), and
//! `signer add|list|remove|require` (a tenant admin's keys and policy on the server).
//! `package upload` sends `FILE.sig` beside the archive when it exists.

use std::path::{Path, PathBuf};

use cloacina_domain::package::{SignerKey, SigningSecret};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::args::SignerCommand;
use crate::client::{Context, segment};
use crate::exit::CliError;
use crate::output::{Table, emit, items, line, text};

/// The signature document beside an archive.
pub fn signature_path(archive: &Path) -> PathBuf {
    let mut name = archive.as_os_str().to_owned();
    name.push(".sig");
    PathBuf::from(name)
}

/// `package keygen NAME [--dir DIR]`: writes `NAME.key` (the private key, mode 0600) and
/// `NAME.pub` (the public key, for tenants to trust); never overwrites either.
///
/// # Errors
/// A file that exists already, or cannot be written.
pub fn keygen(name: &str, dir: &Path) -> Result<(), CliError> {
    segment(name)?;
    let (secret_path, public_path) = (dir.join(format!("{name}.key")), dir.join(format!("{name}.pub")));
    for p in [&secret_path, &public_path] {
        if p.exists() {
            return Err(CliError::Local(format!("{} exists already: keygen never overwrites a key", p.display())));
        }
    }
    let secret = SigningSecret::from_seed(rand::random());
    let public = secret.public();
    crate::home::write_private_file(&secret_path, format!("{}\n", secret.to_text()).as_bytes())
        .map_err(CliError::Local)?;
    std::fs::write(&public_path, format!("{}\n", public.to_text()))
        .map_err(|e| CliError::Local(format!("cannot write {}: {e}", public_path.display())))?;
    line(format!(
        "wrote {} (private: keep it secret) and {} (public, key id {})\nnext: cloacinactl signer add {name} --public-key {}",
        secret_path.display(),
        public_path.display(),
        public.id(),
        public_path.display()
    ))
}

/// `package sign FILE --key KEYFILE`: writes `FILE.sig`.
///
/// # Errors
/// An unreadable archive or key, or a key that is not a signing key.
pub fn sign(archive: &Path, key: &Path) -> Result<(), CliError> {
    let read = |p: &Path| std::fs::read(p).map_err(|e| CliError::Local(format!("cannot read {}: {e}", p.display())));
    let key_text =
        String::from_utf8(read(key)?).map_err(|_| CliError::Local(format!("{} is not text", key.display())))?;
    let secret = SigningSecret::parse(&key_text).map_err(|e| CliError::Local(format!("{}: {e}", key.display())))?;
    let digest: String = Sha256::digest(read(archive)?).iter().map(|b| format!("{b:02x}")).collect();
    let signature = secret.sign(&digest).map_err(CliError::Local)?;
    let out = signature_path(archive);
    std::fs::write(&out, format!("{}\n", signature.to_text()))
        .map_err(|e| CliError::Local(format!("cannot write {}: {e}", out.display())))?;
    line(format!("signed {} with key {}: wrote {}", archive.display(), signature.key_id, out.display()))
}

/// Runs a `signer` command in the tenant in force.
///
/// # Errors
/// The server's refusal or a transport failure, as [`CliError`].
pub async fn run(ctx: &Context, cmd: SignerCommand) -> Result<(), CliError> {
    let client = ctx.client()?;
    let format = ctx.globals.format();
    let tenant = ctx.tenant(&client).await?;
    let base = format!("/v1/tenants/{tenant}");
    match cmd {
        SignerCommand::Add { name, public_key } => {
            let key_text = match std::fs::read_to_string(&public_key) {
                Ok(t) => t,
                // Not a file: the key itself (`ed25519:…`).
                Err(_) if public_key.starts_with("ed25519:") => public_key.clone(),
                Err(e) => return Err(CliError::Local(format!("cannot read {public_key}: {e}"))),
            };
            SignerKey::parse(&key_text).map_err(|e| CliError::Usage(format!("--public-key: {e}")))?;
            let body = json!({"name": name, "public_key": key_text.trim()});
            let added = client.call(Method::POST, &format!("{base}/signing-keys"), Some(&body)).await?;
            emit(
                format,
                &added,
                || format!("tenant {tenant} now trusts key '{}' ({})", text(&added, "name"), text(&added, "key_id")),
                || vec![text(&added, "name")],
            )
        }
        SignerCommand::List => {
            let listed = client.call(Method::GET, &format!("{base}/signing-keys"), None::<&()>).await?;
            let rows = items(&listed);
            emit(
                format,
                &listed,
                || {
                    let required =
                        if listed["require_signatures"] == json!(true) { "required" } else { "not required" };
                    if rows.is_empty() {
                        return format!("no trusted signing keys; signatures {required}");
                    }
                    let mut t = Table::new(&["NAME", "KEY ID", "CREATED", "CREATED BY"]);
                    for r in &rows {
                        t.row(vec![text(r, "name"), text(r, "key_id"), text(r, "created_at"), text(r, "created_by")]);
                    }
                    format!("{}\nsignatures {required}", t.render())
                },
                || rows.iter().map(|r| text(r, "name")).collect(),
            )
        }
        SignerCommand::Remove { name } => {
            let gone =
                client.call(Method::DELETE, &format!("{base}/signing-keys/{}", segment(&name)?), None::<&()>).await?;
            emit(format, &gone, || format!("tenant {tenant} no longer trusts key '{name}'"), || vec![name.clone()])
        }
        SignerCommand::Require { state } => {
            let body = json!({"require_signatures": state.on()});
            let set: Value = client.call(Method::PUT, &format!("{base}/signature-policy"), Some(&body)).await?;
            let said = if set["require_signatures"] == json!(true) {
                format!("tenant {tenant} now accepts only packages signed by a key it trusts")
            } else {
                format!("tenant {tenant} accepts unsigned packages")
            };
            emit(format, &set, || said.clone(), || vec![text(&set, "require_signatures")])
        }
    }
}
