//! Which database a URL names.

use std::path::PathBuf;

use cloacina_sqlite::SqliteLocation;

/// A parsed database URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Sqlite(SqliteLocation),
    Postgres,
}

/// Parses `sqlite:///abs/path.db`, `sqlite://relative.db`, `sqlite::memory:`,
/// `postgres://…` and `postgresql://…`.
///
/// # Errors
/// A message naming the accepted forms. The URL itself is not repeated (it may hold a password).
pub fn parse(url: &str) -> Result<DatabaseUrl, String> {
    if url == "sqlite::memory:" {
        return Ok(DatabaseUrl::Sqlite(SqliteLocation::Memory));
    }
    if let Some(path) = url.strip_prefix("sqlite://") {
        let path = path.split('?').next().unwrap_or("");
        if path.is_empty() || path == "/" {
            return Err("a sqlite:// URL needs a file path: sqlite:///abs/path.db or sqlite://relative.db".into());
        }
        return Ok(DatabaseUrl::Sqlite(SqliteLocation::File(PathBuf::from(path))));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(DatabaseUrl::Postgres);
    }
    Err("unsupported database URL: expected postgres://…, postgresql://…, sqlite:///abs/path.db, \
         sqlite://relative.db or sqlite::memory:"
        .into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_forms_parse() {
        assert_eq!(parse("sqlite::memory:"), Ok(DatabaseUrl::Sqlite(SqliteLocation::Memory)));
        assert_eq!(
            parse("sqlite:///var/lib/c.db"),
            Ok(DatabaseUrl::Sqlite(SqliteLocation::File("/var/lib/c.db".into())))
        );
        assert_eq!(parse("sqlite://rel/c.db"), Ok(DatabaseUrl::Sqlite(SqliteLocation::File("rel/c.db".into()))));
        assert_eq!(parse("postgresql://u:p@h/db"), Ok(DatabaseUrl::Postgres));
        assert_eq!(parse("postgres://u:p@h/db"), Ok(DatabaseUrl::Postgres));
    }

    #[test]
    fn other_urls_are_refused_without_echoing_them() {
        let err = parse("mysql://user:hunter2@h/db").unwrap_err();
        assert!(!err.contains("hunter2"));
        assert!(parse("sqlite://").is_err());
    }
}
