//! A task's events as newline-delimited JSON, optionally following live until the task
//! ends (`kiln logs -f`).

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use kiln_protocol::{Event, TaskId};
use serde::Deserialize;
use tokio::sync::{broadcast, mpsc};

use super::tasks::parse_task_id;
use crate::model::{AttemptState, TaskRecord};
use crate::server::auth::Admin;
use crate::server::error::ApiError;
use crate::server::state::AppState;
use crate::watchers::TaskUpdate;

/// Events read from the store per query while catching up.
const PAGE: u32 = 1000;

/// Encoded chunks buffered towards a slow client before the follower waits for it.
const CLIENT_BUFFER: usize = 64;

/// Bytes of NDJSON gathered into one chunk of the response body.
const CHUNK_BYTES: usize = 64 * 1024;

/// [`crate::api_types::AttemptEvent`] borrowing its event, to encode without a copy.
#[derive(serde::Serialize)]
struct AttemptEventRef<'a> {
    attempt: u32,
    #[serde(flatten)]
    event: &'a Event,
}

#[derive(Debug, Deserialize)]
pub struct EventsQuery {
    /// Start at this attempt; default the latest (or 1 while queued).
    attempt: Option<u32>,
    /// Only events with a greater seq.
    after_seq: Option<u64>,
    /// Keep the response open and stream new events until the task ends.
    #[serde(default)]
    follow: bool,
}

pub async fn stream(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<EventsQuery>,
) -> Result<Response, ApiError> {
    let task_id = parse_task_id(&id)?;
    let updates = state.engine.watchers.subscribe(task_id);
    let task = load_task(&state, task_id).await?;
    let cursor = Cursor {
        attempt: query.attempt.unwrap_or(task.attempt.max(1)),
        after_seq: query.after_seq.unwrap_or(0),
        finished: false,
    };
    let (lines, rx) = mpsc::channel::<Bytes>(CLIENT_BUFFER);
    let follower = Follower {
        state,
        task_id,
        follow: query.follow,
        lines,
    };
    tokio::spawn(async move {
        if let Err(error) = follower.run(cursor, updates, task).await {
            tracing::warn!(task = %task_id, error = %error, "event stream ended early");
        }
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|line| (Ok::<_, Infallible>(line), rx))
    });
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(body),
    )
        .into_response())
}

async fn load_task(state: &AppState, id: TaskId) -> Result<TaskRecord, ApiError> {
    state
        .engine
        .store
        .task(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("task {id} not found")))
}

/// Where a follower is in the task's event streams.
#[derive(Debug)]
struct Cursor {
    attempt: u32,
    after_seq: u64,
    finished: bool,
}

struct Follower {
    state: AppState,
    task_id: TaskId,
    follow: bool,
    lines: mpsc::Sender<Bytes>,
}

/// Why a follower stopped: the client left or the server is stopping.
#[derive(Debug)]
struct Stopped;

impl Follower {
    /// Streams from `cursor` on. `known` is the task as read after `updates` was
    /// subscribed: any later change is in `updates`, so it is as good as a read made after
    /// the first catch-up, and saves one.
    async fn run(
        self,
        mut cursor: Cursor,
        mut updates: broadcast::Receiver<TaskUpdate>,
        known: TaskRecord,
    ) -> Result<(), ApiError> {
        let mut known = Some(known);
        loop {
            if self.catch_up(&mut cursor).await?.is_err() || !self.follow {
                return Ok(());
            }
            let task = match known.take() {
                Some(task) => task,
                None => load_task(&self.state, self.task_id).await?,
            };
            let moved_on = task.attempt > cursor.attempt
                && (cursor.finished
                    || task.state.is_terminal()
                    || self.ended_unfinished(cursor.attempt).await?);
            if moved_on {
                // One more read: the attempt's last events were stored before it ended,
                // and that may have been after the catch-up above.
                if self.catch_up(&mut cursor).await?.is_err() {
                    return Ok(());
                }
                cursor = Cursor {
                    attempt: cursor.attempt + 1,
                    after_seq: 0,
                    finished: false,
                };
                continue;
            }
            if task.state.is_terminal() && task.attempt <= cursor.attempt {
                // One more read: the final events are stored before the state changes.
                let _ = self.catch_up(&mut cursor).await?;
                return Ok(());
            }
            // Live: forward contiguous events straight from memory, and read the task alone
            // when only its state changed; anything else (a gap, lag, an unknown change,
            // the attempt's or the task's end) goes back to the store.
            loop {
                tokio::select! {
                    update = updates.recv() => match update {
                        Ok(TaskUpdate::Events { attempt, events }) if attempt == cursor.attempt => {
                            if !self.send_live(&mut cursor, &events).await? {
                                break;
                            }
                        }
                        Ok(TaskUpdate::StateChanged) => {
                            let task = load_task(&self.state, self.task_id).await?;
                            if task.state.is_terminal() || task.attempt > cursor.attempt {
                                known = Some(task);
                                break;
                            }
                        }
                        Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => break,
                        Err(broadcast::error::RecvError::Closed) => return Ok(()),
                    },
                    () = self.lines.closed() => return Ok(()),
                    () = self.state.engine.shutdown.cancelled() => return Ok(()),
                }
            }
        }
    }

    /// True when `attempt` is over though no `finished` event of it was seen: lost with its
    /// runner, or rejected. Its successor is then the attempt to follow.
    async fn ended_unfinished(&self, attempt: u32) -> Result<bool, ApiError> {
        let record = self
            .state
            .engine
            .store
            .attempt(self.task_id, attempt)
            .await?;
        Ok(record
            .is_some_and(|r| !matches!(r.state, AttemptState::Assigned | AttemptState::Running)))
    }

    /// Sends every stored event after the cursor.
    async fn catch_up(&self, cursor: &mut Cursor) -> Result<Result<(), Stopped>, ApiError> {
        loop {
            let page = self
                .state
                .engine
                .store
                .events(self.task_id, cursor.attempt, cursor.after_seq, PAGE)
                .await?;
            if self.send(cursor, &page).await.is_err() {
                return Ok(Err(Stopped));
            }
            if page.len() < PAGE as usize {
                return Ok(Ok(()));
            }
        }
    }

    /// Sends live events that continue the cursor exactly. Ok(false) means "read the
    /// store": there was a gap, or the attempt finished.
    async fn send_live(&self, cursor: &mut Cursor, events: &[Event]) -> Result<bool, ApiError> {
        // Events come in seq order: the fresh ones are a suffix.
        let fresh = &events[events.partition_point(|e| e.seq <= cursor.after_seq)..];
        match fresh.first() {
            None => Ok(true),
            Some(first) if first.seq == cursor.after_seq + 1 => {
                if self.send(cursor, fresh).await.is_err() {
                    return Ok(false);
                }
                Ok(!cursor.finished)
            }
            Some(_) => Ok(false),
        }
    }

    /// Sends `events` to the client as NDJSON, many lines per chunk: one channel send and
    /// one body write per chunk, not per line.
    async fn send(&self, cursor: &mut Cursor, events: &[Event]) -> Result<(), Stopped> {
        let mut chunk = Vec::with_capacity(CHUNK_BYTES);
        for event in events {
            let line = AttemptEventRef {
                attempt: cursor.attempt,
                event,
            };
            if serde_json::to_writer(&mut chunk, &line).is_err() {
                continue;
            }
            chunk.push(b'\n');
            cursor.after_seq = event.seq;
            cursor.finished |= event.is_finished();
            if chunk.len() >= CHUNK_BYTES {
                let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK_BYTES));
                self.lines
                    .send(Bytes::from(full))
                    .await
                    .map_err(|_| Stopped)?;
            }
        }
        if !chunk.is_empty() {
            self.lines
                .send(Bytes::from(chunk))
                .await
                .map_err(|_| Stopped)?;
        }
        Ok(())
    }
}
