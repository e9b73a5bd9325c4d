//! Unpacked packages on this server's disk: `<root>/<tenant>/<content hash>/<name>-<version>/`,
//! unpacked once per package version from the archive kept in the database, so every replica
//! can run every task.
//!
//! Unpacking goes to a fresh temporary folder beside the final one, which is then renamed
//! into place: a folder under its hash name is always complete, even if a server died
//! mid-unpack or two servers unpacked at once.
//!
//! The task user must reach a package folder to have it bound into its sandbox, and must not
//! change it: the folders above it are 0711 (passed through, never listed), the package's own
//! folders 0755 and its files 0644 (0755 if executable), all the server's.

use std::collections::HashMap;
use std::fs::Permissions;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use cloacina_archive::{Limits, unpack};
use cloacina_domain::TenantName;
use cloacina_domain::ports::{PackageFiles, PackageStore};
use uuid::Uuid;

/// Package versions unpacked under one folder.
pub struct PackageCache {
    root: PathBuf,
    store: Arc<dyn PackageStore>,
    limits: Limits,
    known: Mutex<HashMap<(TenantName, Uuid), PathBuf>>,
    /// One unpack at a time per process: they are rare, and this keeps two attempts of one
    /// new version from unpacking it twice.
    unpacking: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for PackageCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackageCache").field("root", &self.root).finish_non_exhaustive()
    }
}

impl PackageCache {
    pub fn new(root: PathBuf, store: Arc<dyn PackageStore>, limits: Limits) -> Self {
        Self { root, store, limits, known: Mutex::new(HashMap::new()), unpacking: tokio::sync::Mutex::new(()) }
    }

    fn remembered(&self, key: &(TenantName, Uuid)) -> Option<PathBuf> {
        self.known.lock().ok().and_then(|k| k.get(key).cloned())
    }
}

/// The one folder inside an unpacked package's hash folder.
fn package_folder(dest: &Path) -> Result<PathBuf, String> {
    let mut dirs = std::fs::read_dir(dest)
        .map_err(|e| format!("{}: {e}", dest.display()))?
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()));
    match (dirs.next(), dirs.next()) {
        (Some(d), None) => Ok(d.path()),
        _ => Err(format!("{} does not hold exactly one package folder", dest.display())),
    }
}

/// Makes a tree readable, and nothing more, to everyone: folders 0755, files 0644 or 0755,
/// whatever the umask was when it was written.
fn readable(dir: &Path) -> std::io::Result<()> {
    std::fs::set_permissions(dir, Permissions::from_mode(0o755))?;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            readable(&entry.path())?;
        } else if kind.is_file() {
            let executable = entry.metadata()?.permissions().mode() & 0o100 != 0;
            std::fs::set_permissions(entry.path(), Permissions::from_mode(if executable { 0o755 } else { 0o644 }))?;
        }
    }
    Ok(())
}

fn unpack_into(archive: &[u8], dest: &Path, limits: &Limits) -> Result<PathBuf, String> {
    if dest.exists() {
        return package_folder(dest);
    }
    let parent = dest.parent().ok_or("package folder has no parent")?;
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o711);
    builder.create(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    let tenant_dir = parent.parent().ok_or("package folder has no tenant folder")?;
    for dir in [tenant_dir, parent] {
        std::fs::set_permissions(dir, Permissions::from_mode(0o711)).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let staging = tempfile::Builder::new()
        .prefix(".unpacking-")
        .tempdir_in(parent)
        .map_err(|e| format!("{}: {e}", parent.display()))?;
    let into = staging.path().join("p");
    let unpacked = unpack(archive, &into, limits).map_err(|e| e.to_string())?;
    let folder = unpacked.root.file_name().map(PathBuf::from).ok_or("unpacked package has no folder")?;
    std::fs::set_permissions(&into, Permissions::from_mode(0o711)).map_err(|e| format!("{}: {e}", into.display()))?;
    readable(&unpacked.root).map_err(|e| format!("{}: {e}", unpacked.root.display()))?;
    match std::fs::rename(&into, dest) {
        Ok(()) => Ok(dest.join(folder)),
        // Another server sharing the disk put it in place first: theirs is as good.
        Err(_) if dest.exists() => package_folder(dest),
        Err(e) => Err(format!("{}: {e}", dest.display())),
    }
}

#[async_trait]
impl PackageFiles for PackageCache {
    async fn workdir(&self, tenant: &TenantName, package_id: Uuid) -> Result<PathBuf, String> {
        let key = (tenant.clone(), package_id);
        if let Some(p) = self.remembered(&key) {
            return Ok(p);
        }
        let _one = self.unpacking.lock().await;
        if let Some(p) = self.remembered(&key) {
            return Ok(p);
        }
        let stored = self
            .store
            .package_archive(tenant, package_id)
            .await
            .map_err(|e| e.to_string())?
            .found(|| "the tenant no longer exists", || "the package version was deleted")?;
        let (hash, archive) = (stored.content_hash, stored.bytes);
        if hash.is_empty() || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("stored content hash is not hex".into());
        }
        let dest = self.root.join(tenant.as_str()).join(&hash);
        let limits = self.limits;
        let folder = tokio::task::spawn_blocking(move || unpack_into(&archive, &dest, &limits))
            .await
            .map_err(|e| format!("unpacking failed: {e}"))??;
        if let Ok(mut k) = self.known.lock() {
            k.insert(key, folder.clone());
        }
        Ok(folder)
    }

    async fn forget_tenant(&self, tenant: &TenantName) -> usize {
        // Not while an unpack is under way, which could put a folder back.
        let _one = self.unpacking.lock().await;
        if let Ok(mut k) = self.known.lock() {
            k.retain(|(t, _), _| t != tenant);
        }
        let dir = self.root.join(tenant.as_str());
        let removed = tokio::task::spawn_blocking(move || {
            let n = std::fs::read_dir(&dir).map(Iterator::count).unwrap_or(0);
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => n,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
                Err(e) => {
                    tracing::warn!(folder = %dir.display(), error = %e, "cannot remove a deleted tenant's packages");
                    0
                }
            }
        })
        .await
        .unwrap_or(0);
        if removed > 0 {
            tracing::info!(%tenant, versions = removed, "removed a deleted tenant's unpacked packages");
        }
        removed
    }
}
