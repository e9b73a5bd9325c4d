//! Log output.

use std::path::Path;

use file_rotate::compression::Compression;
use file_rotate::suffix::{AppendTimestamp, FileLimit};
use file_rotate::{ContentLimit, FileRotate, TimeFrequency};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The log file's name inside the logs folder.
pub const LOG_FILE: &str = "cloacina-server.log";
/// Rotated files kept (one a day).
const KEEP_FILES: usize = 14;

/// Keeps the background log writer alive; dropping it flushes the file.
#[derive(Debug)]
pub struct LogGuard(#[allow(dead_code)] Option<tracing_appender::non_blocking::WorkerGuard>);

/// Logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    #[error("cannot create log folder {path}: {source}")]
    Folder { path: String, source: std::io::Error },
    #[error("invalid RUST_LOG filter: {0}")]
    Filter(String),
}

fn private_file_options() -> std::fs::OpenOptions {
    let mut options = std::fs::OpenOptions::new();
    options.read(true).create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
}

/// Installs the global subscriber: human-readable lines on stderr and, when `logs_dir` is
/// given, JSON lines in `logs_dir/cloacina-server.log`, rotated daily (older days keep a date
/// suffix; the file is created with mode 0600). `RUST_LOG` sets the filter; without it the
/// level is `info`, or `debug` when `verbose`.
///
/// # Errors
/// [`LoggingError`] if the folder cannot be created or `RUST_LOG` does not parse.
pub fn init_logging(logs_dir: Option<&Path>, verbose: bool) -> Result<LogGuard, LoggingError> {
    let default = if verbose { "debug" } else { "info" };
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.is_empty() => EnvFilter::try_new(spec).map_err(|e| LoggingError::Filter(e.to_string()))?,
        _ => EnvFilter::new(format!("{default},hyper=info,h2=info,tower=info")),
    };
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false);
    let (file_layer, guard) = match logs_dir {
        Some(dir) => {
            let mut builder = std::fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
            builder.create(dir).map_err(|source| LoggingError::Folder { path: dir.display().to_string(), source })?;
            let file = FileRotate::new(
                dir.join(LOG_FILE),
                AppendTimestamp::default(FileLimit::MaxFiles(KEEP_FILES)),
                ContentLimit::Time(TimeFrequency::Daily),
                Compression::None,
                Some(private_file_options()),
            );
            let (writer, guard) = tracing_appender::non_blocking(file);
            let layer = tracing_subscriber::fmt::layer().json().with_current_span(true).with_writer(writer);
            (Some(layer), Some(guard))
        }
        None => (None, None),
    };
    // A second init (tests that start several servers in one process) keeps the first.
    let _ = tracing_subscriber::registry().with(filter).with(stderr).with(file_layer).try_init();
    Ok(LogGuard(guard))
}
