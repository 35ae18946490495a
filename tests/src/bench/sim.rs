//! Simulated runners: each speaks the real protocol over its own real WebSocket to the real
//! control plane, without git or agents. Idle ones only heartbeat; workers accept every
//! assignment and finish it at once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use kiln_protocol::{
    now_millis, Event, EventBody, Hello, Outcome, OutcomeStatus, RegisterRequest, RegisterResponse,
    RunnerMessage, ServerMessage, PROTOCOL_VERSION,
};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

/// Read buffer of a simulated runner's socket: the bench process holds thousands.
const SIM_READ_BUFFER: usize = 4 * 1024;

/// Registrations in flight at once.
const REGISTER_CONCURRENCY: usize = 32;

/// What a simulated runner does with work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// Heartbeats only; takes no work (announces no free slot).
    Idle,
    /// Accepts each assignment and reports it finished at once, `slots` at a time.
    Worker {
        /// Concurrent assignments it announces.
        slots: u32,
    },
}

/// Counters shared by a fleet of simulated runners.
#[derive(Debug, Default)]
pub struct Counters {
    /// Runners that got their welcome.
    pub welcomed: AtomicU64,
    /// Finished events the control plane acknowledged (stored).
    pub finished: AtomicU64,
}

/// Registers `count` runners named `{prefix}-N` with one registration token (enough
/// uses); returns their tokens.
pub async fn register(
    url: &str,
    registration: &str,
    prefix: &str,
    count: usize,
    slots: u32,
) -> Vec<String> {
    let http = reqwest::Client::new();
    futures_util::stream::iter(0..count)
        .map(|i| {
            let http = http.clone();
            let request = RegisterRequest {
                name: format!("{prefix}-{i}"),
                capabilities: Vec::new(),
                labels: Default::default(),
                max_concurrent: slots.max(1),
            };
            async move {
                let response = http
                    .post(format!("{url}/v1/runners/register"))
                    .bearer_auth(registration)
                    .json(&request)
                    .send()
                    .await
                    .expect("register");
                assert!(
                    response.status().is_success(),
                    "register: {}",
                    response.status()
                );
                let registered: RegisterResponse = response.json().await.expect("register JSON");
                registered.runner_token
            }
        })
        .buffer_unordered(REGISTER_CONCURRENCY)
        .collect()
        .await
}

/// Starts one simulated runner; it runs until aborted.
pub fn spawn(
    url: &str,
    token: String,
    behaviour: Behaviour,
    counters: Arc<Counters>,
) -> JoinHandle<()> {
    let ws = format!("{}/v1/runners/connect", url.replacen("http", "ws", 1));
    tokio::spawn(async move {
        if let Err(error) = run(&ws, &token, behaviour, &counters).await {
            eprintln!("simulated runner stopped: {error}");
        }
    })
}

async fn run(
    ws: &str,
    token: &str,
    behaviour: Behaviour,
    counters: &Counters,
) -> anyhow::Result<()> {
    let mut request = ws.into_client_request()?;
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    let config = WebSocketConfig::default().read_buffer_size(SIM_READ_BUFFER);
    let (mut socket, _) =
        tokio_tungstenite::connect_async_with_config(request, Some(config), true).await?;
    let slots = match behaviour {
        Behaviour::Idle => 0,
        Behaviour::Worker { slots } => slots,
    };
    let hello = RunnerMessage::Hello(Hello {
        protocol: PROTOCOL_VERSION,
        version: "sim".into(),
        name: "sim".into(),
        capabilities: Vec::new(),
        labels: Default::default(),
        max_concurrent: slots.max(1),
        sandbox_id: None,
        cached_projects: Vec::new(),
        running: Vec::new(),
        workspaces: Vec::new(),
    });
    socket.send(text(&hello)?).await?;
    let heartbeat = match socket.next().await {
        Some(Ok(Message::Text(frame))) => match serde_json::from_str(&frame)? {
            ServerMessage::Welcome(welcome) => Duration::from_millis(welcome.heartbeat_interval_ms),
            other => anyhow::bail!("expected welcome, got {other:?}"),
        },
        other => anyhow::bail!("expected welcome, got {other:?}"),
    };
    counters.welcomed.fetch_add(1, Ordering::Relaxed);
    let mut ticker = tokio::time::interval(heartbeat);
    let mut running = 0u32;
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                let beat = RunnerMessage::Heartbeat { running, free_slots: slots.saturating_sub(running) };
                socket.send(text(&beat)?).await?;
            }
            frame = socket.next() => {
                let Some(Ok(Message::Text(frame))) = frame else { return Ok(()) };
                match serde_json::from_str(&frame)? {
                    ServerMessage::Assign { task, attempt } => {
                        running += 1;
                        let task_id = task.task_id;
                        socket.feed(text(&RunnerMessage::Accepted { task_id, attempt })?).await?;
                        let finished = Event {
                            seq: 1,
                            ts: now_millis(),
                            body: EventBody::Finished { outcome: succeeded() },
                        };
                        let events = RunnerMessage::Events { task_id, attempt, events: vec![finished] };
                        socket.send(text(&events)?).await?;
                    }
                    ServerMessage::Ack { .. } => {
                        running = running.saturating_sub(1);
                        counters.finished.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {}
                }
            }
        }
    }
}

fn succeeded() -> Outcome {
    Outcome {
        status: OutcomeStatus::Succeeded,
        exit_code: Some(0),
        signal: None,
        message: "simulated".into(),
        result: None,
        stop: None,
        iterations: None,
        usage: None,
        agent_session: None,
    }
}

fn text(message: &RunnerMessage) -> anyhow::Result<Message> {
    Ok(Message::Text(serde_json::to_string(message)?.into()))
}
