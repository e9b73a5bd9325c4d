//! The client side of the live sockets (docs/live.md): an execution's events pushed as they are
//! committed, resumed with `since` after a disconnect.

use std::time::Duration;

use futures::StreamExt as _;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::client::Client;

/// An open socket.
pub struct Socket(WebSocketStream<MaybeTlsStream<TcpStream>>);

impl std::fmt::Debug for Socket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Socket")
    }
}

/// What a socket gave next.
#[derive(Debug)]
pub enum Received {
    /// One event, with the fields of the events route.
    Event(Value),
    /// One piece of a task's output (a socket opened with `output_since`).
    Output(Value),
    /// The server closed the socket with this code (1000: the execution finished).
    Closed(u16),
    /// The connection ended without a close.
    Lost,
}

/// How long opening a socket may take.
const CONNECT: Duration = Duration::from_secs(10);

impl Client {
    /// Opens the WebSocket at `path` (under `/v1/ws/`) with this client's key.
    ///
    /// # Errors
    /// Why it could not be opened, as text: an HTTP answer instead of the upgrade (a proxy that
    /// does not pass upgrades, an old server), or no connection.
    pub async fn socket(&self, path: &str) -> Result<Socket, String> {
        let url = self.url().replacen("https://", "wss://", 1).replacen("http://", "ws://", 1);
        let mut request = format!("{url}{path}").into_client_request().map_err(|e| e.to_string())?;
        if let Some(key) = self.key() {
            let value =
                format!("Bearer {}", key.expose()).parse().map_err(|_| "the key is not a valid header value")?;
            request.headers_mut().insert("authorization", value);
        }
        match tokio::time::timeout(CONNECT, tokio_tungstenite::connect_async(request)).await {
            Ok(Ok((ws, _))) => Ok(Socket(ws)),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("no answer".into()),
        }
    }
}

impl Socket {
    /// The next event, or how the socket ended.
    pub async fn next(&mut self) -> Received {
        loop {
            match self.0.next().await {
                Some(Ok(Message::Text(text))) => {
                    let Ok(Value::Object(mut frame)) = serde_json::from_str::<Value>(text.as_str()) else { continue };
                    let kind = frame.remove("type").and_then(|t| t.as_str().map(str::to_owned));
                    // The events route's fields, whichever way they came.
                    frame.remove("tenant_id");
                    frame.remove("execution_id");
                    match kind.as_deref() {
                        Some("event") => return Received::Event(Value::Object(frame)),
                        Some("output") => return Received::Output(Value::Object(frame)),
                        _ => {}
                    }
                }
                Some(Ok(Message::Close(frame))) => return Received::Closed(frame.map_or(1005, |f| f.code.into())),
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return Received::Lost,
            }
        }
    }

    /// Closes the socket politely.
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(1), self.0.close(None)).await;
    }
}
