//! The start of a session: read and check `hello`, reconcile what the runner says it holds
//! with what the store says it was given, and build the `welcome`.

use std::collections::BTreeSet;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use futures_util::stream::SplitStream;
use futures_util::StreamExt as _;
use kiln_protocol::limits::{MAX_CAPABILITIES, MAX_NAME_BYTES};
use kiln_protocol::{
    now_millis, validate, AckedSeq, AttemptRef, CloseCode, HeldState, Hello, RunnerMessage,
    ServerMessage, SessionId, Welcome, PROTOCOL_VERSION,
};

use crate::hub::AttemptKey;
use crate::model::{AttemptState, RunnerAnnouncement, RunnerRecord};
use crate::server::state::AppState;
use crate::store::StoreError;

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

/// What the control plane decided about a runner's hello.
#[derive(Debug, Default)]
pub struct Reconciled {
    /// The answer to send.
    pub welcome: Option<Welcome>,
    /// Attempts the runner runs that it should stop (ended here meanwhile).
    pub cancels: Vec<ServerMessage>,
    /// Attempts that count against the runner's slots.
    pub active: BTreeSet<AttemptKey>,
}

/// Compares the runner's announced attempts with the store. Announced attempts that the
/// store ended without a report (lost, cancelled) are cancelled; attempts the store gave
/// the runner that it does not announce are lost (or requeued if never accepted).
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

/// Logs capabilities and labels a hello claims that the runner was not registered with:
/// they are ignored (an operator adds them with `kiln runners update`).
fn note_unregistered_claims(runner: &RunnerRecord, hello: &Hello) {
    let extra: Vec<&String> = hello
        .capabilities
        .iter()
        .filter(|c| !runner.capabilities.contains(c))
        .collect();
    let other_labels: Vec<String> = hello
        .labels
        .iter()
        .filter(|(k, v)| runner.labels.get(*k) != Some(*v))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if !extra.is_empty() || !other_labels.is_empty() {
        tracing::info!(runner = %runner.id, capabilities = ?extra, labels = ?other_labels,
            "runner claims capabilities or labels it was not registered with; ignored (kiln runners update gives them)");
    }
}

pub async fn reconcile(
    state: &AppState,
    runner: &RunnerRecord,
    hello: &Hello,
    session_id: SessionId,
) -> Result<Reconciled, StoreError> {
    let now = now_millis();
    let announcement = RunnerAnnouncement {
        name: hello.name.clone(),
        max_concurrent: hello.max_concurrent,
        version: hello.version.clone(),
    };
    note_unregistered_claims(runner, hello);
    state
        .engine
        .store
        .announce_runner(runner.id, &announcement, now)
        .await?;
    let mut reconciled = Reconciled::default();
    let mut acked = Vec::new();
    let mut unknown = Vec::new();
    let mut announced = BTreeSet::new();
    for running in &hello.running {
        announced.insert((running.task_id, running.attempt));
        let record = state
            .engine
            .store
            .attempt(running.task_id, running.attempt)
            .await?;
        let Some(record) = record.filter(|r| r.runner_id == runner.id) else {
            tracing::warn!(runner = %runner.id, task = %running.task_id, attempt = running.attempt,
                "runner announced an attempt that is not its own");
            unknown.push(AttemptRef {
                task_id: running.task_id,
                attempt: running.attempt,
            });
            continue;
        };
        acked.push(AckedSeq {
            task_id: record.task_id,
            attempt: record.attempt,
            seq: record.acked_seq,
        });
        let open = !record.state.is_terminal();
        match running.state {
            HeldState::Running if open => {
                reconciled.active.insert((record.task_id, record.attempt));
                let task = state.engine.store.task(record.task_id).await?;
                if task.is_some_and(|t| t.cancel_requested_at.is_some()) {
                    reconciled.cancels.push(ServerMessage::Cancel {
                        task_id: record.task_id,
                        attempt: record.attempt,
                        reason: "cancelled by operator".into(),
                    });
                }
            }
            HeldState::Running if record.outcome.is_none() => {
                reconciled.cancels.push(ServerMessage::Cancel {
                    task_id: record.task_id,
                    attempt: record.attempt,
                    reason: format!("attempt already ended as {}", record.state),
                });
            }
            // Its `finished` event is on the way and will end it.
            HeldState::Running | HeldState::Finished => {}
            HeldState::Abandoned => {
                if open {
                    tracing::warn!(runner = %runner.id, task = %record.task_id, attempt = record.attempt,
                        "runner restarted while the attempt ran; attempt lost");
                    let next = state
                        .engine
                        .store
                        .lose_attempt(record.task_id, record.attempt, runner.id, now)
                        .await?;
                    state.engine.task_moved(record.task_id, next);
                }
            }
        }
    }
    reconcile_workspaces(state, runner, hello, &mut reconciled).await?;
    for open in state.engine.store.open_attempts(runner.id).await? {
        if announced.contains(&(open.task_id, open.attempt)) {
            continue;
        }
        tracing::warn!(runner = %runner.id, task = %open.task_id, attempt = open.attempt,
            "runner no longer holds its attempt");
        let store = &state.engine.store;
        let next = match open.state {
            // Never accepted: the assign was lost in flight. Not an attempt that ran.
            AttemptState::Assigned => {
                store
                    .reject_attempt(open.task_id, open.attempt, runner.id, now)
                    .await?
            }
            _ => {
                store
                    .lose_attempt(open.task_id, open.attempt, runner.id, now)
                    .await?
            }
        };
        state.engine.task_moved(open.task_id, next);
    }
    reconciled.welcome = Some(Welcome {
        runner_id: runner.id,
        session_id,
        heartbeat_interval_ms: u64::try_from(state.engine.settings.heartbeat_interval.as_millis())
            .unwrap_or(u64::MAX),
        acked,
        unknown,
    });
    Ok(reconciled)
}

/// Sessions the runner holds that are closed here are closed there; open sessions bound to
/// it that it no longer holds (it restarted) are lost.
async fn reconcile_workspaces(
    state: &AppState,
    runner: &RunnerRecord,
    hello: &Hello,
    reconciled: &mut Reconciled,
) -> Result<(), StoreError> {
    let open = state.engine.store.open_workspaces_of(runner.id).await?;
    for held in &hello.workspaces {
        if !open.iter().any(|w| w.id == *held) {
            reconciled.cancels.push(ServerMessage::CloseWorkspace {
                workspace_id: *held,
            });
        }
    }
    for workspace in open {
        if !hello.workspaces.contains(&workspace.id) {
            tracing::warn!(runner = %runner.id, workspace = %workspace.id, "runner no longer holds its workspace session");
            state
                .engine
                .end_workspace(workspace.id, crate::model::WorkspaceState::Lost)
                .await?;
        }
    }
    Ok(())
}
