//! The task folder: where unpacked packages and attempt scratch folders live, apart from the
//! server's home, so that the task user can reach the few folders it is given and nothing else.
//!
//! ```text
//! <task dir>/                     0711, the server's
//!   etc/passwd, etc/group         the task user alone, bound into every sandbox
//!   packages/<tenant>/<hash>/…    0711 down to each package folder; files read-only to tasks
//!   attempts/<random>/            0700, the task user's: one attempt's scratch folder
//! ```
//!
//! Folders at 0711 let the task user pass through but not list them. An attempt's folder is
//! locked (`flock`) for as long as its attempt runs and removed when it ends; at start-up,
//! [`TaskDir::sweep`] removes every folder whose lock nobody holds, the leftovers of a server
//! that died, while sparing those of other live servers sharing the folder.

use std::fs::{DirBuilder, File, OpenOptions, Permissions, TryLockError};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use crate::identity::TaskIdentity;

/// The task folder.
#[derive(Debug, Clone)]
pub struct TaskDir {
    root: PathBuf,
}

fn traversable(path: &Path) -> std::io::Result<()> {
    match DirBuilder::new().mode(0o711).create(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    std::fs::set_permissions(path, Permissions::from_mode(0o711))
}

impl TaskDir {
    /// Creates (or adopts) the task folder and its parts, with the task user's `passwd` and
    /// `group` files.
    ///
    /// # Errors
    /// A sentence naming the path that could not be made.
    pub fn create(root: &Path, identity: &TaskIdentity) -> Result<Self, String> {
        let at = |p: &Path, e: std::io::Error| format!("task folder {}: {e}", p.display());
        std::fs::create_dir_all(root).map_err(|e| at(root, e))?;
        let dir = Self { root: std::fs::canonicalize(root).map_err(|e| at(root, e))? };
        for p in [dir.root.clone(), dir.packages(), dir.attempts(), dir.etc()] {
            traversable(&p).map_err(|e| at(&p, e))?;
        }
        std::fs::set_permissions(dir.etc(), Permissions::from_mode(0o755)).map_err(|e| at(&dir.etc(), e))?;
        let passwd = format!(
            "{name}:x:{uid}:{gid}:Cloacina task:/scratch:/usr/sbin/nologin\n",
            name = identity.name,
            uid = identity.uid,
            gid = identity.gid
        );
        let group = format!("{name}:x:{gid}:\n", name = identity.name, gid = identity.gid);
        for (name, text) in [("passwd", passwd), ("group", group)] {
            let path = dir.etc().join(name);
            write_public(&path, text.as_bytes()).map_err(|e| at(&path, e))?;
        }
        Ok(dir)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where packages are unpacked.
    pub fn packages(&self) -> PathBuf {
        self.root.join("packages")
    }

    pub fn attempts(&self) -> PathBuf {
        self.root.join("attempts")
    }

    /// The synthetic `/etc` files bound into every sandbox.
    pub fn etc(&self) -> PathBuf {
        self.root.join("etc")
    }

    /// Removes the scratch folders no live attempt holds; returns how many.
    pub fn sweep(&self) -> usize {
        let Ok(entries) = std::fs::read_dir(self.attempts()) else { return 0 };
        let mut removed = 0;
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            let Ok(handle) = File::open(&path) else { continue };
            match handle.try_lock() {
                Ok(()) => {
                    if std::fs::remove_dir_all(&path).is_ok() {
                        removed += 1;
                    }
                }
                Err(TryLockError::WouldBlock) => {}
                Err(TryLockError::Error(e)) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot check a leftover attempt folder");
                }
            }
        }
        removed
    }
}

/// Writes a file readable by everyone, atomically (a temporary file renamed into place).
fn write_public(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let parent = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(parent)?;
    tmp.write_all(bytes)?;
    tmp.as_file().set_permissions(Permissions::from_mode(0o644))?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// One attempt's scratch folder: created for the task user, holding the context file, locked
/// while the attempt runs, and removed when dropped.
#[derive(Debug)]
pub struct Scratch {
    dir: Option<tempfile::TempDir>,
    _lock: File,
}

/// The context file's name in the scratch folder, and the output file's.
pub const CONTEXT_FILE: &str = "context.json";
pub const OUTPUT_FILE: &str = "output.json";

impl Scratch {
    /// A new scratch folder in `task_dir` holding `context`, owned by the task user, 0700.
    ///
    /// # Errors
    /// The I/O failure, as a sentence.
    pub fn create(task_dir: &TaskDir, identity: &TaskIdentity, context: &[u8]) -> Result<Self, String> {
        let dir = tempfile::Builder::new()
            .prefix("a-")
            .permissions(Permissions::from_mode(0o700))
            .tempdir_in(task_dir.attempts())
            .map_err(|e| format!("cannot create a scratch folder: {e}"))?;
        let lock = File::open(dir.path()).map_err(|e| format!("cannot open the scratch folder: {e}"))?;
        lock.lock().map_err(|e| format!("cannot lock the scratch folder: {e}"))?;
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(dir.path().join(CONTEXT_FILE))
            .map_err(|e| format!("cannot write the context file: {e}"))?;
        file.write_all(context).map_err(|e| format!("cannot write the context file: {e}"))?;
        if identity.switch {
            std::os::unix::fs::chown(dir.path(), Some(identity.uid), Some(identity.gid))
                .map_err(|e| format!("cannot give the scratch folder to the task user: {e}"))?;
        }
        Ok(Self { dir: Some(dir), _lock: lock })
    }

    /// The folder's own (random) name, which also names the attempt's cgroup.
    pub fn name(&self) -> String {
        self.path().file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    }

    pub fn path(&self) -> &Path {
        self.dir.as_ref().map_or(Path::new(""), |d| d.path())
    }

    /// Removes the folder off the async runtime. A process of the attempt still being torn
    /// down could add a file meanwhile, so removal is tried a few times; whatever remains is
    /// swept at the next start.
    pub async fn remove(mut self) {
        let Some(dir) = self.dir.take() else { return };
        let path = dir.keep();
        let _ = tokio::task::spawn_blocking(move || {
            for wait in [0, 10, 50, 200] {
                std::thread::sleep(std::time::Duration::from_millis(wait));
                match std::fs::remove_dir_all(&path) {
                    Ok(()) => return,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
                    Err(_) => {}
                }
            }
            tracing::warn!(path = %path.display(), "could not remove an attempt's scratch folder; it is swept at the next start");
        })
        .await;
    }
}
