//! Live sockets under `/v1/ws/` (docs/live.md): an execution's events in order across
//! replicas, a resume with `since` that loses and repeats nothing, the tenant feed, tickets,
//! sockets closed within a second of their key's revocation or their tenant's deletion, the
//! isolation of another tenant's execution, and the reference delivery protocol.

use std::time::{Duration, Instant};

use base64::Engine as _;
use futures::{SinkExt, StreamExt};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::executions::{execute, finished, pack, upload};
use crate::harness::{Server, bootstrap_key};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

const WORKFLOWS: &str = r#"[[workflow]]
name = "steps"
[[workflow.task]]
id = "one"
command = ["sh", "-c", "sleep 0.4; echo one"]
[[workflow.task]]
id = "two"
command = ["sh", "-c", "sleep 0.4; echo two"]
depends_on = ["one"]
[[workflow.task]]
id = "three"
command = ["sh", "-c", "sleep 0.4; echo three"]
depends_on = ["two"]

[[workflow]]
name = "forever"
[[workflow.task]]
id = "wait"
command = ["sleep", "60"]
"#;

/// What a socket gave next.
#[derive(Debug)]
enum Got {
    Frame(Value),
    Closed(u16),
    /// The connection ended without a close frame.
    Ended,
}

async fn connect(server: &Server, path: &str, key: Option<&str>) -> Result<Ws, WsError> {
    let url = format!("{}{path}", server.url.replacen("http://", "ws://", 1));
    let mut request = url.into_client_request()?;
    if let Some(key) = key {
        request.headers_mut().insert("authorization", format!("Bearer {key}").parse().unwrap());
    }
    tokio_tungstenite::connect_async(request).await.map(|(ws, _)| ws)
}

/// The HTTP status a refused upgrade answered.
async fn refused(server: &Server, path: &str, key: Option<&str>) -> u16 {
    match connect(server, path, key).await {
        Err(WsError::Http(response)) => response.status().as_u16(),
        other => panic!("{path} should be refused, got {other:?}"),
    }
}

async fn next(ws: &mut Ws, within: Duration) -> Got {
    loop {
        match tokio::time::timeout(within, ws.next()).await.expect("the socket said something in time") {
            Some(Ok(Message::Text(t))) => return Got::Frame(serde_json::from_str(t.as_str()).unwrap()),
            Some(Ok(Message::Close(frame))) => return Got::Closed(frame.map_or(1005, |f| f.code.into())),
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return Got::Ended,
        }
    }
}

/// Every frame until the socket closes, and its close code.
async fn drain(ws: &mut Ws) -> (Vec<Value>, u16) {
    let mut frames = Vec::new();
    loop {
        match next(ws, Duration::from_secs(60)).await {
            Got::Frame(f) => frames.push(f),
            Got::Closed(code) => return (frames, code),
            Got::Ended => panic!("the socket ended without a close frame after {frames:?}"),
        }
    }
}

fn seqs(frames: &[Value]) -> Vec<i64> {
    frames.iter().map(|f| f["sequence_num"].as_i64().expect("every frame has its sequence number")).collect()
}

async fn http_events(server: &Server, key: &str, tenant: &str, id: &str) -> Vec<i64> {
    let (status, body) =
        server.get(&format!("/v1/tenants/{tenant}/executions/{id}/events?limit=1000"), Some(key)).await;
    assert_eq!(status, 200, "{body}");
    body["events"].as_array().unwrap().iter().map(|e| e["sequence_num"].as_i64().unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_socket_on_replica_b_gets_every_event_of_an_execution_run_through_replica_a_in_order_once() {
    let db = cloacina_testpg::TestPg::shared().database().await;
    let (home_a, home_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Server::start(home_a.path(), &["--database-url", db.url.as_str(), "--workers", "2"], &[]);
    let god = bootstrap_key(home_a.path());
    // B runs no tasks: everything it sends was written by A.
    let b = Server::start(home_b.path(), &["--database-url", db.url.as_str(), "--workers", "0"], &[]);
    let file = pack(home_a.path(), "live", "1.0.0", WORKFLOWS, &[]);
    assert_eq!(upload(&a, "public", &god, &file).await.0, 201);

    // The tenant feed on B, open before anything runs.
    let mut feed = connect(&b, "/v1/ws/tenants/public/executions", Some(&god)).await.unwrap();
    let (status, accepted, _) = execute(&a, "public", &god, "steps", json!({}), None).await;
    assert_eq!(status, 202, "{accepted}");
    let id = accepted["execution_id"].as_str().unwrap().to_owned();
    let path = format!("/v1/ws/tenants/public/executions/{id}");

    // One socket reads it all; another is cut after two frames and resumes with `since`.
    let mut whole = connect(&b, &path, Some(&god)).await.unwrap();
    let mut with_output = connect(&b, &format!("{path}?output_since=0"), Some(&god)).await.unwrap();
    let mut cut = connect(&b, &path, Some(&god)).await.unwrap();
    let mut first = Vec::new();
    for _ in 0..2 {
        match next(&mut cut, Duration::from_secs(30)).await {
            Got::Frame(f) => first.push(f),
            other => panic!("expected a frame, got {other:?}"),
        }
    }
    drop(cut);
    let (frames, code) = drain(&mut whole).await;
    assert_eq!(code, 1000, "closed after the final event");
    let last = first.last().unwrap()["sequence_num"].as_i64().unwrap();
    let mut resumed = connect(&b, &format!("{path}?since={last}"), Some(&god)).await.unwrap();
    let (rest, code) = drain(&mut resumed).await;
    assert_eq!(code, 1000);

    finished(&a, "public", &god, &id, Duration::from_secs(60)).await;
    let stored = http_events(&a, &god, "public", &id).await;
    assert!(stored.len() >= 8, "created, three tasks started and succeeded, succeeded: {stored:?}");
    assert_eq!(seqs(&frames), stored, "every event, in order, none twice");
    assert_eq!([seqs(&first), seqs(&rest)].concat(), stored, "a resume loses and repeats nothing");
    assert_eq!(frames.last().unwrap()["event_type"], "execution_succeeded");
    for f in &frames {
        assert_eq!(f["type"], "event");
        assert_eq!(f["tenant_id"], "public");
        assert_eq!(f["execution_id"], id.as_str());
    }

    // With output_since, each task's output comes too, before the event it was kept with.
    let (mixed, code) = drain(&mut with_output).await;
    assert_eq!(code, 1000);
    let events_only: Vec<Value> = mixed.iter().filter(|f| f["type"] == "event").cloned().collect();
    assert_eq!(seqs(&events_only), stored);
    for (task, text) in [("one", "one\n"), ("two", "two\n"), ("three", "three\n")] {
        let piece = mixed
            .iter()
            .position(|f| f["type"] == "output" && f["task_name"] == task)
            .unwrap_or_else(|| panic!("no output of {task}: {mixed:?}"));
        assert_eq!(mixed[piece]["stdout"], text);
        assert_eq!(mixed[piece]["ended"], true);
        assert!(mixed[piece]["output_seq"].as_i64().is_some());
        let succeeded =
            mixed.iter().position(|f| f["event_type"] == "task_succeeded" && f["task_name"] == task).unwrap();
        assert!(piece < succeeded, "{task}'s output before its success: {mixed:?}");
    }

    // The feed saw the same events, and nothing twice.
    let mut fed = Vec::new();
    while fed.last() != stored.last() {
        match next(&mut feed, Duration::from_secs(30)).await {
            Got::Frame(f) if f["execution_id"] == id.as_str() => fed.push(f["sequence_num"].as_i64().unwrap()),
            Got::Frame(_) => {}
            other => panic!("the tenant feed ended: {other:?}"),
        }
    }
    assert_eq!(fed, stored);

    // Another tenant's execution id is refused over a socket exactly as over HTTP.
    let (status, body) = a.call(Method::POST, "/v1/tenants", Some(&god), Some(json!({"name": "acme"}))).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = a.call(Method::POST, "/v1/tenants/acme/keys", Some(&god), Some(json!({"name": "r"}))).await;
    assert_eq!(status, 201, "{body}");
    let acme = body["key"].as_str().unwrap().to_owned();
    let (http, _) = b.get(&format!("/v1/tenants/acme/executions/{id}"), Some(&acme)).await;
    assert_eq!(http, 404);
    assert_eq!(refused(&b, &format!("/v1/ws/tenants/acme/executions/{id}"), Some(&acme)).await, 404);
    let (http, _) = b.get(&format!("/v1/tenants/public/executions/{id}"), Some(&acme)).await;
    assert_eq!(http, 403);
    assert_eq!(refused(&b, &path, Some(&acme)).await, 403);
    assert_eq!(refused(&b, &format!("/v1/ws/delivery/exec_events:{id}"), Some(&acme)).await, 404);

    // A key revoked through A closes its socket on B (the invalidation NOTIFY).
    let (status, body) =
        a.call(Method::POST, "/v1/tenants/public/keys", Some(&god), Some(json!({"name": "short-lived"}))).await;
    assert_eq!(status, 201, "{body}");
    let (reader, reader_id) = (body["key"].as_str().unwrap().to_owned(), body["id"].as_str().unwrap().to_owned());
    let mut watching = connect(&b, "/v1/ws/tenants/public/executions", Some(&reader)).await.unwrap();
    let started = Instant::now();
    let (status, body) = a.call(Method::DELETE, &format!("/v1/auth/keys/{reader_id}"), Some(&god), None).await;
    assert_eq!(status, 200, "{body}");
    assert!(matches!(next(&mut watching, Duration::from_secs(10)).await, Got::Closed(1008)));
    eprintln!("a key revoked through A: B closed its socket {:?} after the request", started.elapsed());

    // A deleted tenant's socket, open on B, closes (1008) when A deletes the tenant.
    let acme_file = pack(home_a.path(), "live", "1.0.0", WORKFLOWS, &[]);
    assert_eq!(upload(&a, "acme", &god, &acme_file).await.0, 201);
    let (_, accepted, _) = execute(&a, "acme", &god, "forever", json!({}), None).await;
    let held = accepted["execution_id"].as_str().unwrap().to_owned();
    let mut doomed = connect(&b, &format!("/v1/ws/tenants/acme/executions/{held}"), Some(&acme)).await.unwrap();
    let _created = next(&mut doomed, Duration::from_secs(10)).await;
    let started = Instant::now();
    let (status, body) = a.call(Method::DELETE, "/v1/tenants/acme", Some(&god), None).await;
    assert_eq!(status, 200, "{body}");
    let deleted_after = started.elapsed();
    let code = loop {
        match next(&mut doomed, Duration::from_secs(10)).await {
            Got::Frame(_) => {}
            Got::Closed(code) => break code,
            Got::Ended => panic!("no close frame"),
        }
    };
    let closed_after = started.elapsed();
    assert_eq!(code, 1008);
    eprintln!("tenant deleted through A in {deleted_after:?}; B closed its socket {closed_after:?} after the request");
    a.stop();
    b.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn tickets_revocation_and_the_reference_delivery_protocol_on_sqlite() {
    let home = tempfile::tempdir().unwrap();
    // A short drain: the running task at the end need not be waited for.
    let server = Server::start(home.path(), &["--shutdown-timeout", "2"], &[]);
    let god = bootstrap_key(home.path());
    let file = pack(home.path(), "live", "1.0.0", WORKFLOWS, &[]);
    assert_eq!(upload(&server, "public", &god, &file).await.0, 201);
    let (_, accepted, _) = execute(&server, "public", &god, "forever", json!({}), None).await;
    let id = accepted["execution_id"].as_str().unwrap().to_owned();
    let path = format!("/v1/ws/tenants/public/executions/{id}");

    // Not an upgrade: 426 with the envelope. No key: 401.
    let (status, body) = server.get(&path, Some(&god)).await;
    assert_eq!((status, body["code"].as_str()), (426, Some("upgrade_required")), "{body}");
    assert_eq!(refused(&server, &path, None).await, 401);

    // A ticket opens one socket, once, with no header.
    let (status, ticket) = server.call(Method::POST, "/v1/auth/ws-ticket", Some(&god), None).await;
    assert_eq!(status, 200, "{ticket}");
    assert_eq!(ticket["expires_in_seconds"], 60);
    let token = ticket["ticket"].as_str().unwrap().to_owned();
    let mut ws = connect(&server, &format!("{path}?token={token}"), None).await.unwrap();
    match next(&mut ws, Duration::from_secs(10)).await {
        Got::Frame(f) => assert_eq!(f["event_type"], "execution_created"),
        other => panic!("{other:?}"),
    }
    drop(ws);
    assert_eq!(refused(&server, &format!("{path}?token={token}"), None).await, 401, "a ticket is single-use");
    assert_eq!(refused(&server, &format!("{path}?token=clt_nonsense"), None).await, 401);

    // A key holds at most 64 sockets at once.
    let mut held = Vec::new();
    for _ in 0..64 {
        held.push(connect(&server, "/v1/ws/tenants/public/executions", Some(&god)).await.unwrap());
    }
    assert_eq!(refused(&server, "/v1/ws/tenants/public/executions", Some(&god)).await, 429);
    drop(held);
    tokio::time::sleep(Duration::from_millis(300)).await;

    // A revoked key's open socket closes with 1008.
    let (status, body) =
        server.call(Method::POST, "/v1/tenants/public/keys", Some(&god), Some(json!({"name": "watcher"}))).await;
    assert_eq!(status, 201, "{body}");
    let (reader, reader_id) = (body["key"].as_str().unwrap().to_owned(), body["id"].as_str().unwrap().to_owned());
    let mut ws = connect(&server, &path, Some(&reader)).await.unwrap();
    let _created = next(&mut ws, Duration::from_secs(10)).await;
    let started = Instant::now();
    let (status, body) = server.call(Method::DELETE, &format!("/v1/auth/keys/{reader_id}"), Some(&god), None).await;
    assert_eq!(status, 200, "{body}");
    let code = loop {
        match next(&mut ws, Duration::from_secs(10)).await {
            Got::Frame(_) => {}
            Got::Closed(code) => break code,
            Got::Ended => panic!("no close frame"),
        }
    };
    assert_eq!(code, 1008);
    eprintln!("the revoked key's socket closed {:?} after the revoke request began", started.elapsed());

    // The reference delivery protocol: welcome, then a push per event (base64 JSON), acks.
    let (_, ticket) = server.call(Method::POST, "/v1/auth/ws-ticket", Some(&god), None).await;
    let token = ticket["ticket"].as_str().unwrap();
    let delivery = format!("/v1/ws/delivery/exec_events:{id}");
    let mut ws = connect(&server, &format!("{delivery}?token={token}"), None).await.unwrap();
    let Got::Frame(welcome) = next(&mut ws, Duration::from_secs(10)).await else { panic!("no welcome") };
    assert_eq!(welcome["type"], "welcome");
    assert_eq!(welcome["protocol_version"], 1);
    assert!(welcome["max_known_id"].as_i64().unwrap() >= 1, "{welcome}");
    ws.send(Message::Text(json!({"type": "hello", "protocol_version": 1, "since_id": null}).to_string().into()))
        .await
        .unwrap();
    let mut kinds = Vec::new();
    while kinds.len() < 2 {
        let Got::Frame(push) = next(&mut ws, Duration::from_secs(10)).await else { panic!("no push") };
        assert_eq!(push["type"], "push");
        assert_eq!(push["protocol_version"], 1);
        assert_eq!(push["kind"], "execution_event");
        assert_eq!(push["recipient"], format!("exec_events:{id}"));
        assert_eq!(push["tenant_id"], "public");
        let payload = base64::engine::general_purpose::STANDARD.decode(push["payload_b64"].as_str().unwrap()).unwrap();
        let event: Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(event["sequence_num"], push["id"]);
        assert_eq!(event["execution_id"], id.as_str());
        kinds.push(event["event_type"].as_str().unwrap().to_owned());
        ws.send(Message::Text(json!({"type": "ack", "protocol_version": 1, "id": push["id"]}).to_string().into()))
            .await
            .unwrap();
    }
    assert_eq!(kinds, ["execution_created", "task_started"]);
    // Another protocol version: 4426. A malformed frame: 4400.
    ws.send(Message::Text(json!({"type": "ack", "protocol_version": 2, "id": 1}).to_string().into())).await.unwrap();
    assert_eq!(drain(&mut ws).await.1, 4426);
    let mut ws = connect(&server, &delivery, Some(&god)).await.unwrap();
    let _welcome = next(&mut ws, Duration::from_secs(10)).await;
    ws.send(Message::Text("not json".into())).await.unwrap();
    assert_eq!(drain(&mut ws).await.1, 4400);
    assert_eq!(refused(&server, "/v1/ws/delivery/somebody", Some(&god)).await, 400);

    // Shutdown closes what is open with 1001.
    let mut ws = connect(&server, &path, Some(&god)).await.unwrap();
    let _created = next(&mut ws, Duration::from_secs(10)).await;
    let (status, _) =
        server.call(Method::POST, &format!("/v1/tenants/public/executions/{id}/cancel"), Some(&god), None).await;
    assert_eq!(status, 200);
    // The cancel ends the execution: its socket closes with 1000 after the final event.
    let (frames, code) = drain(&mut ws).await;
    assert_eq!(code, 1000, "{frames:?}");
    assert_eq!(frames.last().unwrap()["event_type"], "execution_cancelled");
    let (_, accepted, _) = execute(&server, "public", &god, "forever", json!({}), None).await;
    let id = accepted["execution_id"].as_str().unwrap().to_owned();
    let mut ws = connect(&server, &format!("/v1/ws/tenants/public/executions/{id}"), Some(&god)).await.unwrap();
    let _created = next(&mut ws, Duration::from_secs(10)).await;
    server.signal("TERM");
    let code = loop {
        match next(&mut ws, Duration::from_secs(10)).await {
            Got::Frame(_) => {}
            Got::Closed(code) => break code,
            Got::Ended => panic!("no close frame at shutdown"),
        }
    };
    assert_eq!(code, 1001);
    assert!(server.wait().success());
}
