//! Packing a package folder into a `.cloacina` archive (tar + gzip).

use std::io::Write;
use std::path::{Path, PathBuf};

use cloacina_domain::package::{Manifest, ManifestError};
use flate2::Compression;
use flate2::write::GzEncoder;

use crate::{MANIFEST, folder_name};

/// Why a folder could not be packed.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{0}: the package manifest is invalid: {1}")]
    Manifest(PathBuf, ManifestError),
    #[error("{0}: links are not packed (a package holds plain files only); copy the file in instead")]
    Link(PathBuf),
    #[error("{0}: only plain files and folders can be packed")]
    Special(PathBuf),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PackError + '_ {
    move |source| PackError::Io { path: path.to_owned(), source }
}

/// Reads and checks `dir/package.toml`.
///
/// # Errors
/// [`PackError`] if the file cannot be read or the manifest is invalid.
pub fn read_manifest(dir: &Path) -> Result<Manifest, PackError> {
    let path = dir.join(MANIFEST);
    let text = std::fs::read_to_string(&path).map_err(io(&path))?;
    Manifest::parse(&text).map_err(|e| PackError::Manifest(path, e))
}

/// Packs `dir` into `out` as `<name>-<version>/…` (gzip), after checking its manifest.
///
/// # Errors
/// [`PackError`]: an unreadable file, an invalid manifest, a link or a special file.
pub fn pack(dir: &Path, out: impl Write) -> Result<Manifest, PackError> {
    let manifest = read_manifest(dir)?;
    let top = PathBuf::from(folder_name(&manifest));
    let mut files = Vec::new();
    walk(dir, Path::new(""), &mut files)?;
    files.sort();
    let mut builder = tar::Builder::new(GzEncoder::new(out, Compression::default()));
    builder.mode(tar::HeaderMode::Deterministic);
    let mut folder = tar::Header::new_gnu();
    folder.set_entry_type(tar::EntryType::Directory);
    folder.set_mode(0o755);
    folder.set_size(0);
    folder.set_mtime(0);
    builder.append_data(&mut folder, &top, std::io::empty()).map_err(io(dir))?;
    for (relative, is_dir) in files {
        let source = dir.join(&relative);
        let mut header = tar::Header::new_gnu();
        header.set_mtime(0);
        if is_dir {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_mode(0o755);
            header.set_size(0);
            builder.append_data(&mut header, top.join(&relative), std::io::empty()).map_err(io(&source))?;
        } else {
            let meta = std::fs::metadata(&source).map_err(io(&source))?;
            header.set_entry_type(tar::EntryType::Regular);
            header.set_mode(if executable(&meta) { 0o755 } else { 0o644 });
            header.set_size(meta.len());
            let file = std::fs::File::open(&source).map_err(io(&source))?;
            builder.append_data(&mut header, top.join(&relative), file).map_err(io(&source))?;
        }
    }
    builder.into_inner().and_then(GzEncoder::finish).and_then(|mut w| w.flush()).map_err(io(dir))?;
    Ok(manifest)
}

#[cfg(unix)]
fn executable(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn executable(_: &std::fs::Metadata) -> bool {
    false
}

/// Every file and folder below `root/relative`, as (relative path, is a folder).
fn walk(root: &Path, relative: &Path, out: &mut Vec<(PathBuf, bool)>) -> Result<(), PackError> {
    let dir = root.join(relative);
    for entry in std::fs::read_dir(&dir).map_err(io(&dir))? {
        let entry = entry.map_err(io(&dir))?;
        let path = relative.join(entry.file_name());
        let kind = entry.file_type().map_err(io(&entry.path()))?;
        if kind.is_symlink() {
            return Err(PackError::Link(entry.path()));
        } else if kind.is_dir() {
            out.push((path.clone(), true));
            walk(root, &path, out)?;
        } else if kind.is_file() {
            out.push((path, false));
        } else {
            return Err(PackError::Special(entry.path()));
        }
    }
    Ok(())
}
