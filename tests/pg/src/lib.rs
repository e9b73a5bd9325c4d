//! Real PostgreSQL for every test run, with nothing to set up by hand.
//!
//! [`TestPg::shared`] starts one throwaway cluster per test process: `initdb` and `pg_ctl` of
//! the machine's PostgreSQL, in a temp folder, on a free loopback port, run as an unprivileged
//! user when the tests run as root (PostgreSQL refuses to run as root). A watchdog process
//! stops the cluster and removes its folder when the test process ends, however it ends.
//! `TEST_DATABASE_URL` (a superuser, or a role with CREATEROLE and CREATEDB) points the tests
//! at an existing server instead.
//!
//! Where no PostgreSQL is installed, running as root on Debian or Ubuntu installs it with
//! `apt-get install -y postgresql`; otherwise the first test that needs it fails, saying what
//! to install. Tests never skip.
//!
//! [`TestPg::database`] gives each test its own database, owned by its own login role that
//! has CREATEROLE and NOINHERIT and is not a superuser: the way production runs the server.

// Test support: a failure here is a failed test, said as plainly as possible.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod tools;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};

/// The superuser password of a throwaway cluster (loopback only, gone with the process).
const ADMIN_PASSWORD: &str = "cloacina-test-admin";
/// The unprivileged user a throwaway cluster runs as when the tests run as root.
const RUN_AS: [&str; 2] = ["postgres", "nobody"];

/// A PostgreSQL server tests may create databases on.
#[derive(Debug)]
pub struct TestPg {
    /// A superuser (or CREATEROLE + CREATEDB) URL.
    admin_url: String,
    host: String,
    port: u16,
    /// The throwaway cluster's folder and the user it runs as, if we started one.
    cluster: Option<(PathBuf, Option<String>, PathBuf)>,
}

/// A fresh, empty database with its own owner.
#[derive(Debug, Clone)]
pub struct TestDatabase {
    /// `postgres://ROLE:PASSWORD@HOST:PORT/DB` for the owner role.
    pub url: String,
    /// The database and owner role name (they are the same).
    pub name: String,
    /// The superuser URL of the same server, for probes and outages.
    pub admin_url: String,
}

static SHARED: OnceLock<TestPg> = OnceLock::new();
static COUNTER: AtomicU32 = AtomicU32::new(0);

impl TestPg {
    /// The server for this test process: `TEST_DATABASE_URL`, else a throwaway cluster
    /// started on first use.
    ///
    /// # Panics
    /// When no PostgreSQL can be found or installed, or the cluster does not start; the
    /// message says what to install or where the log is.
    pub fn shared() -> &'static TestPg {
        SHARED.get_or_init(|| match std::env::var("TEST_DATABASE_URL") {
            Ok(url) if !url.is_empty() => Self::external(url),
            _ => Self::throwaway(""),
        })
    }

    /// A throwaway cluster of the caller's own (also under `TEST_DATABASE_URL`), for tests
    /// that stop and start the server. Stopped and removed when dropped.
    ///
    /// # Panics
    /// As [`TestPg::shared`].
    pub fn private() -> TestPg {
        Self::throwaway("")
    }

    /// [`TestPg::private`] started with `settings` (`-c name=value …`) after the suite's own
    /// and before `CLOACINA_TEST_PG_OPTIONS`: for a benchmark that sizes its cluster as a
    /// deployment of its scale would.
    ///
    /// # Panics
    /// As [`TestPg::shared`].
    pub fn private_with(settings: &str) -> TestPg {
        Self::throwaway(settings)
    }

    fn external(url: String) -> Self {
        let opts = PgConnectOptions::from_str(&url).expect("TEST_DATABASE_URL is not a valid PostgreSQL URL");
        Self { host: opts.get_host().to_owned(), port: opts.get_port(), admin_url: url, cluster: None }
    }

    fn throwaway(settings: &str) -> Self {
        let bin = find_binaries();
        let root = std::env::temp_dir().join(format!(
            "cloacina-pg-{}-{}",
            std::process::id(),
            std::time::UNIX_EPOCH.elapsed().map(|d| d.as_nanos()).unwrap_or(0)
        ));
        std::fs::create_dir_all(&root).unwrap();
        let user = running_as_root().then(|| {
            let user = RUN_AS
                .iter()
                .find(|u| Command::new("id").arg(u).stdout(Stdio::null()).status().is_ok_and(|s| s.success()))
                .expect("running as root, but neither a 'postgres' nor a 'nobody' user exists to run PostgreSQL as");
            let ok = Command::new("chown").args([*user, &root.to_string_lossy()]).status().unwrap();
            assert!(ok.success(), "cannot chown {} to {user}", root.display());
            (*user).to_owned()
        });
        let pwfile = root.join("pwfile");
        std::fs::write(&pwfile, ADMIN_PASSWORD).unwrap();
        if let Some(u) = &user {
            Command::new("chown").args([u.as_str(), &pwfile.to_string_lossy()]).status().unwrap();
        }
        let data = root.join("data");
        let out = as_user(user.as_deref(), &bin.join("initdb"))
            .args(["-D", &data.to_string_lossy(), "-U", "postgres", "-E", "UTF8", "--no-sync"])
            .args(["--auth-local=trust", "--auth-host=scram-sha-256"])
            .arg(format!("--pwfile={}", pwfile.display()))
            .output()
            .unwrap();
        assert!(out.status.success(), "initdb failed: {}", String::from_utf8_lossy(&out.stderr));
        let log = root.join("postgres.log");
        let mut started = None;
        for _ in 0..5 {
            let port = free_port();
            let options = format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1 -c max_connections=400 -c fsync=off \
                 -c synchronous_commit=off -c full_page_writes=off -c shared_buffers=32MB {settings} {}",
                root.display(),
                std::env::var("CLOACINA_TEST_PG_OPTIONS").unwrap_or_default()
            );
            let status = as_user(user.as_deref(), &bin.join("pg_ctl"))
                .args(["-D", &data.to_string_lossy(), "-l", &log.to_string_lossy(), "-o", &options, "-w", "-t", "60"])
                .arg("start")
                .stdout(Stdio::null())
                .status()
                .unwrap();
            if status.success() {
                started = Some(port);
                break;
            }
        }
        let port = started.unwrap_or_else(|| {
            panic!("the throwaway PostgreSQL did not start; see {}", log.display());
        });
        spawn_watchdog(&bin, &root, &data, user.as_deref());
        Self {
            admin_url: format!("postgres://postgres:{ADMIN_PASSWORD}@127.0.0.1:{port}/postgres"),
            host: "127.0.0.1".into(),
            port,
            cluster: Some((root, user, bin)),
        }
    }

    /// A superuser URL.
    pub fn admin_url(&self) -> &str {
        &self.admin_url
    }

    /// Creates a database and its owner: a login role with CREATEROLE and NOINHERIT, not a
    /// superuser (docs/postgres.md).
    ///
    /// # Panics
    /// When the server refuses.
    pub async fn database(&self) -> TestDatabase {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("cl_test_{}_{n}_{:06x}", std::process::id(), rand::random::<u32>() & 0xff_ffff);
        let password: String = format!("pw{:016x}", rand::random::<u64>());
        let mut admin = self.admin().await;
        for sql in [
            format!("CREATE ROLE \"{name}\" LOGIN CREATEROLE NOINHERIT PASSWORD '{password}'"),
            format!("CREATE DATABASE \"{name}\" OWNER \"{name}\""),
        ] {
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql.as_str()))
                .execute(&mut admin)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
        let _ = admin.close().await;
        // NOINHERIT means the owner does not act through pg_database_owner, which owns
        // `public` in PostgreSQL 15+: give it the schema itself (docs/postgres.md does the same).
        let mut admin = self.admin_of(&name).await;
        let sql = format!("ALTER SCHEMA public OWNER TO \"{name}\"");
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.as_str()))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        let _ = admin.close().await;
        TestDatabase {
            url: format!("postgres://{name}:{password}@{}:{}/{name}", self.host, self.port),
            name,
            admin_url: self.admin_url.clone(),
        }
    }

    /// A superuser connection.
    ///
    /// # Panics
    /// When the server does not answer.
    pub async fn admin(&self) -> PgConnection {
        PgConnection::connect(&self.admin_url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to the test PostgreSQL as its superuser: {e}"))
    }

    /// A superuser connection to database `db`.
    ///
    /// # Panics
    /// When the server does not answer.
    pub async fn admin_of(&self, db: &str) -> PgConnection {
        let options = PgConnectOptions::from_str(&self.admin_url).unwrap().database(db);
        PgConnection::connect_with(&options)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to the test PostgreSQL as its superuser: {e}"))
    }

    /// Stops the throwaway cluster (fast shutdown), for outage tests; [`TestPg::start_again`]
    /// brings it back on the same port.
    ///
    /// # Panics
    /// When the server is not a throwaway cluster of ours.
    pub fn stop(&self) {
        self.pg_ctl(&["stop", "-m", "fast", "-w"]);
    }

    /// Starts the throwaway cluster again after [`TestPg::stop`].
    pub fn start_again(&self) {
        let (root, _, _) = self.cluster.as_ref().expect("only a throwaway cluster can be restarted");
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=400 -c fsync=off -c synchronous_commit=off \
             -c full_page_writes=off -c shared_buffers=32MB",
            self.port,
            root.display()
        );
        let log = root.join("postgres.log");
        // The port may be briefly held by a socket of the old server's; try a few times.
        for attempt in 0..10 {
            if self.try_pg_ctl(&["-l", &log.to_string_lossy(), "-o", &options, "-w", "-t", "60", "start"]) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(300 * (attempt + 1)));
        }
        let tail = std::fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<&str> = tail.lines().rev().take(10).collect();
        panic!("the throwaway PostgreSQL did not start again on port {}: {tail:?}", self.port);
    }

    fn try_pg_ctl(&self, args: &[&str]) -> bool {
        let (root, user, bin) = self.cluster.as_ref().expect("only a throwaway cluster can be stopped or started");
        as_user(user.as_deref(), &bin.join("pg_ctl"))
            .args(["-D", &root.join("data").to_string_lossy()])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn pg_ctl(&self, args: &[&str]) {
        assert!(self.try_pg_ctl(args), "pg_ctl {args:?} failed");
    }
}

impl Drop for TestPg {
    fn drop(&mut self) {
        if let Some((root, user, bin)) = &self.cluster {
            let _ = as_user(user.as_deref(), &bin.join("pg_ctl"))
                .args(["-D", &root.join("data").to_string_lossy(), "stop", "-m", "immediate"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let _ = std::fs::remove_dir_all(root);
        }
    }
}

fn running_as_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn as_user(user: Option<&str>, program: &Path) -> Command {
    match user {
        None => Command::new(program),
        Some(u) => {
            let mut c = Command::new("runuser");
            c.args(["-u", u, "--"]).arg(program);
            c
        }
    }
}

/// The folder holding `initdb` and `pg_ctl`: the newest `/usr/lib/postgresql/N/bin`, else
/// `pg_config --bindir`, else `PATH`. Installs PostgreSQL where it can when none is found.
fn find_binaries() -> PathBuf {
    if let Some(dir) = locate_binaries() {
        return dir;
    }
    if running_as_root() && Path::new("/usr/bin/apt-get").exists() {
        eprintln!("PostgreSQL is not installed");
        tools::apt_install("postgresql");
        if let Some(dir) = locate_binaries() {
            return dir;
        }
    }
    panic!(
        "PostgreSQL server binaries (initdb, pg_ctl) were not found. Install PostgreSQL 14 or newer \
         (Debian/Ubuntu: apt-get install -y postgresql; macOS: brew install postgresql@16), or set \
         TEST_DATABASE_URL to a server the tests may create roles and databases on"
    );
}

fn locate_binaries() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin): &(u32, PathBuf)| bin.join("initdb").exists())
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").exists() {
            return Some(dir);
        }
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .find(|d| d.join("initdb").exists() && d.join("pg_ctl").exists())
}

/// A free loopback port below the kernel's ephemeral range, so no outgoing connection of the
/// tests can take it while a cluster is stopped and restarted on it.
fn free_port() -> u16 {
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|p| p.parse::<u16>().ok()))
        .unwrap_or(32768);
    let span = low.saturating_sub(20000).max(1000);
    for _ in 0..200 {
        let port = 20000u16.saturating_add(rand::random::<u16>() % span);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap()
}

/// A process that outlives nothing: when the test process is gone, it stops the cluster and
/// removes its folder. It runs as the current user (a root test process can only be watched
/// by root), and stops the cluster as the user it runs as.
fn spawn_watchdog(bin: &Path, root: &Path, data: &Path, user: Option<&str>) {
    let as_user = user.map(|u| format!("runuser -u {u} -- ")).unwrap_or_default();
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
         {as_user}'{pg_ctl}' -D '{data}' stop -m immediate >/dev/null 2>&1; rm -rf '{root}'",
        pid = std::process::id(),
        pg_ctl = bin.join("pg_ctl").display(),
        data = data.display(),
        root = root.display(),
    );
    // Deliberately never waited for: it must outlive this process.
    #[allow(clippy::zombie_processes)]
    let _watchdog = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("cannot start the PostgreSQL watchdog");
}
