//! A write the domain's checks let through but a rule of the database refuses (here a rule an
//! operator added behind the server's back) is answered `409 conflict` with the envelope,
//! saying what kind of rule refused it and nothing of the database's own text: no SQL, no
//! SQLSTATE, no table or constraint name, no message of the rule.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use cloacina_http::HttpConfig;
use cloacina_postgres::{PgDb, PgSettings};
use cloacina_sqlite::{SqliteDb, SqliteLocation};
use serde_json::{Value, json};

mod common;
use common::*;

/// Words of the database's own text that must never reach a client.
const LEAKS: [&str; 9] = [
    "SQLSTATE",
    "INSERT",
    "api_keys",
    "operator_rule",
    "violates",
    "23514",
    "constraint failed",
    "RAISE",
    "secret-rule",
];

fn assert_refused_without_database_text(body: &Value, kind: &str) {
    assert_envelope(body, "conflict");
    let text = body.to_string();
    assert!(text.contains(&format!("a {kind} rule refused it")), "the kind of rule is said: {text}");
    for leak in LEAKS {
        assert!(!text.contains(leak), "the body carries the database's text ({leak}): {text}");
    }
}

async fn create_key(app: &App, name: &str) -> (StatusCode, Value) {
    let body = json!({"name": name, "tenant": "public", "role": "read"});
    let (status, body, _) = app.send(Method::POST, "/v1/auth/keys", Some(&app.god), Some(body)).await;
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_constraint_postgresql_enforces_is_a_409_naming_its_kind_and_no_sql() {
    let db = cloacina_testpg::TestPg::shared().database().await;
    let pg = PgDb::connect(&cloacina_domain::Secret::new(db.url.clone()), &PgSettings::default()).await.unwrap();
    pg.migrate().await.unwrap();
    let app = app_on(Arc::new(pg), HttpConfig::default()).await;
    let mut admin = cloacina_testpg::TestPg::shared().admin_of(&db.name).await;
    sqlx::raw_sql("ALTER TABLE api_keys ADD CONSTRAINT operator_rule CHECK (name <> 'secret-rule')")
        .execute(&mut admin)
        .await
        .unwrap();
    let (status, body) = create_key(&app, "secret-rule").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_refused_without_database_text(&body, "check");
    let (status, body) = create_key(&app, "allowed").await;
    assert_eq!(status, StatusCode::CREATED, "other writes go on: {body}");
}

#[tokio::test]
async fn a_trigger_sqlite_aborts_with_is_a_409_naming_a_database_rule_and_no_sql() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cloacina.db");
    let db = SqliteDb::open(&SqliteLocation::File(path.clone())).unwrap();
    db.migrate().await.unwrap();
    let app = app_on(Arc::new(db), HttpConfig::default()).await;
    let operator = rusqlite::Connection::open(&path).unwrap();
    operator
        .execute_batch(
            "CREATE TRIGGER operator_rule BEFORE INSERT ON api_keys WHEN NEW.name = 'secret-rule'
             BEGIN SELECT RAISE(ABORT, 'operator_rule: api_keys may not hold secret-rule'); END;",
        )
        .unwrap();
    drop(operator);
    let (status, body) = create_key(&app, "secret-rule").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_refused_without_database_text(&body, "database");
    let (status, body) = create_key(&app, "allowed").await;
    assert_eq!(status, StatusCode::CREATED, "other writes go on: {body}");
}
