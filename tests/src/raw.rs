//! A raw WebSocket client that speaks (or abuses) the runner protocol by hand, for tests
//! that send hostile frames.

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// An open runner socket.
pub type RawSocket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Opens the runner socket with `token` (no hello sent).
pub async fn connect(
    url: &str,
    token: &str,
) -> Result<RawSocket, tokio_tungstenite::tungstenite::Error> {
    let ws = format!("{}/v1/runners/connect", url.replacen("http", "ws", 1));
    let mut request = ws.into_client_request()?;
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    // Allow sending frames larger than the server accepts.
    let config = WebSocketConfig::default()
        .max_message_size(None)
        .max_frame_size(None);
    let (socket, _) =
        tokio_tungstenite::connect_async_with_config(request, Some(config), false).await?;
    Ok(socket)
}

/// A valid hello for protocol `protocol`.
pub fn hello(protocol: u32, running: Value) -> Value {
    serde_json::json!({
        "type": "hello", "protocol": protocol, "version": "test", "name": "raw",
        "capabilities": [], "labels": {}, "max_concurrent": 1, "cached_projects": [],
        "running": running,
    })
}

/// Sends a text frame.
pub async fn send(socket: &mut RawSocket, text: impl Into<String>) {
    socket
        .send(Message::Text(text.into().into()))
        .await
        .expect("send");
}

/// Sends a text frame the server may cut off (the result is the server's business).
pub async fn send_unchecked(socket: &mut RawSocket, text: impl Into<String>) {
    let _ = socket.send(Message::Text(text.into().into())).await;
}

/// The next JSON frame, or the close code if the socket closes instead.
pub async fn next(socket: &mut RawSocket) -> Result<Value, Option<u16>> {
    loop {
        match socket.next().await {
            Some(Ok(Message::Text(text))) => {
                return Ok(serde_json::from_str(&text).expect("server JSON"))
            }
            Some(Ok(Message::Close(frame))) => return Err(frame.map(|f| u16::from(f.code))),
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return Err(None),
        }
    }
}
