//! Client addresses behind a proxy: the forwarding headers count only with `--behind-proxy`
//! and only from a trusted proxy; a client forging them directly gets its own address. What
//! the server took as the client shows in the audit row of the change it made.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use cloacina_http::HttpConfig;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

mod common;
use common::*;

/// Creates a key from `peer` with `headers`; returns the client address its audit row holds.
async fn client_seen(app: &App, peer: &str, headers: &[(&str, &str)], n: usize) -> String {
    let mut req = Request::builder()
        .method(Method::POST)
        .uri("/v1/auth/keys")
        .header(header::AUTHORIZATION, format!("Bearer {}", app.god))
        .header(header::CONTENT_TYPE, "application/json");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Body::from(format!(r#"{{"name": "via-{n}"}}"#))).unwrap();
    let res = app.router(peer).oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let _ = res.into_body().collect().await.unwrap();
    let (status, rows, _) = app.send(Method::GET, "/v1/audit?action=key.create&limit=1", Some(&app.god), None).await;
    assert_eq!(status, StatusCode::OK, "{rows}");
    let row: &Value = &rows["items"][0];
    assert_eq!(row["detail"]["name"], format!("via-{n}"));
    row["client"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn forwarding_headers_count_only_from_a_trusted_proxy_behind_proxy() {
    let config = HttpConfig {
        behind_proxy: true,
        trusted_proxies: vec!["10.0.0.0/24".parse().unwrap()],
        ..HttpConfig::default()
    };
    let app = app_with(config).await;
    let forged = [("x-forwarded-for", "203.0.113.66"), ("x-real-ip", "203.0.113.66")];
    assert_eq!(client_seen(&app, "192.0.2.10:5000", &forged, 1).await, "192.0.2.10", "forged directly");
    let through = [("x-forwarded-for", "203.0.113.66, 198.51.100.7, 10.0.0.9")];
    assert_eq!(client_seen(&app, "10.0.0.5:5000", &through, 2).await, "198.51.100.7", "the nearest untrusted hop");
    let real_ip = [("x-real-ip", "198.51.100.8")];
    assert_eq!(client_seen(&app, "10.0.0.5:5000", &real_ip, 3).await, "198.51.100.8", "nginx's X-Real-IP");
    assert_eq!(client_seen(&app, "10.0.0.5:5000", &[], 4).await, "10.0.0.5", "no header: the proxy itself");
}

#[tokio::test]
async fn without_behind_proxy_the_headers_are_ignored() {
    let app = app_with(HttpConfig::default()).await;
    let headers = [("x-forwarded-for", "203.0.113.66"), ("x-real-ip", "203.0.113.66")];
    assert_eq!(client_seen(&app, "127.0.0.1:5000", &headers, 1).await, "127.0.0.1");
}
