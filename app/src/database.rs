//! Which database a URL names.

use std::path::PathBuf;

use cloacina_domain::Secret;
use cloacina_sqlite::SqliteLocation;

/// A parsed database URL. A PostgreSQL URL may hold a password, so it stays a [`Secret`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Sqlite(SqliteLocation),
    Postgres(Secret),
}

impl DatabaseUrl {
    /// Whether the URL holds a password (`postgres://user:password@…`).
    pub fn has_password(&self) -> bool {
        let DatabaseUrl::Postgres(url) = self else { return false };
        let Some((_, rest)) = url.expose().split_once("://") else { return false };
        let authority = rest.split('/').next().unwrap_or(rest);
        authority
            .rsplit_once('@')
            .is_some_and(|(userinfo, _)| userinfo.split_once(':').is_some_and(|(_, pw)| !pw.is_empty()))
    }

    /// For a PostgreSQL URL: the host, and whether the URL turns TLS off (`sslmode=disable`).
    pub fn postgres_host_and_tls_off(&self) -> Option<(String, bool)> {
        let DatabaseUrl::Postgres(url) = self else { return None };
        let rest = url.expose().split_once("://")?.1;
        let (authority, query) = match rest.split_once('/') {
            Some((a, path)) => (a, path.split_once('?').map_or("", |(_, q)| q)),
            None => (rest.split('?').next().unwrap_or(rest), rest.split_once('?').map_or("", |(_, q)| q)),
        };
        let host_port = authority.rsplit('@').next().unwrap_or(authority);
        let host = if let Some(v6) = host_port.strip_prefix('[') {
            v6.split(']').next().unwrap_or("").to_owned()
        } else {
            host_port.split(':').next().unwrap_or("").to_owned()
        };
        let tls_off = query.split('&').any(|kv| kv.eq_ignore_ascii_case("sslmode=disable"));
        Some((host, tls_off))
    }
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
        return Ok(DatabaseUrl::Postgres(Secret::new(url)));
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
        assert_eq!(parse("postgresql://u:p@h/db"), Ok(DatabaseUrl::Postgres(Secret::new("postgresql://u:p@h/db"))));
        assert!(matches!(parse("postgres://u:p@h/db"), Ok(DatabaseUrl::Postgres(_))));
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
    fn the_host_and_a_disabled_tls_are_read_from_a_postgres_url() {
        let host = |u: &str| parse(u).unwrap().postgres_host_and_tls_off();
        assert_eq!(host("postgres://u:p@db.example.com:5432/c?sslmode=disable"), Some(("db.example.com".into(), true)));
        assert_eq!(host("postgresql://localhost/c"), Some(("localhost".into(), false)));
        assert_eq!(host("postgres://u:p@[::1]:5432/c?sslmode=require"), Some(("::1".into(), false)));
        assert_eq!(host("sqlite::memory:"), None);
    }

    #[test]
    fn other_urls_are_refused_without_echoing_them() {
        let err = parse("mysql://user:hunter2@h/db").unwrap_err();
        assert!(!err.contains("hunter2"));
        assert!(parse("sqlite://").is_err());
    }
}
