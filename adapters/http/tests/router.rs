//! The router driven in process against real stores (in-memory SQLite, and PostgreSQL on the
//! test cluster): status codes, the error envelope, keys, the throttle, probes and tenants
//! (docs/testing.md, layer 4). The isolation matrix is `isolation_matrix.rs`; uploads are
//! `uploads.rs`.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use cloacina_domain::{Authority, MintedKey, Role};
use cloacina_http::{HttpConfig, ROUTES};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

mod common;
use common::*;

#[tokio::test]
async fn unknown_routes_and_wrong_methods_answer_the_envelope() {
    let app = app().await;
    let (status, body, _) = app.send(Method::GET, "/v2/nothing", None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_envelope(&body, "not_found");
    let (status, body, _) = app.send(Method::PUT, "/health", None, None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_envelope(&body, "method_not_allowed");
}

#[tokio::test]
async fn malformed_json_and_missing_or_wrong_fields_name_the_fault() {
    let app = app().await;
    let god = Some(app.god.as_str());
    let (status, body, _) =
        app.send_from("192.0.2.1:1", Method::POST, "/v1/auth/keys", god, Some("{\"name\":".into())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_envelope(&body, "invalid_json");
    let (status, body, _) = app.send(Method::POST, "/v1/auth/keys", god, Some(json!({}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["field"], "name", "{body}");
    let (status, body, _) =
        app.send(Method::POST, "/v1/auth/keys", god, Some(json!({"name": "x", "role": "root"}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["field"], "role", "{body}");
    let (status, body, _) = app.send(Method::POST, "/v1/auth/keys", god, Some(json!({"name": ""}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["field"], "name", "{body}");
    let (status, body, _) = app
        .send(Method::POST, "/v1/auth/keys", god, Some(json!({"name": "x", "expires_at": "2001-01-01T00:00:00Z"})))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["field"], "expires_at", "{body}");
    let (status, body, _) = app.send(Method::DELETE, "/v1/auth/keys/not-a-uuid", god, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["field"], "id", "{body}");
    let (status, body, _) = app.send(Method::GET, "/v1/tenants/Bad%20Name/keys", god, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["field"], "tenant", "{body}");
}

#[tokio::test]
async fn a_body_over_the_json_limit_is_413() {
    let app = app_with(HttpConfig { json_body_limit: 1024, ..HttpConfig::default() }).await;
    let name = "x".repeat(1024);
    let (status, body, _) =
        app.send(Method::POST, "/v1/auth/keys", Some(&app.god), Some(json!({ "name": name }))).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_envelope(&body, "payload_too_large");
}

#[tokio::test]
async fn a_chunked_body_without_a_length_is_cut_off_at_the_limit() {
    let app = app_with(HttpConfig { json_body_limit: 1024, ..HttpConfig::default() }).await;
    let chunks = (0..64).map(|_| Ok::<_, std::io::Error>(axum::body::Bytes::from(vec![b' '; 1024])));
    let req = Request::post("/v1/auth/keys")
        .header(header::AUTHORIZATION, format!("Bearer {}", app.god))
        .body(Body::from_stream(futures::stream::iter(chunks)))
        .unwrap();
    assert!(req.headers().get(header::CONTENT_LENGTH).is_none());
    let res = app.router("192.0.2.1:1").oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_an_inbound_one_is_kept() {
    let app = app().await;
    let (_, _, headers) = app.send(Method::GET, "/health", None, None).await;
    assert!(headers.get("x-request-id").is_some());
    let req = Request::get("/nope").header("x-request-id", "trace-abc-123").body(Body::empty()).unwrap();
    let res = app.router("192.0.2.1:1").oneshot(req).await.unwrap();
    assert_eq!(res.headers()["x-request-id"], "trace-abc-123");
    let req = Request::get("/health").header("x-request-id", "a".repeat(500)).body(Body::empty()).unwrap();
    let res = app.router("192.0.2.1:1").oneshot(req).await.unwrap();
    assert_ne!(res.headers()["x-request-id"].len(), 500, "an absurd inbound id is replaced");
}

async fn panics() {
    panic!("boom with a secret inside");
}

#[tokio::test]
async fn a_slow_request_times_out_and_a_panic_becomes_the_envelope() {
    let app = app_with(HttpConfig { request_timeout: Duration::from_millis(50), ..HttpConfig::default() }).await;
    let routes = Router::new()
        .route("/slow", axum::routing::get(|| async { tokio::time::sleep(Duration::from_secs(5)).await }))
        .route("/panic", axum::routing::get(panics));
    let wrapped = cloacina_http::observe::wrap(routes, &app.state).with_state(app.state.clone());
    for (path, status, code) in [
        ("/slow", StatusCode::SERVICE_UNAVAILABLE, "timeout"),
        ("/panic", StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    ] {
        let res = wrapped.clone().oneshot(Request::get(path).body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(res.status(), status, "{path}");
        assert!(res.headers().get("x-request-id").is_some(), "{path}");
        let body: Value = serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap();
        assert_envelope(&body, code);
        assert!(!body.to_string().contains("secret"));
    }
}

#[tokio::test]
async fn a_missing_or_bad_key_is_401_with_www_authenticate() {
    let app = app().await;
    for key in [None, Some("clk_short"), Some("not-a-key-but-long-enough")] {
        let (status, body, headers) = app.send(Method::GET, "/v1/auth/whoami", key, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{key:?}");
        assert!(headers.get(header::WWW_AUTHENTICATE).is_some());
        assert!(body["code"].as_str().unwrap().ends_with("api_key"), "{body}");
    }
}

#[tokio::test]
async fn probes_answer_and_ready_turns_503_at_shutdown() {
    let app = app().await;
    let (status, body, _) = app.send(Method::GET, "/health", None, None).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "ok"})));
    let (status, body, _) = app.send(Method::GET, "/ready", None, None).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "ready"})));
    app.state.begin_shutdown();
    let (status, body, _) = app.send(Method::GET, "/ready", None, None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_envelope(&body, "shutting_down");
    let (status, _, _) = app.send(Method::GET, "/health", None, None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_create_without_a_tenant_makes_an_admin_key_and_with_one_a_read_key() {
    let app = app().await;
    let god = Some(app.god.as_str());
    let (status, body, _) = app.send(Method::POST, "/auth/keys", god, Some(json!({"name": "ci-deploy"}))).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["permissions"], "admin");
    assert_eq!(body["is_admin"], true);
    for field in ["id", "name", "key", "permissions", "created_at"] {
        assert!(body.get(field).is_some(), "{field} missing from {body}");
    }
    assert!(body["key"].as_str().unwrap().starts_with("clk_"));
    let (status, body, _) =
        app.send(Method::POST, "/v1/auth/keys", god, Some(json!({"name": "reader", "tenant": "public"}))).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!((body["permissions"].clone(), body["is_admin"].clone()), (json!("read"), json!(false)));
    assert_eq!(body["tenant_id"], "public");
    let (status, body, _) = app.send(Method::POST, "/v1/tenants/public/keys", god, Some(json!({"name": "r2"}))).await;
    assert_eq!((status, body["permissions"].clone()), (StatusCode::CREATED, json!("read")));
    let (status, body, _) = app.send(Method::POST, "/v1/tenants/acme/keys", god, Some(json!({"name": "r3"}))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_envelope(&body, "tenant_not_found");
}

#[tokio::test]
async fn no_key_mints_above_its_rights_and_is_admin_cannot_be_smuggled() {
    let app = app().await;
    let admin = app.key(tenant("public", Role::Admin)).await;
    let writer = app.key(tenant("public", Role::Write)).await;
    let sneaky = json!({"name": "x", "is_admin": true});
    let (status, body, _) = app.send(Method::POST, "/v1/tenants/public/keys", Some(&admin), Some(sneaky)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["field"], "is_admin");
    let (status, _, _) = app.send(Method::POST, "/v1/auth/keys", Some(&admin), Some(json!({"name": "god"}))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) =
        app.send(Method::POST, "/v1/tenants/public/keys", Some(&writer), Some(json!({"name": "w"}))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let body = json!({"name": "other", "tenant": "acme"});
    let (status, _, _) = app.send(Method::POST, "/v1/tenants/public/keys", Some(&admin), Some(body)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body, _) = app
        .send(Method::POST, "/v1/tenants/public/keys", Some(&admin), Some(json!({"name": "a2", "role": "admin"})))
        .await;
    assert_eq!((status, body["permissions"].clone()), (StatusCode::CREATED, json!("admin")));
}

#[tokio::test]
async fn a_revoked_key_is_refused_on_the_next_request_and_the_last_admin_key_stays() {
    let app = app().await;
    let god = Some(app.god.as_str());
    let (_, created, _) = app.send(Method::POST, "/v1/auth/keys", god, Some(json!({"name": "second"}))).await;
    let second = created["key"].as_str().unwrap().to_owned();
    let (status, _, _) = app.send(Method::GET, "/v1/auth/whoami", Some(&second), None).await;
    assert_eq!(status, StatusCode::OK);
    let id = created["id"].as_str().unwrap();
    let (status, body, _) = app.send(Method::DELETE, &format!("/auth/keys/{id}"), god, None).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "revoked", "id": id})));
    let (status, body, _) = app.send(Method::GET, "/v1/auth/whoami", Some(&second), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, _, _) = app.send(Method::DELETE, &format!("/auth/keys/{id}"), god, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, me, _) = app.send(Method::GET, "/v1/auth/whoami", god, None).await;
    let (status, body, _) =
        app.send(Method::DELETE, &format!("/v1/auth/keys/{}", me["key_id"].as_str().unwrap()), god, None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_envelope(&body, "last_admin_key");
}

#[tokio::test]
async fn listings_never_show_a_hash_or_a_plaintext() {
    let app = app().await;
    let god = Some(app.god.as_str());
    app.send(Method::POST, "/v1/auth/keys", god, Some(json!({"name": "ci", "tenant": "public"}))).await;
    let (status, body, _) = app.send(Method::GET, "/v1/auth/keys", god, None).await;
    assert_eq!(status, StatusCode::OK);
    let text = body.to_string();
    assert_eq!(body["items"].as_array().unwrap().len(), 2);
    assert!(!text.contains("clk_") && !text.contains("hash") && !text.contains(&app.god[10..30]), "{text}");
}

#[tokio::test]
async fn repeated_failures_from_one_address_get_429_with_retry_after_and_others_are_unaffected() {
    let app = app_with(HttpConfig { auth_failures_per_minute: 5, ..HttpConfig::default() }).await;
    let bad = MintedKey::new(fresh_id(), [1; 32]).plaintext().expose().to_owned();
    let mut statuses = Vec::new();
    for _ in 0..7 {
        let (status, _, headers) =
            app.send_from("198.51.100.7:1", Method::GET, "/v1/auth/whoami", Some(&bad), None).await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            assert!(headers.get(header::RETRY_AFTER).is_some());
        }
        statuses.push(status.as_u16());
    }
    assert_eq!(statuses, [401, 401, 401, 401, 401, 429, 429]);
    // Blocked addresses are refused before their key is looked at, even a valid one.
    let (status, _, _) = app.send_from("198.51.100.7:1", Method::GET, "/v1/auth/whoami", Some(&app.god), None).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let (status, _, _) = app.send_from("198.51.100.8:1", Method::GET, "/v1/auth/whoami", Some(&app.god), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = app.send_from("198.51.100.7:1", Method::GET, "/health", None, None).await;
    assert_eq!(status, StatusCode::OK, "public routes are never throttled");
}

#[tokio::test]
async fn a_key_over_its_request_limit_gets_429_with_the_ratelimit_headers_and_another_key_does_not() {
    let app = app_with(HttpConfig { requests_per_key: 3, requests_per_address: 0, ..HttpConfig::default() }).await;
    let other = app.key(Authority::God).await;
    let mut statuses = Vec::new();
    let mut refused = None;
    for _ in 0..8 {
        let (status, body, headers) = app.send(Method::GET, "/v1/auth/whoami", Some(&app.god), None).await;
        if status == StatusCode::TOO_MANY_REQUESTS && refused.is_none() {
            refused = Some((body, headers));
        }
        statuses.push(status.as_u16());
    }
    // Two seconds' worth in a burst, then refused.
    assert_eq!(statuses, [200, 200, 200, 200, 200, 200, 429, 429]);
    let (body, headers) = refused.unwrap();
    assert_envelope(&body, "rate_limited");
    let h = |n: &str| headers.get(n).map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(h("retry-after").as_deref(), Some("1"));
    assert_eq!(h("ratelimit-policy").as_deref(), Some("\"key\";q=3;w=1"));
    assert_eq!(h("ratelimit").as_deref(), Some("\"key\";r=0;t=1"));
    let (status, _, _) = app.send(Method::GET, "/v1/auth/whoami", Some(&other), None).await;
    assert_eq!(status, StatusCode::OK, "another key of the same caller is not slowed");
    let (status, _, _) = app.send(Method::GET, "/health", None, None).await;
    assert_eq!(status, StatusCode::OK, "public routes have no request limit");
}

#[tokio::test]
async fn a_god_key_sets_a_tenants_own_request_limit_and_its_keys_get_it_at_once() {
    let app = app_with(HttpConfig { requests_per_key: 50, requests_per_address: 0, ..HttpConfig::default() }).await;
    let reader = app.key(tenant("public", Role::Read)).await;
    let (status, body, _) =
        app.send(Method::PATCH, "/v1/tenants/public", Some(&app.god), Some(json!({"rate_limit_per_key": 1}))).await;
    assert_eq!((status, &body["rate_limit_per_key"]), (StatusCode::OK, &json!(1)), "{body}");
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(app.send(Method::GET, "/v1/auth/whoami", Some(&reader), None).await.0.as_u16());
    }
    assert_eq!(statuses, [200, 200, 429], "the tenant's own limit, 1 a second in bursts of 2");
    let (_, _, headers) = app.send(Method::GET, "/v1/auth/whoami", Some(&reader), None).await;
    assert_eq!(headers.get("ratelimit-policy").unwrap(), "\"key\";q=1;w=1");
    let (status, _, _) = app.send(Method::GET, "/v1/auth/whoami", Some(&app.god), None).await;
    assert_eq!(status, StatusCode::OK, "admin keys keep the servers' limit");
    let (status, body, _) =
        app.send(Method::PATCH, "/v1/tenants/public", Some(&app.god), Some(json!({"rate_limit_per_key": null}))).await;
    assert_eq!((status, &body["rate_limit_per_key"]), (StatusCode::OK, &Value::Null), "{body}");
    let (status, _, _) = app.send(Method::GET, "/v1/auth/whoami", Some(&reader), None).await;
    assert_eq!(status, StatusCode::OK, "back to the servers' 50 a second");
    let (status, body, _) =
        app.send(Method::PATCH, "/v1/tenants/public", Some(&app.god), Some(json!({"rate_limit_per_key": -1}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body, _) = app
        .send(
            Method::PATCH,
            "/v1/tenants/public",
            Some(&app.god),
            Some(json!({"rate_limit_per_key": 2_147_483_648u64})),
        )
        .await;
    assert_eq!((status, body["field"].as_str()), (StatusCode::BAD_REQUEST, Some("rate_limit_per_key")), "{body}");
    let (status, _, _) =
        app.send(Method::PATCH, "/v1/tenants/public", Some(&reader), Some(json!({"rate_limit_per_key": 0}))).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a tenant's key cannot lift its own limit");
}

#[tokio::test]
async fn an_address_over_its_request_limit_gets_429_whichever_key_it_sends() {
    let app = app_with(HttpConfig { requests_per_key: 0, requests_per_address: 2, ..HttpConfig::default() }).await;
    let other = app.key(Authority::God).await;
    for key in [&app.god, &other, &app.god, &other] {
        let (status, _, _) = app.send_from("203.0.113.5:1", Method::GET, "/v1/auth/whoami", Some(key), None).await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, body, headers) =
        app.send_from("203.0.113.5:1", Method::GET, "/v1/auth/whoami", Some(&other), None).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(headers.get("ratelimit-policy").unwrap(), "\"address\";q=2;w=1");
    let (status, _, _) = app.send_from("203.0.113.6:1", Method::GET, "/v1/auth/whoami", Some(&other), None).await;
    assert_eq!(status, StatusCode::OK, "another address is not slowed");
}

#[tokio::test]
async fn the_openapi_document_names_exactly_the_routes_the_server_answers() {
    let app = app().await;
    let (status, doc, _) = app.send(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")), "{doc}");
    let mut documented: Vec<(String, String)> = Vec::new();
    let mut operation_ids = std::collections::HashSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            documented.push((method.to_uppercase(), path.clone()));
            assert!(operation_ids.insert(op["operationId"].to_string()), "duplicate operationId at {method} {path}");
        }
    }
    let mut served: Vec<(String, String)> = ROUTES.iter().map(|r| (r.method.to_string(), r.path.to_owned())).collect();
    documented.sort();
    served.sort();
    assert_eq!(documented, served);
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    assert!(doc["components"]["schemas"]["CreateKeyBody"]["properties"]["name"].is_object(), "{doc}");
}

#[tokio::test]
async fn on_sqlite_tenants_list_public_and_creating_or_deleting_says_postgres_is_needed() {
    let app = app().await;
    let god = Some(app.god.as_str());
    let (status, body, _) = app.send(Method::GET, "/v1/tenants", god, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["items"][0]["name"], "public", "{body}");
    assert_eq!(body["items"].as_array().unwrap().len(), 1);
    let (status, body, _) = app.send(Method::POST, "/v1/tenants", god, Some(json!({"name": "acme"}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_envelope(&body, "multi_tenancy_unavailable");
    assert!(body["error"].as_str().unwrap().contains("PostgreSQL"), "{body}");
    let (status, body, _) = app.send(Method::DELETE, "/v1/tenants/acme", god, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_envelope(&body, "multi_tenancy_unavailable");
    let (status, body, _) = app.send(Method::DELETE, "/v1/tenants/public", god, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_envelope(&body, "builtin_tenant");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_a_tenant_is_created_shown_and_deleted_and_its_name_is_free_at_once() {
    let app = app_pg(HttpConfig::default()).await;
    let god = Some(app.god.as_str());
    let (status, body, _) =
        app.send(Method::POST, "/v1/tenants", god, Some(json!({"name": "globex", "description": "Globex Corp"}))).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!((body["name"].clone(), body["schema_name"].clone()), (json!("globex"), json!("tenant_globex")));
    assert!(body["username"].as_str().unwrap().ends_with("_globex"), "{body}");
    assert!(!body.to_string().to_lowercase().contains("password"), "never the password: {body}");
    let (status, body, _) = app.send(Method::POST, "/v1/tenants", god, Some(json!({"name": "globex"}))).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_envelope(&body, "tenant_exists");
    for (bad, field) in [
        (json!({"name": "public"}), "name"),
        (json!({"name": "Globex"}), "name"),
        (json!({"name": "a\"; DROP SCHEMA public; --"}), "name"),
        (json!({"name": "x".repeat(49)}), "name"),
        (json!({"name": "ok", "password": "mine"}), "password"),
        (json!({"name": "ok", "description": "a\u{0}b"}), "description"),
    ] {
        let (status, body, _) = app.send(Method::POST, "/v1/tenants", god, Some(bad.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(body["field"], field, "{bad}: {body}");
    }
    let (_, body, _) = app.send(Method::GET, "/v1/tenants", god, None).await;
    let names: Vec<_> = body["items"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["public", "acme", "globex"]);
    let (status, body, _) = app.send(Method::GET, "/v1/tenants/globex", god, None).await;
    assert_eq!((status, body["description"].clone()), (StatusCode::OK, json!("Globex Corp")));

    let (_, created, _) =
        app.send(Method::POST, "/v1/tenants/globex/keys", god, Some(json!({"name": "ci", "role": "write"}))).await;
    let globex_key = created["key"].as_str().unwrap().to_owned();
    let (status, _, _) = app.send(Method::GET, "/v1/auth/whoami", Some(&globex_key), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body, _) = app.send(Method::DELETE, "/v1/tenants/globex", god, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"status": "removed", "name": "globex", "schema_name": "tenant_globex", "revoked_keys": 1,
               "runner_evicted": true, "db_cache_evicted": true})
    );
    let (status, _, _) = app.send(Method::GET, "/v1/auth/whoami", Some(&globex_key), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "its keys get 401");
    for path in ["/v1/tenants/globex", "/v1/tenants/globex/keys"] {
        let (status, body, _) = app.send(Method::GET, path, god, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
    }
    let (status, _, _) = app.send(Method::DELETE, "/v1/tenants/globex", god, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = app.send(Method::POST, "/v1/tenants", god, Some(json!({"name": "globex"}))).await;
    assert_eq!(status, StatusCode::CREATED, "the name is free again at once");
}

/// What a god key can set on a tenant, on either backend: `acme` exists on PostgreSQL only.
async fn tenant_settings_are_set_shown_and_cleared(app: App, multi_tenant: bool) {
    let god = Some(app.god.as_str());
    let (status, body, _) = app.send(Method::GET, "/v1/tenants/public", god, None).await;
    assert_eq!((status, body["task_network"].clone()), (StatusCode::OK, Value::Null), "{body}");
    let (status, body, _) =
        app.send(Method::PATCH, "/v1/tenants/public", god, Some(json!({"task_network": "host"}))).await;
    assert_eq!((status, body["task_network"].clone()), (StatusCode::OK, json!("host")), "{body}");
    assert_eq!(body["name"], "public");
    let (_, body, _) = app.send(Method::GET, "/v1/tenants", god, None).await;
    assert_eq!(body["items"][0]["task_network"], "host", "{body}");
    let (status, body, _) = app.send(Method::PATCH, "/v1/tenants/public", god, Some(json!({}))).await;
    assert_eq!((status, body["task_network"].clone()), (StatusCode::OK, json!("host")), "a field left out stays");
    for (bad, field) in [
        (json!({"task_network": "bridge"}), "task_network"),
        (json!({"task_network": 1}), "task_network"),
        (json!({"task_network": "none", "description": "x"}), "description"),
    ] {
        let (status, body, _) = app.send(Method::PATCH, "/v1/tenants/public", god, Some(bad.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(body["field"], field, "{bad}: {body}");
    }
    let (_, body, _) = app.send(Method::GET, "/v1/tenants/public", god, None).await;
    assert_eq!(body["task_network"], "host", "a refused change changes nothing");
    let (status, body, _) =
        app.send(Method::PATCH, "/v1/tenants/public", god, Some(json!({"task_network": null}))).await;
    assert_eq!((status, body["task_network"].clone()), (StatusCode::OK, Value::Null), "null: the default again");
    let (status, body, _) =
        app.send(Method::PATCH, "/v1/tenants/nobody", god, Some(json!({"task_network": "none"}))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_envelope(&body, "tenant_not_found");
    let (status, body, _) =
        app.send(Method::PATCH, "/v1/tenants/acme", god, Some(json!({"task_network": "none"}))).await;
    if multi_tenant {
        assert_eq!((status, body["task_network"].clone()), (StatusCode::OK, json!("none")), "{body}");
        let (_, public, _) = app.send(Method::GET, "/v1/tenants/public", god, None).await;
        assert_eq!(public["task_network"], Value::Null, "another tenant's setting is its own");
    } else {
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    }
}

#[tokio::test]
async fn on_sqlite_a_god_key_sets_and_clears_the_tenants_task_network() {
    tenant_settings_are_set_shown_and_cleared(app().await, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_a_god_key_sets_and_clears_a_tenants_task_network() {
    tenant_settings_are_set_shown_and_cleared(app_pg(HttpConfig::default()).await, true).await;
}
