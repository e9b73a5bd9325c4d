//! Where Cloacina keeps its files: `~/.cloacina`, moved by `--home` or `CLOACINA_HOME`.

use std::path::{Path, PathBuf};

/// The home folder and the files in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Home(PathBuf);

impl Home {
    /// `explicit` (from `--home`/`CLOACINA_HOME`, which clap resolves), else `~/.cloacina`.
    ///
    /// # Errors
    /// A message when no home folder can be found for the user.
    pub fn resolve(explicit: Option<&Path>) -> Result<Self, String> {
        match explicit {
            Some(p) => Ok(Self(p.to_owned())),
            None => dirs::home_dir()
                .map(|h| Self(h.join(".cloacina")))
                .ok_or_else(|| "cannot find the home folder: set CLOACINA_HOME or pass --home".to_owned()),
        }
    }

    /// The folder itself.
    pub fn dir(&self) -> &Path {
        &self.0
    }

    /// `config.toml`.
    pub fn config_file(&self) -> PathBuf {
        self.0.join("config.toml")
    }

    /// `bootstrap-key`.
    pub fn bootstrap_key_file(&self) -> PathBuf {
        self.0.join("bootstrap-key")
    }

    /// `cloacina.db`, the embedded database.
    pub fn database_file(&self) -> PathBuf {
        self.0.join("cloacina.db")
    }

    /// `logs/`.
    pub fn logs_dir(&self) -> PathBuf {
        self.0.join("logs")
    }

    /// Creates the folder with mode 0700 if it is missing. An existing folder is left as it is.
    ///
    /// # Errors
    /// The I/O error, with the path.
    pub fn ensure(&self) -> Result<(), String> {
        create_private_dir(&self.0)
    }
}

/// Creates `dir` (and its parents) with mode 0700 if missing.
///
/// # Errors
/// The I/O error, with the path.
pub fn create_private_dir(dir: &Path) -> Result<(), String> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))
}

/// Writes `contents` to `path` atomically with mode 0600: a temporary file in the same folder,
/// created 0600, synced, then renamed over `path`. Readers see the old file or the new one,
/// never a half-written one, and the file is never readable by others.
///
/// # Errors
/// The I/O error, with the path.
pub fn write_private_file(path: &Path, contents: &[u8]) -> Result<(), String> {
    use std::io::Write;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    create_private_dir(dir)?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let err = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let result = (|| {
        let mut f = options.open(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn private_files_are_0600_in_a_0700_folder_and_replace_atomically() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("nested/home/secret");
        write_private_file(&path, b"one").unwrap();
        write_private_file(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let dir = path.parent().unwrap();
        assert_eq!(std::fs::metadata(dir).unwrap().permissions().mode() & 0o777, 0o700);
        let leftovers: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(leftovers.len(), 1, "{leftovers:?}");
    }
}
