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

    proptest::proptest! {
        #[test]
        fn parsing_never_panics(s in "\\PC{0,80}") {
            let _ = parse(&s);
        }

        #[test]
        fn a_refused_url_never_echoes_its_password(scheme in "[a-z]{1,10}", password in "[A-Za-z0-9]{8,20}") {
            proptest::prop_assume!(!scheme.starts_with("postgres") && scheme != "sqlite");
            let err = parse(&format!("{scheme}://user:{password}@db.example.com/db")).unwrap_err();
            proptest::prop_assert!(!err.contains(&password));
        }

        #[test]
        fn every_sqlite_file_url_names_its_path(path in "/?[a-z0-9_./-]{1,40}") {
            proptest::prop_assume!(path != "/");
            let parsed = parse(&format!("sqlite://{path}"));
            proptest::prop_assert_eq!(parsed, Ok(DatabaseUrl::Sqlite(SqliteLocation::File(path.into()))));
        }
    }

    #[test]
    fn other_urls_are_refused_without_echoing_them() {
        let err = parse("mysql://user:hunter2@h/db").unwrap_err();
        assert!(!err.contains("hunter2"));
        assert!(parse("sqlite://").is_err());
    }
}
