//! Package uploads through the router on both backends: checked, stored once, listed, and
//! refused over the limit.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use cloacina_domain::{Authority, Role, TenantName};
use cloacina_http::HttpConfig;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

mod common;
use common::*;

/// A package folder packed into `.cloacina` bytes: workflow `pipeline` of package `name`.
fn package_bytes(name: &str, version: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("package.toml"),
        format!(
            "[package]\nname = \"{name}\"\nversion = \"{version}\"\n[[workflow]]\nname = \"pipeline\"\n\
             [[workflow.task]]\nid = \"hello\"\ncommand = [\"sh\", \"hello.sh\"]\n"
        ),
    )
    .unwrap();
    std::fs::write(dir.path().join("hello.sh"), "echo hello\n").unwrap();
    let mut out = Vec::new();
    cloacina_archive::pack(dir.path(), &mut out).unwrap();
    out
}

fn multipart(field: &str, bytes: &[u8]) -> (String, Vec<u8>) {
    let boundary = "cloacina-test-boundary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"p.cloacina\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

impl App {
    async fn upload(&self, tenant: &str, key: &str, field: &str, bytes: &[u8]) -> (StatusCode, Value) {
        let (content_type, body) = multipart(field, bytes);
        let req = Request::post(format!("/v1/tenants/{tenant}/workflows"))
            .header(header::AUTHORIZATION, format!("Bearer {key}"))
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body))
            .unwrap();
        let res = self.router("192.0.2.10:5000").oneshot(req).await.unwrap();
        let status = res.status();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }
}

async fn uploads_are_checked_stored_once_and_listed(app: App, tenant: &str) {
    let writer = app.key(Authority::Tenant { tenant: TenantName::parse(tenant).unwrap(), role: Role::Write }).await;
    let reader = app.key(Authority::Tenant { tenant: TenantName::parse(tenant).unwrap(), role: Role::Read }).await;
    let bytes = package_bytes("demo-etl", "1.0.0");
    let (status, body) = app.upload(tenant, &writer, "file", &bytes).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        (body["name"].clone(), body["version"].clone(), body["created"].clone()),
        (json!("demo-etl"), json!("1.0.0"), json!(true))
    );
    assert_eq!(body["workflows"], json!(["pipeline"]));
    assert_eq!(body["content_hash"].as_str().unwrap().len(), 64);
    let (status, again) = app.upload(tenant, &writer, "file", &bytes).await;
    assert_eq!(
        (status, again["created"].clone(), again["package_id"].clone()),
        (StatusCode::OK, json!(false), body["package_id"].clone())
    );
    let (status, body) = app.upload(tenant, &reader, "file", &bytes).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (_, listed, _) = app.send(Method::GET, &format!("/v1/tenants/{tenant}/workflows"), Some(&reader), None).await;
    assert_eq!(listed["items"][0]["name"], "pipeline", "{listed}");
    assert_eq!(listed["items"][0]["version"], "1.0.0");
    let (_, packages, _) = app.send(Method::GET, &format!("/v1/tenants/{tenant}/packages"), Some(&reader), None).await;
    assert_eq!(packages["items"].as_array().unwrap().len(), 1, "{packages}");

    let (status, body) = app.upload(tenant, &writer, "file", b"not an archive at all").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!((body["code"].clone(), body["field"].clone()), (json!("invalid_package"), json!("file")), "{body}");
    let (status, body) = app.upload(tenant, &writer, "package", &bytes).await;
    assert_eq!((status, body["field"].clone()), (StatusCode::BAD_REQUEST, json!("file")), "{body}");
    let (status, body, _) =
        app.send(Method::POST, &format!("/v1/tenants/{tenant}/workflows"), Some(&writer), Some(json!({}))).await;
    assert_eq!((status, body["field"].clone()), (StatusCode::BAD_REQUEST, json!("file")), "{body}");
    let (status, body) = app.upload(tenant, &writer, "file", &package_bytes("other-pkg", "1.0.0")).await;
    assert_eq!(status, StatusCode::CONFLICT, "workflow 'pipeline' belongs to demo-etl: {body}");
    assert_eq!(body["code"], "package_conflict");

    let base = format!("/v1/tenants/{tenant}/workflows");
    let (status, body, _) = app.send(Method::GET, &format!("{base}/pipeline"), Some(&reader), None).await;
    assert_eq!(
        (status, body["version"].clone(), body["paused"].clone()),
        (StatusCode::OK, json!("1.0.0"), json!(false))
    );
    let (status, body, _) = app.send(Method::GET, &format!("{base}/nope"), Some(&reader), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_envelope(&body, "workflow_not_found");
    for (verb, paused) in [("pause", true), ("pause", true), ("resume", false)] {
        let (status, body, _) = app.send(Method::POST, &format!("{base}/pipeline/{verb}"), Some(&writer), None).await;
        assert_eq!((status, body["paused"].clone()), (StatusCode::OK, json!(paused)), "{verb}: {body}");
    }
    let (status, body, _) = app.send(Method::DELETE, &format!("{base}/demo-etl/1.0.0"), Some(&writer), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"status": "deleted", "package_name": "demo-etl", "version": "1.0.0"}));
    let (status, _, _) = app.send(Method::GET, &format!("{base}/pipeline"), Some(&reader), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "its only version gone, the workflow goes");
    let (status, body, _) = app.send(Method::DELETE, &format!("{base}/demo-etl/1.0.0"), Some(&writer), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_envelope(&body, "package_not_found");
}

#[tokio::test]
async fn uploads_on_sqlite() {
    uploads_are_checked_stored_once_and_listed(app().await, "public").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_on_postgres_in_the_tenants_schema() {
    let app = app_pg(HttpConfig::default()).await;
    uploads_are_checked_stored_once_and_listed(app, "acme").await;
}

#[tokio::test]
async fn an_upload_over_the_limit_is_413() {
    let app = app_with(HttpConfig { upload_body_limit: 2048, ..HttpConfig::default() }).await;
    let writer = app.key(tenant("public", Role::Write)).await;
    let (status, body) = app.upload("public", &writer, "file", &vec![7u8; 4096]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_envelope(&body, "payload_too_large");
}
