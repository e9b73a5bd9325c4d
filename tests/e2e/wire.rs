//! The wire contract (docs/api.md, "Reference compatibility"): one row per route the
//! reference Cloacina server has, each asserting every reference field and its JSON type, and the reference's status
//! words, over the real binary on SQLite and on PostgreSQL. The reference's own clients read
//! our answers only if each is a superset of its shape. A route added later that has a
//! reference counterpart (secrets, the WebSocket ticket) joins [`rows`].

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::executions::{execute, finished, pack, upload};
use crate::harness::{Server, bootstrap_key};

/// What a field must hold.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Str,
    Num,
    Bool,
    Arr,
    /// A string or `null`.
    StrOrNull,
    /// A number or `null`.
    NumOrNull,
    /// Exactly this string.
    Is(&'static str),
    /// One of these strings.
    OneOf(&'static [&'static str]),
}

const EXECUTION_STATUSES: &[&str] = &["Pending", "Running", "Completed", "Failed", "Cancelled", "Paused"];
const TASK_STATUSES: &[&str] = &["NotStarted", "Ready", "Running", "Completed", "Failed", "Skipped", "Cancelled"];

use Kind::{Arr, Bool, Is, Num, NumOrNull, OneOf, Str, StrOrNull};

/// One reference route: the request, the status it answers, the fields of its answer. A path
/// segment `*` in a field stands for every element of an array (which must not be empty).
struct Row {
    method: Method,
    path: String,
    body: Option<Value>,
    status: u16,
    fields: Vec<(&'static str, Kind)>,
}

fn row(method: Method, path: String, body: Option<Value>, status: u16, fields: &[(&'static str, Kind)]) -> Row {
    Row { method, path, body, status, fields: fields.to_vec() }
}

/// The values at `pointer`, `*` expanding every element of an array.
fn at<'a>(value: &'a Value, pointer: &str) -> Vec<Option<&'a Value>> {
    let mut found = vec![Some(value)];
    for part in pointer.trim_start_matches('/').split('/') {
        found = found
            .into_iter()
            .flat_map(|v| match (v, part) {
                (Some(Value::Array(items)), "*") if !items.is_empty() => items.iter().map(Some).collect(),
                (Some(Value::Array(_)), "*") | (None, _) => vec![None],
                (Some(v), key) => vec![v.get(key)],
            })
            .collect();
    }
    found
}

fn holds(value: Option<&Value>, kind: Kind) -> bool {
    match (kind, value) {
        (Str, Some(Value::String(_))) | (Num, Some(Value::Number(_))) | (Bool, Some(Value::Bool(_))) => true,
        (Arr, Some(Value::Array(_))) => true,
        (StrOrNull, Some(Value::String(_) | Value::Null)) => true,
        (NumOrNull, Some(Value::Number(_) | Value::Null)) => true,
        (Is(s), Some(Value::String(v))) => v == s,
        (OneOf(words), Some(Value::String(v))) => words.contains(&v.as_str()),
        _ => false,
    }
}

/// Every reference route that exists, for `tenant`: what it sends and what its answer must hold.
#[allow(clippy::too_many_lines)]
fn rows(t: &'static str, multi_tenant: bool, execution: &str, spare_version: &str, key_id: &str) -> Vec<Row> {
    let created_key: &[(&str, Kind)] = &[
        ("/id", Str),
        ("/name", Str),
        ("/key", Str),
        ("/permissions", Str),
        ("/tenant_id", StrOrNull),
        ("/is_admin", Bool),
        ("/created_at", Str),
    ];
    let listed_key: &[(&str, Kind)] = &[
        ("/items/*/id", Str),
        ("/items/*/name", Str),
        ("/items/*/permissions", Str),
        ("/items/*/tenant_id", StrOrNull),
        ("/items/*/is_admin", Bool),
        ("/items/*/created_at", Str),
        ("/items/*/revoked", Bool),
        ("/total", Num),
    ];
    let base = format!("/v1/tenants/{t}");
    let mut rows = vec![
        row(Method::POST, "/v1/auth/keys".into(), Some(json!({"name": "wire-god"})), 201, created_key),
        row(Method::POST, "/v1/auth/keys".into(), Some(json!({"name": "wire-ref", "role": "read"})), 201, created_key),
        row(Method::POST, format!("{base}/keys"), Some(json!({"name": "wire-t", "role": "write"})), 201, created_key),
        row(Method::GET, "/v1/auth/keys".into(), None, 200, listed_key),
        row(Method::GET, format!("{base}/keys"), None, 200, &[listed_key, &[("/tenant_id", Is(t))]].concat()),
        row(Method::DELETE, format!("/v1/auth/keys/{key_id}"), None, 200, &[("/status", Is("revoked")), ("/id", Str)]),
        row(
            Method::GET,
            "/v1/auth/whoami".into(),
            None,
            200,
            &[("/tenant_id", StrOrNull), ("/role", Is("admin")), ("/is_admin", Bool), ("/name", Str)],
        ),
        row(Method::POST, "/v1/auth/ws-ticket".into(), None, 200, &[("/ticket", Str), ("/expires_in_seconds", Num)]),
        row(Method::GET, "/v1/tenants".into(), None, 200, &[("/items/*/name", Str), ("/total", Num)]),
        row(
            Method::GET,
            format!("{base}/workflows"),
            None,
            200,
            &[
                ("/tenant_id", Is(t)),
                ("/items/*/id", Str),
                ("/items/*/package_name", Str),
                ("/items/*/workflow_name", Str),
                ("/items/*/version", Str),
                ("/items/*/description", StrOrNull),
                ("/items/*/tasks/*", Str),
                ("/items/*/created_at", Str),
                ("/items/*/paused", Bool),
                ("/total", Num),
            ],
        ),
        row(
            Method::GET,
            format!("{base}/workflows/wired"),
            None,
            200,
            &[
                ("/tenant_id", Is(t)),
                ("/id", Str),
                ("/package_name", Str),
                ("/workflow_name", Is("wired")),
                ("/version", Str),
                ("/description", StrOrNull),
                ("/tasks/*", Str),
                ("/task_graph/*/id", Str),
                ("/task_graph/*/dependencies", Arr),
                ("/task_graph/*/description", StrOrNull),
                ("/task_graph/*/doc_what", StrOrNull),
                ("/task_graph/*/doc_why", StrOrNull),
                ("/created_at", Str),
                ("/build_status", Is("success")),
                ("/build_error", StrOrNull),
                ("/paused", Bool),
                ("/declared_params", Arr),
            ],
        ),
    ];
    let paused: &[(&str, Kind)] = &[("/tenant_id", Is(t)), ("/id", Str), ("/name", Is("wired")), ("/status", Str)];
    rows.push(row(
        Method::POST,
        format!("{base}/workflows/wired/pause"),
        None,
        200,
        &[paused, &[("/paused", Bool)]].concat(),
    ));
    rows.push(row(
        Method::POST,
        format!("{base}/workflows/wired/resume"),
        None,
        200,
        &[paused, &[("/paused", Bool)]].concat(),
    ));
    let listed: &[(&str, Kind)] = &[
        ("/items/*/id", Str),
        ("/items/*/schedule_type", Is("cron")),
        ("/items/*/workflow_name", Is("wired")),
        ("/items/*/enabled", Bool),
        ("/items/*/cron_expression", Is("0 3 * * *")),
        ("/items/*/trigger_name", Is("wired-nightly")),
        ("/items/*/paused", Bool),
        ("/items/*/paused_at", StrOrNull),
        ("/items/*/poll_interval_ms", NumOrNull),
        ("/items/*/next_run_at", StrOrNull),
        ("/items/*/last_run_at", StrOrNull),
        ("/items/*/created_at", Str),
        ("/items/*/last_poll_at", StrOrNull),
        ("/tenant_id", Is(t)),
        ("/total", Num),
    ];
    rows.push(row(Method::GET, format!("{base}/triggers?limit=1000&offset=0"), None, 200, listed));
    rows.push(row(
        Method::POST,
        format!("{base}/triggers/wired-nightly/fire"),
        Some(json!({"event": {"by": "wire"}})),
        200,
        &[
            ("/tenant_id", Is(t)),
            ("/trigger", Is("wired-nightly")),
            ("/fired", Bool),
            ("/executions/*/workflow_name", Is("wired")),
            ("/executions/*/execution_id", Str),
        ],
    ));
    let inspected: &[(&str, Kind)] = &[
        ("/schedule/id", Str),
        ("/schedule/schedule_type", Is("cron")),
        ("/schedule/workflow_name", Is("wired")),
        ("/schedule/enabled", Bool),
        ("/schedule/cron_expression", Is("0 3 * * *")),
        ("/schedule/trigger_name", Is("wired-nightly")),
        ("/schedule/paused", Bool),
        ("/schedule/paused_at", StrOrNull),
        ("/schedule/poll_interval_ms", NumOrNull),
        ("/tenant_id", Is(t)),
        ("/recent_executions/*/id", Str),
        ("/recent_executions/*/scheduled_time", StrOrNull),
        ("/recent_executions/*/started_at", Str),
        ("/recent_executions/*/completed_at", StrOrNull),
    ];
    rows.push(row(Method::GET, format!("{base}/triggers/wired-nightly"), None, 200, inspected));
    let trigger_paused: &[(&str, Kind)] =
        &[("/tenant_id", Is(t)), ("/id", Str), ("/name", Is("wired-nightly")), ("/status", Str), ("/paused", Bool)];
    rows.push(row(Method::POST, format!("{base}/triggers/wired-nightly/pause"), None, 200, trigger_paused));
    rows.push(row(Method::POST, format!("{base}/triggers/wired-nightly/resume"), None, 200, trigger_paused));
    rows.push(row(
        Method::DELETE,
        format!("{base}/workflows/spare/{spare_version}"),
        None,
        200,
        &[("/status", Str), ("/package_name", Is("spare")), ("/version", Is("0.1.0"))],
    ));
    rows.push(row(
        Method::POST,
        format!("{base}/workflows/wired/execute"),
        Some(json!({"context": null})),
        202,
        &[("/execution_id", Str), ("/workflow_name", Is("wired")), ("/tenant_id", Is(t)), ("/status", Is("scheduled"))],
    ));
    rows.push(row(
        Method::GET,
        format!("{base}/executions?status=completed&limit=1000&offset=0"),
        None,
        200,
        &[
            ("/tenant_id", Is(t)),
            ("/items/*/id", Str),
            ("/items/*/workflow_name", Str),
            ("/items/*/status", Is("Completed")),
            ("/items/*/started_at", Str),
            ("/items/*/completed_at", Str),
            ("/items/*/trigger_origin", Str),
            ("/total", Num),
        ],
    ));
    rows.push(row(
        Method::GET,
        format!("{base}/executions"),
        None,
        200,
        &[("/items/*/status", OneOf(EXECUTION_STATUSES)), ("/items/*/completed_at", StrOrNull)],
    ));
    rows.push(row(
        Method::GET,
        format!("{base}/executions/{execution}"),
        None,
        200,
        &[("/tenant_id", Is(t)), ("/execution_id", Str), ("/status", OneOf(EXECUTION_STATUSES))],
    ));
    rows.push(row(
        Method::GET,
        format!("{base}/executions/{execution}/events"),
        None,
        200,
        &[
            ("/tenant_id", Is(t)),
            ("/execution_id", Str),
            ("/events/*/id", Str),
            ("/events/*/event_type", Str),
            ("/events/*/event_data", StrOrNull),
            ("/events/*/task_name", StrOrNull),
            ("/events/*/created_at", Str),
            ("/events/*/sequence_num", Num),
        ],
    ));
    rows.push(row(
        Method::GET,
        format!("{base}/executions/{execution}/tasks"),
        None,
        200,
        &[
            ("/tenant_id", Is(t)),
            ("/execution_id", Str),
            ("/tasks/*/id", Str),
            ("/tasks/*/task_name", Str),
            ("/tasks/*/status", OneOf(TASK_STATUSES)),
            ("/tasks/*/started_at", StrOrNull),
            ("/tasks/*/completed_at", StrOrNull),
            ("/tasks/*/attempt", Num),
            ("/tasks/*/max_attempts", Num),
            ("/tasks/*/created_at", Str),
            ("/tasks/*/updated_at", Str),
            ("/tasks/*/sub_status", StrOrNull),
            ("/tasks/*/last_error", StrOrNull),
            ("/tasks/*/error_details", StrOrNull),
        ],
    ));
    // Secrets: every answer metadata only.
    let meta: &[(&'static str, Kind)] =
        &[("/id", Str), ("/name", Is("wired-db")), ("/field_names/*", Str), ("/created_at", Str), ("/updated_at", Str)];
    rows.push(row(
        Method::POST,
        format!("{base}/secrets"),
        Some(json!({"name": "wired-db", "fields": {"password": "wired-value"}})),
        201,
        meta,
    ));
    rows.push(row(
        Method::GET,
        format!("{base}/secrets"),
        None,
        200,
        &[("/items/*/id", Str), ("/items/*/name", Str), ("/items/*/field_names/*", Str), ("/total", Num)],
    ));
    rows.push(row(Method::GET, format!("{base}/secrets/wired-db"), None, 200, meta));
    rows.push(row(
        Method::PUT,
        format!("{base}/secrets/wired-db"),
        Some(json!({"fields": {"password": "wired-value-2", "user": "app"}})),
        200,
        meta,
    ));
    rows.push(row(
        Method::DELETE,
        format!("{base}/secrets/wired-db"),
        None,
        200,
        &[("/status", Is("deleted")), ("/name", Is("wired-db"))],
    ));
    if multi_tenant {
        rows.push(row(
            Method::POST,
            "/v1/tenants".into(),
            Some(json!({"name": "wired_t", "description": null, "password": null})),
            201,
            &[("/name", Is("wired_t")), ("/username", Str), ("/description", StrOrNull)],
        ));
        rows.push(row(
            Method::DELETE,
            "/v1/tenants/wired_t".into(),
            None,
            200,
            &[
                ("/status", Is("removed")),
                ("/schema_name", Str),
                ("/revoked_keys", Num),
                ("/runner_evicted", Bool),
                ("/db_cache_evicted", Bool),
            ],
        ));
    }
    rows
}

/// 32 bytes of 0x01 in base64: the servers' master key, so the secrets routes answer.
const MASTER_KEY: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";

/// Sets `tenant` up (a finished two-task execution, a spare package version), then checks
/// every row; returns how many routes and fields were checked.
async fn wire_contract(
    server: &Server,
    home: &std::path::Path,
    tenant: &'static str,
    multi_tenant: bool,
) -> (usize, usize) {
    let god = bootstrap_key(home);
    let wired = pack(
        home,
        "wired",
        "1.0.0",
        "[[workflow]]\nname = \"wired\"\n[[workflow.task]]\nid = \"first\"\ncommand = [\"true\"]\n\
         [[workflow.task]]\nid = \"second\"\ncommand = [\"true\"]\ndepends_on = [\"first\"]\nretries = 2\n\
         [[workflow.trigger]]\nname = \"wired-nightly\"\ncron = \"0 3 * * *\"\n",
        &[],
    );
    let (status, uploaded) = upload(server, tenant, &god, &wired).await;
    assert_eq!(status, 201, "{uploaded}");
    for (field, kind) in [("/package_id", Str), ("/tenant_id", Is(tenant))] {
        assert!(holds(uploaded.pointer(field), kind), "upload: {field} is not {kind:?}: {uploaded}");
    }
    let spare = pack(
        home,
        "spare",
        "0.1.0",
        "[[workflow]]\nname = \"spare\"\n[[workflow.task]]\nid = \"s\"\ncommand = [\"true\"]\n",
        &[],
    );
    assert_eq!(upload(server, tenant, &god, &spare).await.0, 201);
    let (_, accepted, _) = execute(server, tenant, &god, "wired", json!({}), None).await;
    let execution = accepted["execution_id"].as_str().unwrap().to_owned();
    assert_eq!(finished(server, tenant, &god, &execution, Duration::from_secs(60)).await["status"], "Completed");
    let (_, doomed) = server.call(Method::POST, "/v1/auth/keys", Some(&god), Some(json!({"name": "doomed"}))).await;
    let key_id = doomed["id"].as_str().unwrap().to_owned();

    let (mut routes, mut fields) = (0, 0);
    for r in rows(tenant, multi_tenant, &execution, "0.1.0", &key_id) {
        let (status, body) = server.call(r.method.clone(), &r.path, Some(&god), r.body.clone()).await;
        assert_eq!(status, r.status, "{} {}: {body}\n{}", r.method, r.path, server.stderr());
        for (field, kind) in &r.fields {
            for (i, v) in at(&body, field).into_iter().enumerate() {
                assert!(holds(v, *kind), "{} {}: {field}[{i}] should be {kind:?}, is {v:?}: {body}", r.method, r.path);
                fields += 1;
            }
        }
        routes += 1;
    }
    (routes, fields)
}

#[tokio::test(flavor = "multi_thread")]
async fn every_reference_route_answers_a_superset_of_its_shape_on_sqlite() {
    let home = tempfile::tempdir().unwrap();
    let server = Server::start(home.path(), &[], &[("CLOACINA_MASTER_KEY", MASTER_KEY)]);
    let (routes, fields) = wire_contract(&server, home.path(), "public", false).await;
    println!("wire contract on SQLite: {routes} routes, {fields} fields checked");
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn every_reference_route_answers_a_superset_of_its_shape_on_postgres() {
    let db = cloacina_testpg::TestPg::shared().database().await;
    let home = tempfile::tempdir().unwrap();
    let args = ["--database-url", &db.url, "--db-max-connections", "4"];
    let server = Server::start(home.path(), &args, &[("CLOACINA_MASTER_KEY", MASTER_KEY)]);
    let god = bootstrap_key(home.path());
    let (status, body) = server.call(Method::POST, "/v1/tenants", Some(&god), Some(json!({"name": "acme"}))).await;
    assert_eq!(status, 201, "{body}");
    let (routes, fields) = wire_contract(&server, home.path(), "acme", true).await;
    println!("wire contract on PostgreSQL: {routes} routes, {fields} fields checked");
    server.stop();
}

#[test]
fn the_checker_itself_tells_a_wrong_type_and_a_missing_or_empty_field() {
    let body = json!({"items": [{"id": "a"}, {"id": 1}], "none": [], "n": null});
    let ids: Vec<bool> = at(&body, "/items/*/id").into_iter().map(|v| holds(v, Str)).collect();
    assert_eq!(ids, [true, false]);
    assert!(!holds(at(&body, "/none/*")[0], Str), "an empty array proves nothing");
    assert!(!holds(at(&body, "/missing")[0], StrOrNull));
    assert!(holds(at(&body, "/n")[0], StrOrNull) && !holds(at(&body, "/n")[0], Str));
    assert!(!holds(Some(&json!("Done")), OneOf(EXECUTION_STATUSES)));
}
