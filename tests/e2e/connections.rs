//! Slow and abusive connections against the real binary: 500 clients sending their headers a
//! byte a second and 100 idle keep-alive connections are closed by the header and idle
//! timeouts while a normal request is still answered at once; past the connection cap a new
//! connection is closed on arrival.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::Server;

/// Opens a connection to `url`'s host and port.
async fn connect(url: &str) -> TcpStream {
    TcpStream::connect(url.trim_start_matches("http://")).await.expect("the server accepts")
}

/// Reads until the server closes the connection (or `limit` passes); how long that took.
async fn until_closed(mut read: tokio::net::tcp::OwnedReadHalf, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    let closed = tokio::time::timeout(limit, async {
        loop {
            match read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    closed.ok().map(|()| started.elapsed())
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_and_idle_connections_are_closed_and_others_are_still_served() {
    let home = tempfile::tempdir().unwrap();
    let server = Server::start(home.path(), &["--header-read-timeout", "2s", "--idle-timeout", "3s"], &[]);
    let limit = Duration::from_secs(15);
    let mut slow = Vec::new();
    for _ in 0..500 {
        let (read, mut write) = connect(&server.url).await.into_split();
        write.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        // A header byte a second, for as long as the server lets it.
        tokio::spawn(async move {
            for _ in 0..20 {
                tokio::time::sleep(Duration::from_secs(1)).await;
                if write.write_all(b"X").await.is_err() {
                    return;
                }
            }
        });
        slow.push(tokio::spawn(until_closed(read, limit)));
    }
    let mut idle = Vec::new();
    for _ in 0..100 {
        let stream = connect(&server.url).await;
        let (read, mut write) = stream.into_split();
        write.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        idle.push((tokio::spawn(until_closed(read, limit)), write));
    }
    // Meanwhile a normal request is answered at once.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let client = reqwest::Client::new();
    let mut times = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let res = client.get(format!("{}/health", server.url)).send().await.unwrap();
        assert_eq!(res.status(), 200);
        times.push(started.elapsed());
    }
    times.sort();
    println!("/health beside 600 slow and idle connections: {times:?}");
    assert!(times[2] < Duration::from_millis(100), "the median request took {:?}", times[2]);

    let mut slowest = Duration::ZERO;
    for s in slow {
        let closed = s.await.unwrap().expect("a slow client's connection was closed");
        slowest = slowest.max(closed);
    }
    let mut idlest = Duration::ZERO;
    for (i, _write) in idle {
        let closed = i.await.unwrap().expect("an idle connection was closed");
        idlest = idlest.max(closed);
    }
    println!("500 slow clients closed within {slowest:?} (header timeout 2s); 100 idle within {idlest:?} (idle 3s)");
    assert!(slowest < Duration::from_secs(6), "{slowest:?}");
    assert!(idlest < Duration::from_secs(7), "{idlest:?}");
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connection_past_the_cap_is_closed_on_arrival() {
    let home = tempfile::tempdir().unwrap();
    let server = Server::start(home.path(), &["--max-connections", "20"], &[]);
    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(connect(&server.url).await);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (read, _write) = connect(&server.url).await.into_split();
    let closed = until_closed(read, Duration::from_secs(5)).await;
    println!("the 21st connection was closed after {closed:?}");
    assert!(closed.is_some_and(|t| t < Duration::from_secs(1)), "{closed:?}");
    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(server.get("/health", None).await.0, 200, "room again once others closed");
    server.stop();
}
