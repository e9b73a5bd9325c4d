//! Bad input, as a hostile client sends it: every case answers the JSON error envelope with
//! the right status and, where one parameter or field is at fault, its name. (Requests the
//! HTTP library refuses before any route sees them are in `tests/e2e/bad_requests.rs`.)

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use axum::http::{Method, StatusCode};
use cloacina_http::HttpConfig;
use serde_json::{Value, json};

mod common;
use common::*;

fn assert_fault(what: &str, status: StatusCode, body: &Value, want: StatusCode, code: &str, field: Option<&str>) {
    assert_eq!(status, want, "{what}: {body}");
    assert_envelope(body, code);
    assert_eq!(body["field"].as_str(), field, "{what}: {body}");
}

#[tokio::test]
async fn a_json_body_over_the_limit_on_execute_is_413_with_the_envelope() {
    let app = app_with(HttpConfig { json_body_limit: 1024, ..HttpConfig::default() }).await;
    let big = json!({"context": {"pad": "x".repeat(4096)}});
    let (status, body, headers) =
        app.send(Method::POST, "/v1/tenants/public/workflows/nightly/execute", Some(&app.god), Some(big)).await;
    assert_fault("execute", status, &body, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", None);
    assert_eq!(headers["content-type"], "application/json");
}

#[tokio::test]
async fn query_values_of_the_wrong_type_name_the_parameter() {
    let app = app().await;
    let god = Some(app.god.as_str());
    let id = "00000000-0000-4000-8000-000000000000";
    for (path, code, field) in [
        ("/v1/tenants/public/executions?limit=-1", "invalid_pagination", "limit"),
        ("/v1/tenants/public/executions?limit=1e9", "invalid_pagination", "limit"),
        ("/v1/tenants/public/executions?limit=", "invalid_pagination", "limit"),
        ("/v1/tenants/public/executions?offset=-1", "invalid_pagination", "offset"),
        ("/v1/tenants/public/executions?status=done", "invalid_field", "status"),
        ("/v1/tenants/public/workflows?limit=0", "invalid_pagination", "limit"),
        ("/v1/tenants?offset=abc", "invalid_pagination", "offset"),
    ] {
        let (status, body, _) = app.send(Method::GET, path, god, None).await;
        assert_fault(path, status, &body, StatusCode::BAD_REQUEST, code, Some(field));
    }
    // `since` is checked before the execution is looked up.
    for (query, code, field) in [
        ("since=abc", "invalid_field", "since"),
        ("since=-4", "invalid_field", "since"),
        ("limit=1001", "invalid_pagination", "limit"),
    ] {
        let path = format!("/v1/tenants/public/executions/{id}/events?{query}");
        let (status, body, _) = app.send(Method::GET, &path, god, None).await;
        assert_fault(&path, status, &body, StatusCode::BAD_REQUEST, code, Some(field));
    }
}

#[tokio::test]
async fn every_list_refuses_a_parameter_it_does_not_take_and_pages_with_the_real_total() {
    let app = app().await;
    let god = Some(app.god.as_str());
    let id = "00000000-0000-4000-8000-000000000000";
    for path in [
        "/v1/auth/keys?bogus=1",
        "/v1/tenants?bogus=1",
        "/v1/tenants/public/keys?bogus=1",
        "/v1/tenants/public/workflows?bogus=1",
        "/v1/tenants/public/packages?bogus=1",
        "/v1/tenants/public/executions?bogus=1",
        &format!("/v1/tenants/public/executions/{id}/events?bogus=1"),
    ] {
        let (status, body, _) = app.send(Method::GET, path, god, None).await;
        assert_fault(path, status, &body, StatusCode::BAD_REQUEST, "invalid_field", Some("bogus"));
    }
    for n in 0..3 {
        let (status, _, _) = app.send(Method::POST, "/v1/auth/keys", god, Some(json!({"name": format!("k{n}")}))).await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let (status, body, _) = app.send(Method::GET, "/v1/auth/keys?limit=2&offset=1", god, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!((body["items"].as_array().unwrap().len(), body["total"].as_u64()), (2, Some(4)), "{body}");
}

#[tokio::test]
async fn a_body_that_is_not_a_json_object_is_refused_before_it_is_read_field_by_field() {
    let app = app().await;
    // serde reads a struct from an array positionally: this once made a key.
    for (body, what) in [
        (r#"["arr1","admin",null,null]"#, "an array"),
        ("42", "a number"),
        (r#""name""#, "a string"),
        ("null", "null"),
        ("", "nothing"),
    ] {
        let (status, answer, _) =
            app.send_from("192.0.2.20:1", Method::POST, "/v1/auth/keys", Some(&app.god), Some(body.into())).await;
        assert_fault(what, status, &answer, StatusCode::BAD_REQUEST, "invalid_json", None);
    }
    let (status, answer, _) = app
        .send_from(
            "192.0.2.20:1",
            Method::POST,
            "/v1/tenants/public/workflows/nightly/execute",
            Some(&app.god),
            Some("[1]".into()),
        )
        .await;
    assert_fault("execute", status, &answer, StatusCode::BAD_REQUEST, "invalid_json", None);
    let (_, listed, _) = app.send(Method::GET, "/v1/auth/keys", Some(&app.god), None).await;
    assert_eq!(listed["total"], 1, "no key was made: {listed}");
}
