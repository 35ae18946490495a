//! The start of a connection: read and check `hello`, reconcile what the runner says it holds
//! with what the store says it was given, and build the `welcome`.

use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use futures_util::stream::SplitStream;
use futures_util::StreamExt as _;
use kiln_protocol::limits::{MAX_CAPABILITIES, MAX_NAME_BYTES};
use kiln_protocol::{validate, CloseCode, Hello, RunnerMessage, PROTOCOL_VERSION};

use crate::model::RunnerRecord;

/// Time a new socket has to send its `hello`. Generous for a slow link, short enough that
/// idle half-open sockets do not pile up.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a handshake was refused: a close code and its reason.
#[derive(Debug)]
pub struct Refusal {
    pub code: CloseCode,
    pub reason: String,
}

fn refuse(code: CloseCode, reason: impl Into<String>) -> Refusal {
    Refusal {
        code,
        reason: reason.into(),
    }
}

/// Waits for the first frame and checks that it is a valid `hello`.
pub async fn read_hello(stream: &mut SplitStream<WebSocket>) -> Result<Hello, Refusal> {
    let first = tokio::time::timeout(HELLO_TIMEOUT, next_text(stream))
        .await
        .map_err(|_| refuse(CloseCode::BadHandshake, "no hello within 10s"))??;
    let hello = match serde_json::from_str::<RunnerMessage>(&first) {
        Ok(RunnerMessage::Hello(hello)) => hello,
        Ok(_) => return Err(refuse(CloseCode::BadHandshake, "first frame must be hello")),
        Err(e) => {
            return Err(refuse(
                CloseCode::BadHandshake,
                format!("malformed hello: {e}"),
            ))
        }
    };
    if hello.protocol != PROTOCOL_VERSION {
        return Err(refuse(
            CloseCode::UnsupportedProtocol,
            format!(
                "runner speaks protocol {}, this control plane speaks {PROTOCOL_VERSION}",
                hello.protocol
            ),
        ));
    }
    check_hello(&hello).map_err(|reason| refuse(CloseCode::BadHandshake, reason))?;
    Ok(hello)
}

async fn next_text(stream: &mut SplitStream<WebSocket>) -> Result<String, Refusal> {
    loop {
        match stream.next().await {
            Some(Ok(Message::Text(text))) => return Ok(text.to_string()),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(Message::Binary(_))) => {
                return Err(refuse(
                    CloseCode::BadHandshake,
                    "binary frames are not part of the protocol",
                ))
            }
            Some(Ok(Message::Close(_))) | None => {
                return Err(refuse(CloseCode::BadHandshake, "closed before hello"))
            }
            Some(Err(e)) => {
                return Err(refuse(
                    CloseCode::BadHandshake,
                    format!("socket error: {e}"),
                ))
            }
        }
    }
}

fn check_hello(hello: &Hello) -> Result<(), String> {
    validate::name(&hello.name).map_err(|r| format!("hello.name {r}"))?;
    if hello.version.len() > MAX_NAME_BYTES {
        return Err("hello.version is too long".into());
    }
    if hello.capabilities.len() > MAX_CAPABILITIES || hello.labels.len() > MAX_CAPABILITIES {
        return Err(format!(
            "hello has more than {MAX_CAPABILITIES} capabilities or labels"
        ));
    }
    if hello.max_concurrent == 0 {
        return Err("hello.max_concurrent must be at least 1".into());
    }
    Ok(())
}

/// A sandbox runner's hello must name its own sandbox; other runners must name none.
pub fn check_sandbox(runner: &RunnerRecord, hello: &Hello) -> Result<(), Refusal> {
    let claimed = hello.sandbox_id.as_deref();
    let bound = runner.sandbox_id.map(|s| s.to_string());
    match (bound.as_deref(), claimed) {
        (Some(bound), Some(claimed)) if bound == claimed => Ok(()),
        (None, None) => Ok(()),
        (Some(bound), _) => Err(refuse(
            CloseCode::BadHandshake,
            format!("this token is bound to sandbox {bound}"),
        )),
        (None, Some(_)) => Err(refuse(
            CloseCode::BadHandshake,
            "this runner is not a sandbox runner",
        )),
    }
}
