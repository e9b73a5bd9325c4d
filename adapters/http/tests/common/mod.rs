//! The test app shared by the router's test files: the real router over real stores
//! (in-memory SQLite, or a fresh PostgreSQL database holding tenant `acme`), and the requests
//! they send.

#![allow(clippy::unwrap_used, dead_code)] // test code; each test file uses its own part

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{Method, Request, StatusCode, header};
use chrono::Utc;
use cloacina_domain::audit::{AuditAction, AuditEntry, RequestOrigin};
use cloacina_domain::ports::{
    AuditStore, CensusStore, DatabaseHealth, EventFeed, ExecutionStore, KeyGenerator, KeyStore, PackageStore,
    SecretStore, SigningStore, TenantArchive, TenantDirectory, TenantStore, TicketStore, TriggerStore, WorkflowStore,
};
use cloacina_domain::{ApiKeyId, Authority, KeyName, MintedKey, NewKey, Role, StoredSecret, TenantName};
use cloacina_http::{AppState, HttpConfig, Services, router};
use cloacina_ports::{
    Audit, Authenticator, BootstrapOutcome, Deps, Executions, Keys, Live, LiveConfig, NoMetrics, Packages, Secrets,
    Signing, Tenants, Tickets, Triggers, Workflows, bootstrap,
};
use cloacina_postgres::{PgDb, PgSettings};
use cloacina_sqlite::{SqliteDb, SqliteLocation};
use cloacina_system::{Argon2Hasher, OsKeyGenerator, SystemClock};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

pub struct App {
    pub state: AppState,
    pub db: Arc<dyn KeyStore>,
    pub god: String,
}

/// Every storage port of one backend.
pub trait Store:
    AuditStore
    + KeyStore
    + TenantDirectory
    + TenantStore
    + WorkflowStore
    + PackageStore
    + SigningStore
    + SecretStore
    + CensusStore
    + TenantArchive
    + ExecutionStore
    + TriggerStore
    + EventFeed
    + TicketStore
    + DatabaseHealth
    + 'static
{
}
impl<T> Store for T where
    T: AuditStore
        + KeyStore
        + TenantDirectory
        + TenantStore
        + WorkflowStore
        + PackageStore
        + SigningStore
        + SecretStore
        + CensusStore
        + TenantArchive
        + ExecutionStore
        + TriggerStore
        + EventFeed
        + TicketStore
        + DatabaseHealth
        + 'static
{
}

/// An audit entry for a change made behind the API's back (test set-up).
pub fn noted() -> AuditEntry {
    AuditEntry::new(Utc::now(), None, None, AuditAction::KeyCreate, "test", RequestOrigin::default())
}

pub async fn app_with(config: HttpConfig) -> App {
    let db = SqliteDb::open(&SqliteLocation::Memory).unwrap();
    db.migrate().await.unwrap();
    app_on(Arc::new(db), config).await
}

/// An app on a fresh PostgreSQL database holding tenant `acme` besides `public`.
pub async fn app_pg(config: HttpConfig) -> App {
    let db = cloacina_testpg::TestPg::shared().database().await;
    let pg = PgDb::connect(&cloacina_domain::Secret::new(db.url), &PgSettings::default()).await.unwrap();
    pg.migrate().await.unwrap();
    let app = app_on(Arc::new(pg), config).await;
    let (status, body, _) = app.send(Method::POST, "/v1/tenants", Some(&app.god), Some(json!({"name": "acme"}))).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    app
}

pub async fn app_on<S: Store>(db: Arc<S>, config: HttpConfig) -> App {
    let deps = Deps {
        keys: db.clone(),
        tenants: db.clone(),
        clock: Arc::new(SystemClock),
        keygen: Arc::new(OsKeyGenerator),
        hasher: Arc::new(Argon2Hasher::new()),
        metrics: Arc::new(NoMetrics),
    };
    let BootstrapOutcome::Created { plaintext, .. } = bootstrap(&deps, None).await.unwrap() else {
        panic!("empty database must bootstrap")
    };
    let auth = Arc::new(Authenticator::new(&deps, Duration::from_secs(30), 1000));
    let keys = Keys::new(deps.clone(), auth.clone());
    let tenants = Tenants::new(deps.clone(), db.clone(), auth.clone());
    let services = Services {
        auth,
        keys,
        tenants,
        workflows: Workflows::new(db.clone(), db.clone(), deps.clock.clone()),
        packages: Packages::new(deps.clone(), db.clone(), Arc::new(cloacina_archive::Archives::default())),
        executions: Executions::new(deps.clone(), db.clone(), db.clone(), db.clone()),
        triggers: Triggers::new(deps.clone(), db.clone(), db.clone(), db.clone(), db.clone()),
        live: Live::new(db.clone(), db.clone(), db.clone(), LiveConfig::default()),
        tickets: Tickets::new(db.clone(), db.clone(), deps.clock.clone(), deps.keygen.clone()),
        audit: Audit::new(db.clone(), db.clone(), deps.clock.clone()),
        signing: Signing::new(deps.clone(), db.clone()),
        secrets: Secrets::new(deps.clone(), db.clone(), None),
        census: cloacina_ports::Census::new(db.clone(), Arc::new(NoMetrics)),
        transfer: cloacina_ports::TenantTransfer::new(deps.clone(), db.clone(), db.clone()),
    };
    let state = AppState::new(services, db.clone(), Arc::new(NoMetrics), config);
    App { state, db, god: plaintext.expose().to_owned() }
}

pub async fn app() -> App {
    app_with(HttpConfig::default()).await
}

impl App {
    pub fn router(&self, peer: &str) -> Router {
        router(self.state.clone()).layer(MockConnectInfo(peer.parse::<SocketAddr>().unwrap()))
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value, axum::http::HeaderMap) {
        self.send_from("192.0.2.10:5000", method, path, key, body.map(|b| b.to_string())).await
    }

    pub async fn send_from(
        &self,
        peer: &str,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<String>,
    ) -> (StatusCode, Value, axum::http::HeaderMap) {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(k) = key {
            req = req.header(header::AUTHORIZATION, format!("Bearer {k}"));
        }
        let req = match body {
            Some(b) => req.header(header::CONTENT_TYPE, "application/json").body(Body::from(b)),
            None => req.body(Body::empty()),
        }
        .unwrap();
        let res = self.router(peer).oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, json, headers)
    }

    /// A key inserted straight into the store, so tests can hold keys of tenants SQLite lacks.
    pub async fn key(&self, authority: Authority) -> String {
        let minted = MintedKey::new(fresh_id(), rand_bytes());
        let new = NewKey {
            id: minted.id(),
            name: KeyName::parse(&format!("test-{}", minted.id())).unwrap(),
            authority,
            secret: StoredSecret::Sha256(minted.digest()),
            created_at: Utc::now(),
            created_by: None,
            expires_at: None,
        };
        self.db.insert(&new, &noted()).await.unwrap();
        minted.plaintext().expose().to_owned()
    }
}

pub fn fresh_id() -> ApiKeyId {
    OsKeyGenerator.key_id()
}

pub fn rand_bytes() -> [u8; 32] {
    OsKeyGenerator.secret()
}

pub fn tenant(name: &str, role: Role) -> Authority {
    Authority::Tenant { tenant: TenantName::parse(name).unwrap(), role }
}

pub fn assert_envelope(body: &Value, code: &str) {
    assert_eq!(body["code"], code, "{body}");
    assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()), "{body}");
}
