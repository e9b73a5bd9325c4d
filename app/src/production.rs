//! The production check: with `CLOACINA_ENV=production` the server refuses to start on
//! settings that are fine on a laptop and dangerous on a network, and names every one.

use std::net::SocketAddr;

use cloacina_cli::ServeArgs;

use crate::database::DatabaseUrl;
use cloacina_sqlite::SqliteLocation;

/// The environment variable that turns the check on, and the value that does.
pub const ENV: &str = "CLOACINA_ENV";
pub const PRODUCTION: &str = "production";

/// What the settings alone do not tell: where secrets came from, and whether secrets work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sources {
    /// `--bootstrap-key` was given on the command line.
    pub bootstrap_key_in_argv: bool,
    /// `--database-url` was given on the command line.
    pub database_url_in_argv: bool,
    /// The server has a master key.
    pub master_key: bool,
}

impl Sources {
    /// From the process's own arguments, and whether a master key was loaded.
    pub fn of(argv: &[String], master_key: bool) -> Self {
        let given = |flag: &str| argv.iter().any(|a| a == flag || a.starts_with(&format!("{flag}=")));
        Self {
            bootstrap_key_in_argv: given("--bootstrap-key"),
            database_url_in_argv: given("--database-url"),
            master_key,
        }
    }
}

/// Every insecure setting in `args` (with the database the server would use and where its
/// secrets came from), one sentence each.
pub fn problems(args: &ServeArgs, database: &DatabaseUrl, sources: &Sources) -> Vec<String> {
    let mut found = Vec::new();
    if sources.bootstrap_key_in_argv {
        found.push(
            "--bootstrap-key puts the admin key in the process arguments, which every local user can read (ps): use CLOACINA_BOOTSTRAP_KEY or --bootstrap-key-file"
                .to_owned(),
        );
    }
    if sources.database_url_in_argv && database.has_password() {
        found.push(
            "--database-url puts the database password in the process arguments, which every local user can read (ps): use DATABASE_URL or --database-url-file"
                .to_owned(),
        );
    }
    if !sources.master_key {
        found.push(
            "no master key: tenants' secrets would be unavailable (set CLOACINA_MASTER_KEY or --master-key-file; make one with: openssl rand -base64 32)"
                .to_owned(),
        );
    }
    if !is_loopback(args.bind) && !args.behind_proxy {
        found.push(format!(
            "--bind {} listens beyond this host without TLS: bind 127.0.0.1 behind a TLS proxy and pass --behind-proxy",
            args.bind
        ));
    }
    if args.auth_failures_per_minute == 0 {
        found.push("--auth-failures-per-minute 0 turns off the failed-authentication rate limit".to_owned());
    }
    if args.rate_limit_per_key == 0 {
        found.push("--rate-limit-per-key 0 lets one key take the whole server".to_owned());
    }
    if args.rate_limit_per_address == 0 {
        found.push("--rate-limit-per-address 0 lets one client address take the whole server".to_owned());
    }
    if let Some((host, true)) = database.postgres_host_and_tls_off()
        && !["localhost", "127.0.0.1", "::1"].contains(&host.as_str())
        && !host.starts_with('/')
    {
        found.push(format!(
            "the database URL sets sslmode=disable for {host}, a remote host: credentials and data would cross \
             the network in clear; use sslmode=require or verify-full"
        ));
    }
    if args.engine.sandbox.unsafe_no_sandbox {
        found.push(
            "--unsafe-no-sandbox runs tenants' tasks unconfined, as the server's user: any write key could read \
             the server's keys and database"
                .to_owned(),
        );
    }
    if *database == DatabaseUrl::Sqlite(SqliteLocation::Memory) {
        found.push("sqlite::memory: keeps nothing across a restart, API keys included".to_owned());
    }
    found
}

fn is_loopback(addr: SocketAddr) -> bool {
    addr.ip().is_loopback()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use cloacina_cli::{Cli, Command};

    fn serve(args: &[&str]) -> ServeArgs {
        let cli = Cli::try_parse_from([&["cloacinactl", "serve"], args].concat()).unwrap();
        let Command::Serve(a) = cli.command else { panic!("serve") };
        a
    }

    /// The check with secrets from the environment and a master key.
    fn problems_of(args: &ServeArgs, database: &DatabaseUrl) -> Vec<String> {
        problems(
            args,
            database,
            &Sources { bootstrap_key_in_argv: false, database_url_in_argv: false, master_key: true },
        )
    }

    #[test]
    fn secrets_in_the_process_arguments_and_no_master_key_are_named() {
        let argv: Vec<String> = ["cloacinactl", "serve", "--bootstrap-key", "x", "--database-url=postgres://u:pw@db/c"]
            .map(String::from)
            .into();
        let sources = Sources::of(&argv, false);
        let db = crate::database::parse("postgres://u:pw@db/c").unwrap();
        let p = problems(&serve(&["--bind", "127.0.0.1:8080"]), &db, &sources);
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(p[0].contains("--bootstrap-key-file") && p[1].contains("--database-url-file"), "{p:?}");
        assert!(p[2].contains("master key") && !p.iter().any(|m| m.contains("pw@")), "{p:?}");
        // From the environment or files, with a master key: fine; a URL without a password too.
        assert!(problems(&serve(&["--bind", "127.0.0.1:8080"]), &db, &Sources::of(&argv[..2], true)).is_empty());
        let no_password = crate::database::parse("postgres://u@db/c").unwrap();
        let url_only = Sources::of(&["--database-url".to_owned()], true);
        assert!(problems(&serve(&["--bind", "127.0.0.1:8080"]), &no_password, &url_only).is_empty());
    }

    fn file() -> DatabaseUrl {
        DatabaseUrl::Sqlite(SqliteLocation::File("/var/lib/cloacina.db".into()))
    }

    #[test]
    fn the_documented_production_start_passes() {
        assert!(problems_of(&serve(&["--bind", "127.0.0.1:8080"]), &file()).is_empty());
        assert!(problems_of(&serve(&["--bind", "0.0.0.0:8080", "--behind-proxy"]), &file()).is_empty());
    }

    #[test]
    fn each_insecure_setting_is_named() {
        let p = problems_of(
            &serve(&["--auth-failures-per-minute", "0", "--unsafe-no-sandbox"]),
            &DatabaseUrl::Sqlite(SqliteLocation::Memory),
        );
        assert_eq!(p.len(), 4, "{p:?}");
        assert!(p[0].contains("0.0.0.0:8080") && p[1].contains("rate limit"));
        assert!(p[2].contains("--unsafe-no-sandbox") && p[3].contains("sqlite::memory:"));
    }

    #[test]
    fn request_rate_limits_turned_off_are_named() {
        let p = problems_of(
            &serve(&["--bind", "127.0.0.1:8080", "--rate-limit-per-key", "0", "--rate-limit-per-address", "0"]),
            &file(),
        );
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].contains("--rate-limit-per-key 0") && p[1].contains("--rate-limit-per-address 0"), "{p:?}");
    }

    #[test]
    fn cleartext_to_a_remote_database_is_named_and_to_a_local_one_is_not() {
        let remote = crate::database::parse("postgres://c:secretpw@db.example.com/c?sslmode=disable").unwrap();
        let p = problems_of(&serve(&["--bind", "127.0.0.1:8080"]), &remote);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("db.example.com") && !p[0].contains("secretpw"));
        let local = crate::database::parse("postgres://c:pw@localhost/c?sslmode=disable").unwrap();
        assert!(problems_of(&serve(&["--bind", "127.0.0.1:8080"]), &local).is_empty());
    }
}
