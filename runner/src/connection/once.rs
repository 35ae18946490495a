//! One connection to the control plane: hello, welcome, then one `select!` over the
//! heartbeat, the outbox and inbound frames.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use kiln_protocol::limits::MAX_FRAME_BYTES;
use kiln_protocol::{
    now_millis, CloseCode, Hello, RunnerMessage, ServerMessage, Welcome, PROTOCOL_VERSION,
};
use tokio::net::TcpStream;
use tokio::time::{sleep_until, Instant};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::header::AUTHORIZATION;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WsCloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

use crate::daemon::Runtime;
use crate::status::Link;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Time to open the socket, including the HTTP upgrade.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Time the control plane has to answer hello.
const WELCOME_TIMEOUT: Duration = Duration::from_secs(10);

/// Heartbeat periods of silence from the control plane before the link counts as dead.
const SILENT_PERIODS_ALLOWED: u32 = 3;

/// Event batches sent per loop turn before inbound frames (acks) are read again, so that
/// neither side can block writing to a peer that is itself blocked writing.
const BATCHES_PER_TURN: usize = 16;

/// Read buffer of the socket: frames to a runner are small (see NOTES: 4 KiB instead of
/// 128 KiB saves most of an idle connection's memory).
const READ_BUFFER_BYTES: usize = 4 * 1024;

/// The control plane refused this runner; retrying would not help.
#[derive(Debug, thiserror::Error)]
#[error("control plane refused this runner: {0}")]
pub struct Refused(pub String);

/// How a connection ended without error.
pub enum Ended {
    /// The runner asked it to stop.
    Stopped,
    /// The connection was lost; reconnect.
    Lost(String),
}

/// How a connection failed.
pub enum Failure {
    /// Do not retry.
    Refused(Refused),
    /// Retry after backoff.
    Transient(String),
}

/// Connects once and serves the connection until it ends.
pub async fn connect_and_serve(
    runtime: &Runtime,
    stop: &CancellationToken,
) -> Result<Ended, Failure> {
    let mut socket = tokio::select! {
        socket = connect(runtime) => socket?,
        () = stop.cancelled() => return Ok(Ended::Stopped),
    };
    // Hello carries the current state; older notices are moot.
    runtime.shared.notices.take();
    let welcome = handshake(runtime, &mut socket).await?;
    let interval = Duration::from_millis(welcome.heartbeat_interval_ms.max(100));
    runtime.apply_welcome(&welcome);
    let _link = runtime.outbox.link_up();
    runtime.board.set_link(Link {
        connected: true,
        connection_id: Some(welcome.connection_id),
        since: Some(now_millis()),
        last_error: None,
    });
    tracing::info!(connection = %welcome.connection_id, "connected to control plane");
    serve(runtime, socket, interval, stop).await
}

async fn connect(runtime: &Runtime) -> Result<Socket, Failure> {
    let url = runtime.identity.server_url.runner_socket();
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| Failure::Refused(Refused(format!("bad server URL {url}: {e}"))))?;
    let bearer = format!("Bearer {}", runtime.token.get().expose())
        .parse()
        .map_err(|_| {
            Failure::Refused(Refused(
                "runner token has characters not allowed in a header".into(),
            ))
        })?;
    request.headers_mut().insert(AUTHORIZATION, bearer);
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        .max_message_size(Some(MAX_FRAME_BYTES))
        .max_frame_size(Some(MAX_FRAME_BYTES));
    let connector = tokio_tungstenite::Connector::Rustls(Arc::clone(&runtime.tls));
    let connecting = tokio_tungstenite::connect_async_tls_with_config(
        request,
        Some(config),
        false,
        Some(connector),
    );
    match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
        Err(_) => Err(Failure::Transient(format!("connecting to {url} timed out"))),
        Ok(Ok((socket, _))) => Ok(socket),
        Ok(Err(WsError::Http(response))) => {
            let status = response.status();
            let body = response
                .body()
                .as_deref()
                .map(String::from_utf8_lossy)
                .unwrap_or_default()
                .into_owned();
            let reason = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
                .unwrap_or(body);
            if status.as_u16() == 401 || status.as_u16() == 403 {
                Err(Failure::Refused(Refused(format!("{status}: {reason}"))))
            } else {
                Err(Failure::Transient(format!(
                    "{url} answered {status}: {reason}"
                )))
            }
        }
        Ok(Err(e)) => Err(Failure::Transient(format!(
            "cannot connect to {url}: {}",
            crate::register::error_chain(&e)
        ))),
    }
}

async fn send(socket: &mut Socket, message: &RunnerMessage) -> Result<(), Failure> {
    let text = serde_json::to_string(message).unwrap_or_default();
    socket
        .send(Message::Text(text.into()))
        .await
        .map_err(|e| Failure::Transient(format!("send failed: {e}")))
}

async fn handshake(runtime: &Runtime, socket: &mut Socket) -> Result<Welcome, Failure> {
    let hello = Hello {
        protocol: PROTOCOL_VERSION,
        version: env!("CARGO_PKG_VERSION").to_owned(),
        name: runtime.name.clone(),
        capabilities: runtime.capabilities.clone(),
        labels: runtime.labels.clone(),
        max_concurrent: runtime.max_concurrent,
        sandbox_id: runtime.sandbox_id.clone(),
        cached_projects: runtime.shared.mirrors.cached_projects(),
        running: runtime.outbox.announce(),
        workspaces: runtime.shared.workspaces.ids(),
    };
    send(socket, &RunnerMessage::Hello(hello)).await?;
    let deadline = Instant::now() + WELCOME_TIMEOUT;
    loop {
        let frame = tokio::select! {
            frame = socket.next() => frame,
            () = sleep_until(deadline) => return Err(Failure::Transient("no welcome within 10s".into())),
        };
        match frame {
            Some(Ok(Message::Text(text))) => match serde_json::from_str::<ServerMessage>(&text) {
                Ok(ServerMessage::Welcome(welcome)) => return Ok(welcome),
                Ok(other) => tracing::warn!(message = ?other, "frame before welcome ignored"),
                Err(e) => return Err(Failure::Transient(format!("malformed welcome: {e}"))),
            },
            Some(Ok(Message::Close(frame))) => return Err(closed(frame)),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(Failure::Transient(format!("socket error: {e}"))),
            None => return Err(Failure::Transient("closed before welcome".into())),
        }
    }
}

/// Maps a close frame to a failure: fatal codes stop the runner.
fn closed(frame: Option<CloseFrame>) -> Failure {
    let Some(frame) = frame else {
        return Failure::Transient("control plane closed the connection".into());
    };
    let code = u16::from(frame.code);
    let reason = format!("closed by control plane ({code}): {}", frame.reason);
    match CloseCode::from_code(code) {
        Some(code) if code.is_fatal() => Failure::Refused(Refused(reason)),
        _ => Failure::Transient(reason),
    }
}

async fn serve(
    runtime: &Runtime,
    mut socket: Socket,
    interval: Duration,
    stop: &CancellationToken,
) -> Result<Ended, Failure> {
    let mut heartbeat = tokio::time::interval(interval);
    let silence_limit = interval * SILENT_PERIODS_ALLOWED;
    let mut silent_until = Instant::now() + silence_limit;
    let mut told_draining = false;
    loop {
        if !told_draining && runtime.attempts.is_draining() {
            send(&mut socket, &RunnerMessage::Draining).await?;
            told_draining = true;
        }
        tokio::select! {
            () = runtime.draining.cancelled(), if !told_draining => {}
            _ = heartbeat.tick() => {
                let beat = RunnerMessage::Heartbeat {
                    running: runtime.attempts.count(),
                    free_slots: runtime.attempts.free_slots(),
                };
                send(&mut socket, &beat).await?;
                socket.send(Message::Ping(Vec::new().into())).await
                    .map_err(|e| Failure::Transient(format!("send failed: {e}")))?;
            }
            () = runtime.shared.notices.ready() => {
                for notice in runtime.shared.notices.take() {
                    send(&mut socket, &notice).await?;
                }
            }
            () = runtime.outbox.changed() => {
                for batch in runtime.outbox.take_unsent(BATCHES_PER_TURN) {
                    let (task_id, attempt) = batch.key;
                    send(&mut socket, &RunnerMessage::Events { task_id, attempt, events: batch.events }).await?;
                }
            }
            frame = socket.next() => {
                silent_until = Instant::now() + silence_limit;
                match frame {
                    Some(Ok(Message::Text(text))) => {
                        for reply in runtime.on_message(&text) {
                            send(&mut socket, &reply).await?;
                        }
                    }
                    Some(Ok(Message::Close(frame))) => {
                        return match closed(frame) {
                            Failure::Transient(reason) => Ok(Ended::Lost(reason)),
                            refused => Err(refused),
                        };
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Ok(Ended::Lost(format!("socket error: {e}"))),
                    None => return Ok(Ended::Lost("connection closed".into())),
                }
            }
            () = sleep_until(silent_until) => {
                return Ok(Ended::Lost(format!("no answer from control plane for {}s", silence_limit.as_secs())));
            }
            () = stop.cancelled() => {
                let frame = CloseFrame { code: WsCloseCode::Normal, reason: "runner stopping".into() };
                let _ = socket.close(Some(frame)).await;
                return Ok(Ended::Stopped);
            }
        }
    }
}
