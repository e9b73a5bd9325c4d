//! Opening the database and running work on it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use cloacina_domain::ports::{BellSlot, Constraint, ConstraintKind, StoreError};
use rusqlite::{Connection, ErrorCode, OpenFlags};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Where the database lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqliteLocation {
    /// A file, created (mode 0600) if missing.
    File(PathBuf),
    /// A private in-memory database (`sqlite::memory:`), gone when the process ends.
    Memory,
}

/// The database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot create {path}: {source}")]
    Create { path: PathBuf, source: std::io::Error },
    #[error("cannot open SQLite database {path}: {source}")]
    Open { path: String, source: rusqlite::Error },
}

const READERS: usize = 4;

/// A handle to the embedded database. Cheap to clone.
#[derive(Clone)]
pub struct SqliteDb {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    /// Wakes this process's workers when a commit readied tasks.
    pub(crate) work: tokio::sync::Notify,
    /// Wakes this process's trigger scheduler when triggers changed.
    pub(crate) triggers: tokio::sync::Notify,
    /// Rung after a commit stored events (or task output); other processes on the file are
    /// not told, so live readers also look on a timer.
    pub(crate) bell: BellSlot,
    writer: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
    /// A turn at the writer, taken before a blocking thread is: queued writes wait here, as
    /// tasks, not as parked blocking-pool threads.
    writer_turn: Arc<Semaphore>,
    /// A turn at a reader, one per reader connection, so a turn always finds one free.
    reader_turns: Arc<Semaphore>,
}

impl std::fmt::Debug for SqliteDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteDb").field("readers", &self.inner.readers.len()).finish()
    }
}

impl SqliteDb {
    /// Opens (creating if needed) the database.
    ///
    /// # Errors
    /// [`OpenError`] if the file or its folder cannot be created or opened.
    pub fn open(location: &SqliteLocation) -> Result<Self, OpenError> {
        let (writer, readers) = match location {
            SqliteLocation::Memory => (open_conn(":memory:", true)?, Vec::new()),
            SqliteLocation::File(path) => {
                create_private_file(path)?;
                let name = path.to_string_lossy();
                let writer = open_conn(&name, false)?;
                let readers =
                    (0..READERS).map(|_| open_conn(&name, false).map(Mutex::new)).collect::<Result<_, _>>()?;
                (writer, readers)
            }
        };
        Ok(Self {
            inner: Arc::new(Inner {
                work: tokio::sync::Notify::new(),
                triggers: tokio::sync::Notify::new(),
                bell: BellSlot::default(),
                writer: Mutex::new(writer),
                reader_turns: Arc::new(Semaphore::new(readers.len().max(1))),
                readers,
                next_reader: AtomicUsize::new(0),
                writer_turn: Arc::new(Semaphore::new(1)),
            }),
        })
    }

    /// Runs `f` on the writer connection, on a blocking thread, once it is this write's turn.
    /// Writers queue for the turn, in the process, one at a time.
    pub(crate) async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, rusqlite::Error> + Send + 'static,
    {
        self.write_store(move |conn| f(conn).map_err(translate)).await
    }

    /// As [`SqliteDb::write`], for work that reports store errors itself.
    pub(crate) async fn write_store<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let turn = turn(&self.inner.writer_turn).await?;
        let inner = self.inner.clone();
        run_blocking(move || {
            let _turn = turn;
            let mut conn = inner.writer.lock().map_err(|_| StoreError::Unexpected("writer lock poisoned".into()))?;
            f(&mut conn)
        })
        .await
    }

    /// Runs `f` on a free reader connection (the writer, for an in-memory database), once a
    /// reader is free.
    pub(crate) async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, rusqlite::Error> + Send + 'static,
    {
        if self.inner.readers.is_empty() {
            return self.write(move |conn| f(conn)).await;
        }
        let turn = turn(&self.inner.reader_turns).await?;
        let inner = self.inner.clone();
        run_blocking(move || {
            let _turn = turn;
            // A turn is held per free reader, so one of them is unlocked; start the search at
            // the next in line, so the readers share the work.
            let n = inner.readers.len();
            let start = inner.next_reader.fetch_add(1, Ordering::Relaxed);
            let conn = (0..n)
                .find_map(|i| inner.readers[(start + i) % n].try_lock().ok())
                .map_or_else(|| inner.readers[start % n].lock(), Ok)
                .map_err(|_| StoreError::Unexpected("reader lock poisoned".into()))?;
            f(&conn).map_err(translate)
        })
        .await
    }
}

/// A turn from `turns`, held until the blocking work it admits is done.
async fn turn(turns: &Arc<Semaphore>) -> Result<OwnedSemaphorePermit, StoreError> {
    turns.clone().acquire_owned().await.map_err(|_| StoreError::Unexpected("database closed".into()))
}

async fn run_blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| StoreError::Unexpected(format!("database task failed: {e}")))?
}

fn open_conn(name: &str, memory: bool) -> Result<Connection, OpenError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn =
        Connection::open_with_flags(name, flags).map_err(|source| OpenError::Open { path: name.into(), source })?;
    let pragmas = if memory {
        "PRAGMA foreign_keys = ON;"
    } else {
        // busy_timeout first: switching to WAL takes a lock another process may hold.
        "PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;"
    };
    conn.execute_batch(pragmas).map_err(|source| OpenError::Open { path: name.into(), source })?;
    Ok(conn)
}

/// Creates the database file with mode 0600 (and its folder with 0700) if missing, so it is
/// never readable by others, not even for an instant.
fn create_private_file(path: &Path) -> Result<(), OpenError> {
    let err = |source| OpenError::Create { path: path.to_owned(), source };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir).map_err(err)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path).map(drop).map_err(err)
}

/// Database errors by SQLite result code (extended, for constraints), never by message text.
pub(crate) fn translate(e: rusqlite::Error) -> StoreError {
    use rusqlite::ffi;
    match &e {
        rusqlite::Error::SqliteFailure(f, _) => match f.code {
            ErrorCode::ConstraintViolation => {
                let kind = match f.extended_code {
                    ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => ConstraintKind::Unique,
                    ffi::SQLITE_CONSTRAINT_FOREIGNKEY => ConstraintKind::ForeignKey,
                    ffi::SQLITE_CONSTRAINT_CHECK => ConstraintKind::Check,
                    ffi::SQLITE_CONSTRAINT_NOTNULL => ConstraintKind::NotNull,
                    _ => ConstraintKind::Other,
                };
                tracing::debug!(cause = %e, "constraint violation");
                StoreError::Constraint(Constraint { kind, name: None })
            }
            ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked
            | ErrorCode::CannotOpen
            | ErrorCode::SystemIoFailure => StoreError::Unavailable(e.to_string()),
            _ => StoreError::Unexpected(e.to_string()),
        },
        _ => StoreError::Unexpected(e.to_string()),
    }
}
