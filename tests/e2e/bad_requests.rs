//! Requests the HTTP library (hyper) refuses before any route sees them, over a raw socket to
//! the real binary. hyper writes these answers itself, with an empty body, so they cannot
//! carry the JSON envelope; docs/api.md lists them. The test pins the status of each, and
//! that the server goes on serving.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::harness::Server;

/// Sends `raw` and reads the answer's status line and body until the server closes.
fn send(server: &Server, raw: &[u8]) -> (String, String) {
    let addr = server.url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // The server may answer and close before it has read all of a large request.
    let _ = stream.write_all(raw);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text.lines().next().unwrap_or_default().to_owned();
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_refused_before_routing_get_a_bare_431_or_400_and_the_server_goes_on() {
    let home = tempfile::tempdir().unwrap();
    let server = Server::start(home.path(), &["--workers", "0"], &[]);
    let many: String = (0..150).map(|i| format!("X-Header-{i}: v\r\n")).collect();
    let cases: [(&str, Vec<u8>, &str); 3] = [
        ("over 100 headers", format!("GET /health HTTP/1.1\r\nHost: x\r\n{many}\r\n").into_bytes(), "431"),
        (
            "a 1 MB header",
            format!("GET /health HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(1 << 20)).into_bytes(),
            "431",
        ),
        ("a garbage request line", b"GARBAGE\r\n\r\n".to_vec(), "400"),
    ];
    for (what, raw, code) in cases {
        let (status, body) = send(&server, &raw);
        assert!(status.starts_with(&format!("HTTP/1.1 {code} ")), "{what}: {status:?}");
        assert_eq!(body, "", "{what}: hyper's own answer has no body");
    }
    let (status, body) = send(&server, b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert_eq!(body, r#"{"status":"ok"}"#);
    server.stop();
}
