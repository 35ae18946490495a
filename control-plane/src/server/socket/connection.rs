//! One runner connection: handshake, then a single loop over inbound frames, the outbound
//! queue, the heartbeat deadline and shutdown, each turned into one `Input` and handled in
//! one place.

use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt as _, StreamExt as _};
use kiln_protocol::{
    now_millis, CloseCode, ConnectionId, Event, RunnerId, RunnerMessage, ServerMessage, TaskId,
};
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};

use super::handshake;
use super::reader::{self, Inbound};
use crate::hub::{Connection, Outbound, OUTBOUND_QUEUE};
use crate::model::RunnerRecord;
use crate::server::per_address::Held;
use crate::server::state::AppState;
use crate::store::StoreError;
use crate::watchers::TaskUpdate;

/// WebSocket close code for "the server failed internally"; the runner reconnects.
const CLOSE_INTERNAL_ERROR: u16 = 1011;

/// Everything that can happen to a link.
enum Input {
    /// A frame from the runner, decoded.
    Frame(Inbound),
    /// The socket ended or failed.
    Gone,
    /// A frame to send, queued by the dispatcher or an API call.
    Outbound(ServerMessage),
    /// A newer connection of this runner took over.
    Superseded,
    /// The control plane closes this link (the runner was revoked).
    Closing(CloseCode, String),
    /// No frame arrived within the heartbeat timeout.
    HeartbeatMissed,
    /// The control plane is stopping.
    Shutdown,
}

/// How a link ends: the close frame to send, if any.
struct End {
    code: u16,
    reason: String,
}

impl End {
    fn with(code: CloseCode, reason: impl Into<String>) -> Self {
        Self {
            code: code.code(),
            reason: reason.into(),
        }
    }
}

struct Link {
    state: AppState,
    runner_id: RunnerId,
    connection_id: ConnectionId,
    sink: SplitSink<WebSocket, Message>,
}

/// Runs a runner's link from its first frame to its close.
pub async fn run(socket: WebSocket, runner: RunnerRecord, state: AppState, slot: Held) {
    let _counted = state.engine.metrics.connection();
    let (mut sink, mut stream) = socket.split();
    let hello = handshake::read_hello(&mut stream)
        .await
        .and_then(|hello| handshake::check_sandbox(&runner, &hello).map(|()| hello));
    drop(slot);
    let hello = match hello {
        Ok(hello) => hello,
        Err(refusal) => {
            tracing::warn!(runner = %runner.id, reason = %refusal.reason, "handshake refused");
            close(&mut sink, refusal.code.code(), &refusal.reason).await;
            return;
        }
    };
    let connection_id = ConnectionId::new();
    let reconciled =
        match crate::engine::reconcile::reconcile(&state.engine, &runner, &hello, connection_id)
            .await
        {
            Ok(reconciled) => reconciled,
            Err(error) => {
                tracing::error!(runner = %runner.id, error = %error, "could not reconcile runner");
                close(&mut sink, CLOSE_INTERNAL_ERROR, "internal error").await;
                return;
            }
        };
    let (outbound, rx) = mpsc::channel(OUTBOUND_QUEUE);
    state.engine.hub.attach(
        runner.id,
        Connection {
            connection_id,
            name: hello.name.clone(),
            // What it was registered with: a hello cannot claim more (an impostor with a
            // stolen token could otherwise draw any task).
            capabilities: runner.capabilities.iter().cloned().collect(),
            labels: runner.labels.clone(),
            max_concurrent: hello.max_concurrent,
            cached_projects: hello.cached_projects.iter().cloned().collect(),
            active: reconciled.active,
            idle_since: now_millis(),
            draining: false,
            paused: runner.paused_at.is_some(),
            sandbox: runner.sandbox_id.is_some(),
            last_frame: tokio::time::Instant::now(),
            outbound,
        },
    );
    tracing::info!(runner = %runner.id, name = %hello.name, connection = %connection_id, "runner connected");
    let mut link = Link {
        state,
        runner_id: runner.id,
        connection_id,
        sink,
    };
    let greeting = reconciled.welcome.into_iter().map(ServerMessage::Welcome);
    let drain = runner.drain_requested_at.map(|_| ServerMessage::Drain);
    let mut end = None;
    for message in greeting.chain(reconciled.cancels).chain(drain) {
        if let Err(e) = link.send(&message).await {
            end = Some(e);
            break;
        }
    }
    if end.is_none() && runner.rotation_requested_at.is_some() {
        if let Err(error) = link.state.engine.send_new_token(runner.id).await {
            tracing::error!(runner = %runner.id, error = %error, "cannot rotate the runner's token");
        }
    }
    let end = match end {
        Some(end) => end,
        None => link.serve(stream, rx).await,
    };
    let was_live = link
        .state
        .engine
        .hub
        .detach(link.runner_id, link.connection_id);
    if was_live {
        crate::liveness::watch(link.state.engine.clone(), link.runner_id);
    }
    tracing::info!(runner = %link.runner_id, connection = %link.connection_id, reason = %end.reason,
        was_live, "runner disconnected");
    close(&mut link.sink, end.code, &end.reason).await;
}

async fn close(sink: &mut SplitSink<WebSocket, Message>, code: u16, reason: &str) {
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    let _ = sink.send(Message::Close(Some(frame))).await;
}

impl Link {
    async fn serve(
        &mut self,
        stream: SplitStream<WebSocket>,
        mut outbound: mpsc::Receiver<Outbound>,
    ) -> End {
        let mut reader = reader::start(stream);
        let timeout = self.state.engine.settings.heartbeat_timeout();
        let mut deadline = Instant::now() + timeout;
        let shutdown = self.state.engine.shutdown.clone();
        loop {
            let input = tokio::select! {
                frame = reader.frames.recv() => match frame {
                    Some(inbound) => Input::Frame(inbound),
                    None => Input::Gone,
                },
                message = outbound.recv() => match message {
                    Some(Outbound::Message(message)) => Input::Outbound(message),
                    Some(Outbound::Close(code, reason)) => Input::Closing(code, reason),
                    None => Input::Superseded,
                },
                () = sleep_until(deadline) => Input::HeartbeatMissed,
                () = shutdown.cancelled() => Input::Shutdown,
            };
            let result = match input {
                Input::Frame(message) => {
                    deadline = Instant::now() + timeout;
                    self.state.engine.hub.touch(self.runner_id);
                    self.on_frame(message).await
                }
                Input::Closing(code, reason) => Err(End::with(code, reason)),
                Input::Outbound(message) => self.send(&message).await,
                Input::Gone => Err(End {
                    code: 1000,
                    reason: "socket closed".into(),
                }),
                Input::Superseded => Err(End::with(
                    CloseCode::Superseded,
                    "a newer connection took over",
                )),
                Input::HeartbeatMissed => Err(End::with(
                    CloseCode::HeartbeatTimeout,
                    format!("no heartbeat for {}s", timeout.as_secs()),
                )),
                Input::Shutdown => Err(End::with(
                    CloseCode::ServerShutdown,
                    "control plane shutting down",
                )),
            };
            if let Err(end) = result {
                return end;
            }
        }
    }

    async fn send(&mut self, message: &ServerMessage) -> Result<(), End> {
        let text = serde_json::to_string(message).unwrap_or_default();
        self.sink
            .send(Message::Text(text.into()))
            .await
            .map_err(|e| End {
                code: 1000,
                reason: format!("send failed: {e}"),
            })
    }

    async fn refuse_frame(&mut self, message: String) -> Result<(), End> {
        tracing::warn!(runner = %self.runner_id, %message, "frame refused");
        self.send(&ServerMessage::Error { message }).await
    }

    async fn on_frame(&mut self, inbound: Inbound) -> Result<(), End> {
        match inbound {
            Inbound::Message(message) => self.on_message(*message).await,
            Inbound::Refused(reason) => self.refuse_frame(reason).await,
            Inbound::Control => Ok(()),
            Inbound::Closing => Err(End {
                code: 1000,
                reason: "runner closed".into(),
            }),
        }
    }

    async fn on_message(&mut self, message: RunnerMessage) -> Result<(), End> {
        let now = now_millis();
        let store = Arc::clone(&self.state.engine.store);
        let (hub, runner) = (Arc::clone(&self.state.engine.hub), self.runner_id);
        match message {
            RunnerMessage::Hello(_) => self.refuse_frame("hello was already received".into()).await,
            RunnerMessage::Heartbeat { .. } => {
                store.touch_runner(runner, now).await.map_err(internal)
            }
            RunnerMessage::Draining => {
                tracing::info!(%runner, "runner is draining");
                hub.set_draining(runner);
                store
                    .set_drain_requested(runner, None)
                    .await
                    .map_err(internal)?;
                Ok(())
            }
            RunnerMessage::FileResponse { request_id, result } => {
                if !self.state.engine.files.answer(runner, request_id, result) {
                    tracing::warn!(%runner, request_id, "file response for no request of this runner");
                }
                Ok(())
            }
            RunnerMessage::Rotated => {
                tracing::info!(%runner, "runner saved its new token; the old one is retired");
                store.confirm_rotation(runner).await.map_err(internal)
            }
            RunnerMessage::Mirrored { repo } => {
                hub.add_cached_project(runner, repo);
                hub.wake_dispatcher();
                Ok(())
            }
            RunnerMessage::Accepted { task_id, attempt } => {
                let started = store
                    .start_attempt(task_id, attempt, runner, now)
                    .await
                    .map_err(internal)?;
                self.state
                    .engine
                    .watchers
                    .publish(task_id, TaskUpdate::StateChanged);
                if started {
                    return Ok(());
                }
                // Too late: the assignment expired or the task was given away meanwhile.
                let reason = "assignment is no longer valid".to_owned();
                self.send(&ServerMessage::Cancel {
                    task_id,
                    attempt,
                    reason,
                })
                .await
            }
            RunnerMessage::Rejected {
                task_id,
                attempt,
                reason,
            } => {
                tracing::info!(%runner, task = %task_id, attempt, %reason, "assignment rejected");
                let next = store
                    .reject_attempt(task_id, attempt, runner, now)
                    .await
                    .map_err(internal)?;
                hub.note_rejection(task_id, runner);
                hub.release(runner, (task_id, attempt), now);
                self.state.engine.task_moved(task_id, next);
                Ok(())
            }
            RunnerMessage::Events {
                task_id,
                attempt,
                events,
            } => self.on_events(task_id, attempt, events).await,
        }
    }

    async fn on_events(
        &mut self,
        task_id: TaskId,
        attempt: u32,
        events: Vec<Event>,
    ) -> Result<(), End> {
        let now = now_millis();
        let appended = match self
            .state
            .engine
            .store
            .append_events(
                task_id,
                attempt,
                self.runner_id,
                events,
                self.state.engine.settings.max_log_bytes,
                now,
            )
            .await
        {
            Ok(appended) => appended,
            Err(
                e @ (StoreError::NotYours { .. }
                | StoreError::NotFound { .. }
                | StoreError::Ended { .. }),
            ) => {
                return self.refuse_frame(format!("events refused: {e}")).await;
            }
            Err(e) => return Err(internal(e)),
        };
        if !appended.stored.is_empty() {
            self.state.engine.metrics.events_ingested.fetch_add(
                u64::try_from(appended.stored.len()).unwrap_or(0),
                std::sync::atomic::Ordering::Relaxed,
            );
            let events = Arc::new(appended.stored);
            self.state
                .engine
                .watchers
                .publish(task_id, TaskUpdate::Events { attempt, events });
        }
        if appended.finished {
            self.close_if_workspace_closed(task_id).await?;
            self.state
                .engine
                .hub
                .release(self.runner_id, (task_id, attempt), now);
            // Tells the task's followers, and burns its sandbox if it has one.
            self.state.engine.task_ended(task_id);
        }
        self.send(&ServerMessage::Ack {
            task_id,
            attempt,
            seq: appended.acked_seq,
        })
        .await
    }
}

impl Link {
    /// A link closed while one of its tasks ran is removed once that task ends.
    async fn close_if_workspace_closed(&mut self, task_id: TaskId) -> Result<(), End> {
        let store = Arc::clone(&self.state.engine.store);
        let Some(workspace) = store
            .task(task_id)
            .await
            .map_err(internal)?
            .and_then(|t| t.spec.workspace_id)
        else {
            return Ok(());
        };
        let closed = store
            .workspace(workspace)
            .await
            .map_err(internal)?
            .is_some_and(|w| w.state != crate::model::WorkspaceState::Open);
        if closed {
            self.send(&ServerMessage::CloseWorkspace {
                workspace_id: workspace,
            })
            .await?;
        }
        Ok(())
    }
}

/// A store failure ends the link; the runner reconnects and resends what was not acked.
fn internal(error: StoreError) -> End {
    tracing::error!(error = %error, "store failed during a runner link");
    End {
        code: CLOSE_INTERNAL_ERROR,
        reason: "internal error".into(),
    }
}
