//! Reading a `.cloacina` archive as hostile input: checked, bounded, and unpacked only into a
//! fresh folder.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read};
use std::path::{Component, Path, PathBuf};

use cloacina_domain::package::{Manifest, ManifestError};

use crate::{MANIFEST, folder_name};

/// How much an archive may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Files and folders.
    pub max_entries: usize,
    /// Bytes of file content, unpacked.
    pub max_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_entries: 10_000, max_bytes: 512 * 1024 * 1024 }
    }
}

/// The largest `package.toml` read.
const MAX_MANIFEST_BYTES: u64 = 1024 * 1024;

/// Why an archive was refused. Paths are as the archive names them.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("not a package archive: expected a gzip- or bzip2-compressed tar file")]
    NotAnArchive,
    #[error("the archive is damaged: {0}")]
    Corrupt(String),
    #[error("{path}: {kind} entries are not allowed; a package holds plain files and folders only")]
    Forbidden { path: String, kind: String },
    #[error("{path}: {why}")]
    UnsafePath { path: String, why: &'static str },
    #[error("{path}: everything must sit in one top-level folder, here '{folder}'")]
    OutsideFolder { path: String, folder: String },
    #[error("{0}: the archive holds this path twice")]
    Duplicate(String),
    #[error("the archive holds more than {0} entries")]
    TooManyEntries(usize),
    #[error("the archive unpacks to more than {0} bytes")]
    TooLarge(u64),
    #[error("the archive holds no {MANIFEST} in its top-level folder")]
    NoManifest,
    #[error("{MANIFEST}: {0}")]
    Manifest(ManifestError),
    #[error("the top-level folder is '{found}', but the manifest names '{expected}' (<name>-<version>)")]
    FolderMismatch { found: String, expected: String },
    #[error("cannot write the package: {0}")]
    Write(String),
}

/// An unpacked package.
#[derive(Debug, Clone)]
pub struct Unpacked {
    pub manifest: Manifest,
    /// `package.toml` as the archive holds it.
    pub manifest_text: String,
    /// `dest/<name>-<version>`: the folder tasks run in.
    pub root: PathBuf,
    pub files: usize,
    pub bytes: u64,
}

/// Checks an archive without writing anything: its entries, its limits and its manifest.
///
/// # Errors
/// The first [`ArchiveError`] found.
pub fn inspect(archive: impl Read, limits: &Limits) -> Result<Unpacked, ArchiveError> {
    walk(archive, limits, &mut |_, _, data| std::io::copy(data, &mut std::io::sink()).map(drop).map_err(read_error))
        .map(|(manifest, manifest_text, files, bytes)| Unpacked {
            root: PathBuf::from(folder_name(&manifest)),
            manifest,
            manifest_text,
            files,
            bytes,
        })
}

/// As [`inspect`], also giving the paths of the package's files, relative to its folder.
///
/// # Errors
/// As [`inspect`].
pub fn inspect_files(archive: impl Read, limits: &Limits) -> Result<(Unpacked, Vec<PathBuf>), ArchiveError> {
    let mut paths = Vec::new();
    let seen = walk(archive, limits, &mut |relative, kind, data| {
        if let Kind::File { .. } = kind {
            paths.push(relative.components().skip(1).collect::<PathBuf>());
        }
        std::io::copy(data, &mut std::io::sink()).map(drop).map_err(read_error)
    })?;
    let (manifest, manifest_text, files, bytes) = seen;
    Ok((Unpacked { root: PathBuf::from(folder_name(&manifest)), manifest, manifest_text, files, bytes }, paths))
}

/// Unpacks an archive into `dest`, which must not exist yet. On any failure `dest` is removed
/// again, so nothing is left behind.
///
/// # Errors
/// The first [`ArchiveError`] found, or [`ArchiveError::Write`] if `dest` exists or cannot be
/// written.
pub fn unpack(archive: impl Read, dest: &Path, limits: &Limits) -> Result<Unpacked, ArchiveError> {
    create_private_dir(dest).map_err(|e| ArchiveError::Write(format!("{}: {e}", dest.display())))?;
    let result = walk(archive, limits, &mut |relative, kind, data| match kind {
        Kind::Folder => std::fs::create_dir_all(dest.join(relative)).map_err(write_error),
        Kind::File { executable } => {
            let path = dest.join(relative);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(write_error)?;
            }
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, if executable { 0o755 } else { 0o644 });
            let mut file = options.open(&path).map_err(write_error)?;
            std::io::copy(data, &mut file).map_err(read_error)?;
            Ok(())
        }
    });
    match result {
        Ok((manifest, manifest_text, files, bytes)) => {
            Ok(Unpacked { root: dest.join(folder_name(&manifest)), manifest, manifest_text, files, bytes })
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(dest);
            Err(e)
        }
    }
}

fn create_private_dir(path: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(path)
}

fn write_error(e: std::io::Error) -> ArchiveError {
    ArchiveError::Write(e.to_string())
}

/// Reading the stream failed: over the byte budget, or damaged.
fn read_error(e: std::io::Error) -> ArchiveError {
    match e.get_ref().and_then(|inner| inner.downcast_ref::<OverBudget>()) {
        Some(OverBudget(limit)) => ArchiveError::TooLarge(*limit),
        None => ArchiveError::Corrupt(e.to_string()),
    }
}

/// What an accepted entry is.
enum Kind {
    Folder,
    File { executable: bool },
}

type Sink<'a> = dyn FnMut(&Path, Kind, &mut dyn Read) -> Result<(), ArchiveError> + 'a;

/// Streams the entries through the checks, handing each accepted one to `sink`; returns the
/// manifest, the file count and the content bytes.
fn walk(
    archive: impl Read,
    limits: &Limits,
    sink: &mut Sink<'_>,
) -> Result<(Manifest, String, usize, u64), ArchiveError> {
    let mut buffered = BufReader::new(archive);
    let head = buffered.fill_buf().map_err(read_error)?;
    let decoded: Box<dyn Read> = if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(buffered))
    } else if head.starts_with(b"BZh") {
        Box::new(bzip2::read::MultiBzDecoder::new(buffered))
    } else {
        return Err(ArchiveError::NotAnArchive);
    };
    // Headers and padding count too, so nothing in the stream is unbounded (a huge pax header
    // would otherwise be read into memory whole).
    let budget = limits.max_bytes.saturating_add(1024 * (limits.max_entries as u64).saturating_add(16));
    let mut tar = tar::Archive::new(Budget { inner: decoded, left: budget, limit: limits.max_bytes });
    let mut folder: Option<String> = None;
    let mut seen = HashSet::new();
    let (mut entries, mut files, mut bytes) = (0usize, 0usize, 0u64);
    let mut manifest_text: Option<String> = None;
    for entry in tar.entries().map_err(read_error)? {
        let mut entry = entry.map_err(read_error)?;
        let raw_path = entry.path().map_err(read_error)?.into_owned();
        let shown = raw_path.display().to_string();
        let kind = match entry.header().entry_type() {
            tar::EntryType::Regular => Kind::File { executable: entry.header().mode().is_ok_and(|m| m & 0o111 != 0) },
            tar::EntryType::Directory => Kind::Folder,
            // Global metadata `git archive` writes; it names no file.
            tar::EntryType::XGlobalHeader => continue,
            other => {
                let kind = match other {
                    tar::EntryType::Symlink => "symbolic link".to_owned(),
                    tar::EntryType::Link => "hard link".to_owned(),
                    tar::EntryType::Char | tar::EntryType::Block => "device".to_owned(),
                    tar::EntryType::Fifo => "FIFO".to_owned(),
                    o => format!("{o:?}"),
                };
                return Err(ArchiveError::Forbidden { path: shown, kind });
            }
        };
        entries += 1;
        if entries > limits.max_entries {
            return Err(ArchiveError::TooManyEntries(limits.max_entries));
        }
        let relative = safe_path(&raw_path, &shown)?;
        let top = relative
            .components()
            .next()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .ok_or(ArchiveError::UnsafePath { path: shown.clone(), why: "empty path" })?;
        match &folder {
            None if relative.components().count() > 1 || matches!(kind, Kind::Folder) => folder = Some(top.clone()),
            None => return Err(ArchiveError::OutsideFolder { path: shown, folder: "<name>-<version>".into() }),
            Some(f) if *f != top => return Err(ArchiveError::OutsideFolder { path: shown, folder: f.clone() }),
            Some(_) => {}
        }
        if matches!(kind, Kind::File { .. }) && relative.components().count() < 2 {
            return Err(ArchiveError::OutsideFolder { path: shown, folder: top });
        }
        if !seen.insert(relative.clone()) {
            return Err(ArchiveError::Duplicate(shown));
        }
        let size = entry.header().size().map_err(read_error)?;
        if let Kind::File { .. } = kind {
            files += 1;
            bytes = bytes.saturating_add(size);
            if bytes > limits.max_bytes {
                return Err(ArchiveError::TooLarge(limits.max_bytes));
            }
            if relative.components().count() == 2 && relative.ends_with(MANIFEST) {
                if size > MAX_MANIFEST_BYTES {
                    return Err(ArchiveError::Manifest(ManifestError::new(
                        MANIFEST,
                        format!("larger than {MAX_MANIFEST_BYTES} bytes"),
                    )));
                }
                let mut text = String::new();
                (&mut entry).take(MAX_MANIFEST_BYTES).read_to_string(&mut text).map_err(|e| {
                    ArchiveError::Manifest(ManifestError::new(MANIFEST, format!("not UTF-8 text: {e}")))
                })?;
                sink(&relative, kind, &mut text.as_bytes())?;
                manifest_text = Some(text);
                continue;
            }
        }
        sink(&relative, kind, &mut (&mut entry).take(size))?;
    }
    let text = manifest_text.ok_or(ArchiveError::NoManifest)?;
    let manifest = Manifest::parse(&text).map_err(ArchiveError::Manifest)?;
    let expected = folder_name(&manifest);
    let found = folder.unwrap_or_default();
    if found != expected {
        return Err(ArchiveError::FolderMismatch { found, expected });
    }
    Ok((manifest, text, files, bytes))
}

/// The longest name a folder or file may have, and the longest path, in bytes: what Linux
/// filesystems hold (`NAME_MAX`, `PATH_MAX`).
pub const MAX_NAME_BYTES: usize = 255;
pub const MAX_PATH_BYTES: usize = 4096;

/// The entry's path made relative and checked: no root, no drive, no `..`, and nothing a
/// filesystem cannot hold.
fn safe_path(path: &Path, shown: &str) -> Result<PathBuf, ArchiveError> {
    if path.as_os_str().len() > MAX_PATH_BYTES {
        return Err(ArchiveError::UnsafePath { path: shorten(shown), why: "the path is longer than 4096 bytes" });
    }
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(part) if part.len() > MAX_NAME_BYTES => {
                return Err(ArchiveError::UnsafePath {
                    path: shorten(shown),
                    why: "a name in this path is longer than 255 bytes",
                });
            }
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir => {
                return Err(ArchiveError::UnsafePath { path: shown.into(), why: "'..' is not allowed" });
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(ArchiveError::UnsafePath { path: shown.into(), why: "absolute paths are not allowed" });
            }
        }
    }
    Ok(out)
}

/// A path as an error shows it: cut to its first 100 characters.
fn shorten(shown: &str) -> String {
    if shown.chars().count() <= 100 {
        shown.to_owned()
    } else {
        format!("{}…", shown.chars().take(100).collect::<String>())
    }
}

/// The error a [`Budget`] reader raises once its allowance is spent.
#[derive(Debug)]
struct OverBudget(u64);

impl std::fmt::Display for OverBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "more than {} bytes unpacked", self.0)
    }
}

impl std::error::Error for OverBudget {}

/// A reader that fails once more than `left` bytes have come through.
struct Budget<R> {
    inner: R,
    left: u64,
    /// The unpacked-size limit to report.
    limit: u64,
}

impl<R: Read> Read for Budget<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            // One byte past the budget tells "more" from "exactly".
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(std::io::Error::other(OverBudget(self.limit))),
            };
        }
        let want = buf.len().min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        self.left -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests;
