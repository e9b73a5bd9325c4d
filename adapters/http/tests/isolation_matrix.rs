//! The HTTP half of the isolation matrix (docs/testing.md, layer 6): every route of the table,
//! for every kind of caller, on SQLite and on PostgreSQL, answers what the route's permission
//! says, with the envelope.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use axum::http::{Method, StatusCode};
use chrono::Utc;
use cloacina_domain::{ApiKeyId, KeyName, MintedKey, NewKey, Role, StoredSecret};
use cloacina_http::{HttpConfig, ROUTES};
use serde_json::json;

mod common;
use common::*;

/// The kinds of caller the matrix tries on every route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Caller {
    None,
    Malformed,
    BadChecksum,
    Unknown,
    Revoked,
    Expired,
    Read,
    Write,
    TenantAdmin,
    OtherTenantAdmin,
    God,
}

#[tokio::test]
async fn isolation_matrix_every_route_for_every_kind_of_key_on_sqlite() {
    isolation_matrix(app_with(unthrottled()).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolation_matrix_every_route_for_every_kind_of_key_on_postgres() {
    isolation_matrix(app_pg(unthrottled()).await).await;
}

/// No throttle and no request limits: the matrix sends hundreds of requests from one address.
fn unthrottled() -> HttpConfig {
    HttpConfig { auth_failures_per_minute: 0, requests_per_key: 0, requests_per_address: 0, ..HttpConfig::default() }
}

async fn isolation_matrix(app: App) {
    use cloacina_domain::PermissionScope;
    use cloacina_http::Access;

    let read = app.key(tenant("public", Role::Read)).await;
    let write = app.key(tenant("public", Role::Write)).await;
    let admin = app.key(tenant("public", Role::Admin)).await;
    let other = app.key(tenant("acme", Role::Admin)).await;
    let revoked = app.key(tenant("public", Role::Admin)).await;
    let (_, listed, _) = app.send(Method::GET, "/v1/tenants/public/keys", Some(&admin), None).await;
    let revoked_id = listed["items"].as_array().unwrap().iter().rev().find(|k| k["revoked"] == false).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _, _) = app.send(Method::DELETE, &format!("/v1/auth/keys/{revoked_id}"), Some(&app.god), None).await;
    assert_eq!(status, StatusCode::OK);
    let expired = {
        let minted = MintedKey::new(fresh_id(), rand_bytes());
        app.db
            .insert(
                &NewKey {
                    id: minted.id(),
                    name: KeyName::parse("expired").unwrap(),
                    authority: tenant("public", Role::Admin),
                    secret: StoredSecret::Sha256(minted.digest()),
                    created_at: Utc::now() - chrono::Duration::days(2),
                    created_by: None,
                    expires_at: Some(Utc::now() - chrono::Duration::days(1)),
                },
                &noted(),
            )
            .await
            .unwrap();
        minted.plaintext().expose().to_owned()
    };
    let mut bad_checksum = read.clone();
    let last = bad_checksum.pop().unwrap();
    bad_checksum.push(if last == 'A' { 'B' } else { 'A' });
    let unknown = MintedKey::new(fresh_id(), [7; 32]).plaintext().expose().to_owned();

    let callers: Vec<(Caller, Option<String>)> = vec![
        (Caller::None, None),
        (Caller::Malformed, Some("clk_!!".into())),
        (Caller::BadChecksum, Some(bad_checksum)),
        (Caller::Unknown, Some(unknown)),
        (Caller::Revoked, Some(revoked)),
        (Caller::Expired, Some(expired)),
        (Caller::Read, Some(read)),
        (Caller::Write, Some(write)),
        (Caller::TenantAdmin, Some(admin)),
        (Caller::OtherTenantAdmin, Some(other)),
        (Caller::God, Some(app.god.clone())),
    ];
    let mut cells = 0;
    for route in ROUTES {
        let path = route
            .path
            .replace("{tenant}", "public")
            .replace("{id}", &ApiKeyId::from_uuid(uuid_nil()).to_string())
            .replace("{name}", "nightly")
            .replace("{version}", "1.0.0")
            .replace("{task}", "extract")
            .replace("{recipient}", &format!("exec_events:{}", uuid_nil()));
        let body = match route.method {
            Method::POST => Some(json!({"name": "matrix"})),
            Method::PATCH => Some(json!({})),
            _ => None,
        };
        for (caller, key) in &callers {
            let (status, resp, _) = app.send(route.method.clone(), &path, key.as_deref(), body.clone()).await;
            let allowed = match route.access {
                Access::Public => true,
                Access::Key(p) => match caller {
                    Caller::None
                    | Caller::Malformed
                    | Caller::BadChecksum
                    | Caller::Unknown
                    | Caller::Revoked
                    | Caller::Expired => {
                        assert_eq!(status, StatusCode::UNAUTHORIZED, "{route:?} {caller:?}: {resp}");
                        cells += 1;
                        continue;
                    }
                    Caller::God => true,
                    // A socket with no tenant in its path works in the key's own tenant: the
                    // other tenant's key asks there, and finds no such execution.
                    Caller::OtherTenantAdmin => {
                        matches!(p.scope(), PermissionScope::AnyKey)
                            || (route.socket && !route.path.contains("{tenant}"))
                    }
                    Caller::Read | Caller::Write | Caller::TenantAdmin => {
                        let role = match caller {
                            Caller::Read => Role::Read,
                            Caller::Write => Role::Write,
                            _ => Role::Admin,
                        };
                        match p.scope() {
                            PermissionScope::AnyKey => true,
                            PermissionScope::GodOnly => false,
                            PermissionScope::Tenant(needed) => role >= needed,
                        }
                    }
                },
            };
            if allowed {
                assert!(![401, 403].contains(&status.as_u16()), "{route:?} {caller:?} should pass: {status} {resp}");
            } else {
                assert_eq!(status, StatusCode::FORBIDDEN, "{route:?} {caller:?}: {resp}");
                assert_envelope(&resp, "forbidden");
            }
            cells += 1;
        }
    }
    assert_eq!(cells, ROUTES.len() * callers.len());
}

fn uuid_nil() -> uuid::Uuid {
    uuid::Uuid::from_u128(0x1234)
}
