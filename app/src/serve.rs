//! `cloacinactl serve`: start-up, the running server, graceful shutdown.
//!
//! Start-up order: home folder, logs, database (URL precedence: `--database-url` >
//! `DATABASE_URL` > `database_url` in config.toml > `~/.cloacina/cloacina.db`), migrations
//! (or, with `--no-migrate`, a check that none are pending), the cache-invalidation listener
//! (PostgreSQL), the bootstrap key, then the HTTP listener and the banner. On SIGINT or SIGTERM `/ready` turns 503,
//! the listener closes, in-flight requests get `--shutdown-timeout` seconds to finish, and
//! queued key-usage times are written before exit.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use cloacina_archive::{Archives, Limits};
use cloacina_cli::args::{Globals, ServeArgs};
use cloacina_cli::config::ConfigFile;
use cloacina_cli::home::{Home, write_private_file};
use cloacina_domain::Secret;
use cloacina_domain::bootstrap::SuppliedBootstrapKey;
use cloacina_domain::ports::Invalidation;
use cloacina_http::{AppState, ConnectionLimits, HttpConfig, Services, router};
use cloacina_ports::{
    Audit, Authenticator, BootstrapOutcome, Census, Deps, Engine, EngineConfig, EnginePorts, EngineRun, Executions,
    Forgot, Keys, Leadership, Live, LiveConfig, Metrics, Packages, PoolStats, Secrets, Signing, SoleProcess,
    TenantTransfer, Tenants, Tickets, TriggerScheduler, Triggers, Workflows, bootstrap,
};
use cloacina_postgres::PgLeaderLock;
use cloacina_runner::PackageCache;
use cloacina_sqlite::SqliteLocation;
use cloacina_system::{Argon2Hasher, OsKeyGenerator, SystemClock};
use cloacina_telemetry::{PrometheusMetrics, init_logging};
use tokio::sync::watch;

use crate::backend::Backend;
use crate::database::{self, DatabaseUrl};
use crate::production;

/// The endpoint list printed under the banner.
const ENDPOINTS: &str = "\
GET /health -- liveness check
GET /ready -- readiness check
GET /metrics -- Prometheus metrics
POST /auth/keys -- create API key (auth required)
GET /auth/keys -- list API keys (auth required)
DEL /auth/keys/:id -- revoke key (auth required)
GET /openapi.json -- OpenAPI document
GET /v1/auth/whoami -- the calling key (auth required)
GET /v1/tenants/:tenant/workflows -- the tenant's workflows (auth required)
POST /v1/tenants/:tenant/workflows -- upload a package, multipart field `file` (auth required)
GET /v1/tenants/:tenant/packages -- the tenant's packages (auth required)
POST /v1/tenants/:tenant/workflows/:name/execute -- run a workflow (auth required)
GET /v1/tenants/:tenant/executions -- the tenant's executions (auth required)
POST|GET /v1/tenants, GET|DEL /v1/tenants/:tenant -- tenants (admin key; PostgreSQL)
POST|GET /v1/tenants/:tenant/keys, DEL /v1/tenants/:tenant/keys/:id -- tenant keys (auth required)";

/// How many verified keys the cache holds.
const AUTH_CACHE_CAPACITY: usize = 100_000;

/// Runs the server until SIGINT or SIGTERM.
///
/// # Errors
/// Any start-up failure (bad settings, database, port in use), with what to do about it.
pub async fn run(globals: Globals, args: ServeArgs) -> anyhow::Result<()> {
    let home = Home::resolve(globals.home.as_deref()).map_err(anyhow::Error::msg)?;
    home.ensure().map_err(anyhow::Error::msg)?;
    let _log_guard = init_logging(Some(&home.logs_dir()), globals.verbose)?;
    let bootstrap_key = match &args.bootstrap_key_file {
        Some(path) => Some(read_secret_file(path, "--bootstrap-key-file")?),
        None => args.bootstrap_key.clone(),
    };
    let supplied = bootstrap_key
        .as_ref()
        .map(|k| SuppliedBootstrapKey::parse(Secret::new(k.as_str())))
        .transpose()
        .context("--bootstrap-key / CLOACINA_BOOTSTRAP_KEY / --bootstrap-key-file")?;

    let database_url = match &args.database_url_file {
        Some(path) => Some(read_secret_file(path, "--database-url-file")?),
        None => args.database_url.clone(),
    };
    let database = resolve_database(&home, database_url.as_deref())?;
    let master_keys = crate::secrets::master_keys(&args.keys)?;
    if std::env::var(production::ENV).is_ok_and(|v| v == production::PRODUCTION) {
        let argv: Vec<String> = std::env::args().collect();
        let sources = production::Sources::of(&argv, master_keys.is_some());
        let problems = production::problems(&args, &database, &sources);
        if !problems.is_empty() {
            bail!(
                "{}=production refuses to start on insecure settings:\n  - {}",
                production::ENV,
                problems.join("\n  - ")
            );
        }
    }
    let backend = Backend::open(&database, &args.db).await?;
    if args.no_migrate {
        let pending = backend.pending().await.context("checking the database schema")?;
        if !pending.is_empty() {
            bail!(
                "--no-migrate: the database schema is behind this binary ({}); run `cloacinactl migrate` first",
                pending.join(", ")
            );
        }
    } else {
        let applied = backend.migrate().await?;
        tracing::info!(
            control = applied.control,
            tenant = applied.tenant,
            tenants = applied.tenants,
            "database schema is current"
        );
    }

    let metrics: Arc<dyn Metrics> = Arc::new(PrometheusMetrics::new()?);
    if let Backend::Postgres(pg) = &backend {
        let pg = pg.clone();
        metrics.observe_pool(Arc::new(move || {
            let (open, idle) = pg.connections();
            PoolStats { in_use: open.saturating_sub(idle), idle, max: pg.max_connections() }
        }));
    }
    let storage = backend.storage();
    let deps = Deps {
        keys: storage.clone(),
        tenants: storage.clone(),
        clock: Arc::new(SystemClock),
        keygen: Arc::new(OsKeyGenerator),
        hasher: Arc::new(Argon2Hasher::new()),
        metrics: metrics.clone(),
    };
    let auth = Arc::new(Authenticator::new(&deps, Duration::from_secs(args.auth_cache_ttl), AUTH_CACHE_CAPACITY));
    let (stop_tx, stop_rx) = watch::channel(false);
    // The engine, once it exists, for the invalidation listener to reach.
    let engine_slot: Arc<std::sync::OnceLock<Arc<Engine>>> = Arc::default();
    // Listen before anything is cached, so no change committed from here on can be missed.
    let invalidations = match &backend {
        Backend::Postgres(pg) => {
            let auth = auth.clone();
            let engine = engine_slot.clone();
            let on = Arc::new(move |what: Invalidation| match what {
                Invalidation::Key(id) => auth.forget(id),
                Invalidation::Tenant(tenant) => {
                    auth.forget_all();
                    // A deleted tenant's attempts stop on every server now, not at their next
                    // lease renewal.
                    // Its unpacked packages go from this server's disk too.
                    if let Some(engine) = engine.get() {
                        engine.stop_tenant(&tenant);
                        let engine = engine.clone();
                        tokio::spawn(async move { engine.purge_tenant(&tenant).await });
                    }
                }
                Invalidation::Everything => auth.forget_all(),
            });
            Some(pg.listen(on, stop_rx.clone()).await.context("listening for cache invalidations")?)
        }
        Backend::Sqlite(_) => None,
    };
    run_bootstrap(&deps, &home, supplied).await?;

    let live = Live::new(
        storage.clone(),
        storage.clone(),
        storage.clone(),
        LiveConfig {
            // PostgreSQL rings every replica's tails; other processes on a SQLite file cannot.
            backstop: match &backend {
                Backend::Postgres(_) => Duration::from_secs(5),
                Backend::Sqlite(_) => Duration::from_secs(1),
            },
            ..LiveConfig::default()
        },
    );
    storage.ring_on_events(live.bell());
    {
        let live = live.clone();
        auth.on_forget(Arc::new(move |what| match what {
            Forgot::Key(id) => live.key_changed(id),
            Forgot::Everything => live.everything_changed(),
        }));
    }

    let keys = Keys::new(deps.clone(), auth.clone());
    match &master_keys {
        Some(k) => tracing::info!(master_key = %k.current.id(), "secrets available"),
        None => tracing::warn!("no master key (CLOACINA_MASTER_KEY or --master-key-file): secrets are unavailable"),
    }
    let secrets = Secrets::new(deps.clone(), storage.clone(), master_keys);
    let tenants = Tenants::new(deps.clone(), storage.clone(), auth.clone());
    let config = HttpConfig {
        request_timeout: globals.request_timeout(),
        auth_failures_per_minute: args.auth_failures_per_minute,
        behind_proxy: args.behind_proxy,
        trusted_proxies: if args.trusted_proxy.is_empty() {
            cloacina_http::state::default_trusted_proxies()
        } else {
            args.trusted_proxy
                .iter()
                .filter_map(|n| {
                    n.parse::<ipnet::IpNet>().ok().or_else(|| n.parse::<std::net::IpAddr>().ok().map(Into::into))
                })
                .collect()
        },
        requests_per_key: args.rate_limit_per_key,
        requests_per_address: args.rate_limit_per_address,
        ..HttpConfig::default()
    };
    let services = Services {
        auth: auth.clone(),
        keys,
        tenants,
        workflows: Workflows::new(storage.clone(), storage.clone(), deps.clock.clone()),
        packages: Packages::new(deps.clone(), storage.clone(), Arc::new(Archives::default())),
        executions: Executions::new(deps.clone(), storage.clone(), storage.clone(), storage.clone()),
        triggers: Triggers::new(deps.clone(), storage.clone(), storage.clone(), storage.clone(), storage.clone()),
        live,
        tickets: Tickets::new(storage.clone(), storage.clone(), deps.clock.clone(), deps.keygen.clone()),
        audit: Audit::new(storage.clone(), storage.clone(), deps.clock.clone()),
        signing: Signing::new(deps.clone(), storage.clone()),
        secrets: secrets.clone(),
        census: Census::new(storage.clone(), metrics.clone()),
        transfer: TenantTransfer::new(deps.clone(), storage.clone(), storage.clone()),
    };
    let state = AppState::new(services, storage.clone(), metrics, config);

    let runner = if args.engine.workers > 0 { crate::tasks::runner(&home, &args.engine.sandbox).await? } else { None };
    let listener =
        tokio::net::TcpListener::bind(args.bind).await.with_context(|| format!("cannot listen on {}", args.bind))?;
    let local = listener.local_addr()?;
    println!("API server is running on http://{local}\n{ENDPOINTS}");
    tracing::info!(address = %local, "API server listening");

    let campaign = Leadership {
        lock: match &backend {
            Backend::Postgres(pg) => Arc::new(PgLeaderLock::new(pg)),
            Backend::Sqlite(_) => Arc::new(SoleProcess),
        },
        metrics: deps.metrics.clone(),
        every: cloacina_ports::leader::HOLD_EVERY,
    };
    let (leading, leadership) = campaign.start(stop_rx.clone());
    let retention =
        Retention { keep: args.engine.retention, audit: args.engine.audit_retention, every: args.engine.prune_every };
    let background = tokio::spawn(background_work(state.clone(), storage.clone(), retention, leading, stop_rx.clone()));
    let scheduler = TriggerScheduler {
        store: storage.clone(),
        clock: deps.clock.clone(),
        metrics: deps.metrics.clone(),
        // Passes run on connections of their own (the lanes), one at a time a lane; a second
        // waits for each lane with its tenant looked up. SQLite has one writer, so its passes
        // go one at a time.
        per_lane: match &backend {
            Backend::Postgres(_) => 2,
            Backend::Sqlite(_) => 1,
        },
        backstop: match &backend {
            Backend::Postgres(_) => Duration::from_secs(30),
            // Other processes on the same file cannot wake this one.
            Backend::Sqlite(_) => Duration::from_secs(2),
        },
    };
    let triggers = tokio::spawn(scheduler.run(stop_rx.clone()));
    let drain = Duration::from_secs(args.shutdown_timeout);
    let workers = runner.map(|runner| {
        let packages = runner.task_dir().packages();
        let ports = EnginePorts {
            queue: storage.clone(),
            runner: Arc::new(runner),
            files: Arc::new(PackageCache::new(packages, storage.clone(), Limits::default())),
            secrets: Arc::new(secrets.clone()),
            clock: deps.clock.clone(),
            metrics: deps.metrics.clone(),
        };
        let config = EngineConfig {
            workers: args.engine.workers as usize,
            lease: Duration::from_secs(args.engine.task_lease),
            poll: match &backend {
                Backend::Postgres(_) => Duration::from_secs(30),
                // Other processes on the same file cannot wake this one.
                Backend::Sqlite(_) => Duration::from_secs(2),
            },
            ..EngineConfig::default()
        };
        let run = EngineRun::new(ports, config, worker_id());
        let _ = engine_slot.set(run.engine().clone());
        tokio::spawn(run.run(stop_rx.clone(), drain))
    });
    let mut drain_rx = stop_rx.clone();
    let limits = ConnectionLimits {
        header_read_timeout: args.header_read_timeout,
        idle_timeout: args.idle_timeout,
        max_connections: args.max_connections as usize,
    };
    let server = cloacina_http::serve(listener, router(state.clone()), limits, async move {
        let _ = drain_rx.wait_for(|stop| *stop).await;
    });
    let signal_state = state.clone();
    let signals = tokio::spawn(async move {
        let name = shutdown_signal().await;
        tracing::info!(signal = name, drain_seconds = drain.as_secs(), "shutting down: draining in-flight requests");
        signal_state.begin_shutdown();
        let _ = stop_tx.send(true);
    });
    let mut deadline_rx = stop_rx.clone();
    tokio::select! {
        result = server => result.context("serving HTTP")?,
        () = async move {
            let _ = deadline_rx.wait_for(|stop| *stop).await;
            tokio::time::sleep(drain).await;
        } => tracing::warn!("drain deadline passed with requests still in flight; exiting"),
    }
    signals.abort();
    let _ = background.await;
    let _ = triggers.await;
    let _ = leadership.await;
    if let Some(workers) = workers {
        let _ = workers.await;
    }
    if let Some(task) = invalidations {
        task.abort();
    }
    if let Err(e) = auth.flush_last_used().await {
        tracing::warn!(error = %e, "could not record last key use at shutdown");
    }
    tracing::info!("server stopped");
    Ok(())
}

/// The database the server will use: `--database-url` or `DATABASE_URL` (clap resolves the
/// two), else `database_url` in config.toml, else the embedded file in the home folder.
/// A secret kept in a file (a database URL, a bootstrap key): its text, trimmed.
fn read_secret_file(path: &std::path::Path, flag: &str) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{flag}: cannot read {}", path.display()))?;
    let text = text.trim();
    if text.is_empty() {
        bail!("{flag}: {} is empty", path.display());
    }
    Ok(text.to_owned())
}

pub(crate) fn resolve_database(home: &Home, flag_or_env: Option<&str>) -> anyhow::Result<DatabaseUrl> {
    let url = match flag_or_env {
        Some(url) => Some(url.to_owned()),
        None => ConfigFile::load(&home.config_file()).map_err(anyhow::Error::msg)?.settings.database_url,
    };
    match url {
        None => Ok(DatabaseUrl::Sqlite(SqliteLocation::File(home.database_file()))),
        Some(url) => database::parse(&url).map_err(anyhow::Error::msg),
    }
}

async fn run_bootstrap(deps: &Deps, home: &Home, supplied: Option<SuppliedBootstrapKey>) -> anyhow::Result<()> {
    match bootstrap(deps, supplied).await.context("creating the bootstrap admin key")? {
        BootstrapOutcome::Created { key_id, plaintext, supplied } => {
            let path = home.bootstrap_key_file();
            write_private_file(&path, format!("{}\n", plaintext.expose()).as_bytes()).map_err(anyhow::Error::msg)?;
            tracing::info!(%key_id, supplied, file = %path.display(), "bootstrap admin key created and written (mode 0600)");
        }
        BootstrapOutcome::Skipped { supplied_ignored: true } => {
            tracing::warn!("an admin key already exists: the supplied bootstrap key was ignored");
        }
        BootstrapOutcome::Skipped { supplied_ignored: false } => {
            tracing::info!("an admin key already exists: bootstrap skipped");
        }
    }
    Ok(())
}

/// How long finished executions are kept, and how often the leader deletes older ones.
#[derive(Debug, Clone, Copy)]
struct Retention {
    keep: Duration,
    /// How long audit rows are kept.
    audit: Duration,
    every: Duration,
}

/// Off the request path: writes queued `last_used_at` times, prunes the auth throttle and
/// writes each ended minute's failed authentications to the audit trail; and, on the leader
/// only, deletes executions finished longer than the retention ago and audit rows older than
/// theirs (every `--prune-every`, the first a minute after start-up at the latest).
async fn background_work(
    state: AppState,
    storage: Arc<dyn crate::backend::Storage>,
    retention: Retention,
    leading: watch::Receiver<bool>,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(30));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let first = tokio::time::Instant::now() + retention.every.min(Duration::from_secs(60));
    let mut prune = tokio::time::interval_at(first, retention.every);
    prune.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if let Err(e) = state.auth.flush_last_used().await {
                    tracing::warn!(error = %e, "could not record last key use");
                }
                state.throttle.prune();
                state.limits.prune();
                if let Err(e) = state.audit.flush_failures(false).await {
                    tracing::warn!(error = %e, "could not record failed authentications in the audit trail");
                }
            }
            _ = prune.tick() => {
                if !*leading.borrow() {
                    continue;
                }
                if let Err(e) = state.executions.prune(storage.as_ref(), retention.keep).await {
                    tracing::warn!(error = %e, "could not prune finished executions");
                }
                match state.audit.prune(retention.audit).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(rows = n, "pruned audit rows past the audit retention"),
                    Err(e) => tracing::warn!(error = %e, "could not prune the audit trail"),
                }
            }
            _ = stop.changed() => {
                if let Err(e) = state.audit.flush_failures(true).await {
                    tracing::warn!(error = %e, "could not record failed authentications in the audit trail");
                }
                return;
            }
        }
    }
}

/// The owner name on this server's task leases: host, process and a random part, so two
/// servers never share one.
fn worker_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname").ok().map(|h| h.trim().to_owned()).filter(|h| !h.is_empty());
    let random = cloacina_domain::ports::KeyGenerator::key_id(&OsKeyGenerator).to_string();
    format!("{}-{}-{}", host.as_deref().unwrap_or("cloacina"), std::process::id(), &random[..8])
}

async fn shutdown_signal() -> &'static str {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
        "SIGINT"
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
        "SIGTERM"
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<&'static str>();
    tokio::select! {
        name = ctrl_c => name,
        name = term => name,
    }
}
