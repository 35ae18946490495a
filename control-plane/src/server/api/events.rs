//! A task's events as newline-delimited JSON, optionally following live until the task
//! ends (`kiln logs -f`).

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use kiln_protocol::TaskId;
use serde::Deserialize;
use tokio::sync::mpsc;

use super::tasks::parse_task_id;
use crate::engine::follow::{Cursor, Follower};
use crate::model::TaskRecord;
use crate::server::auth::Admin;
use crate::server::error::ApiError;
use crate::server::state::AppState;

/// Encoded chunks buffered towards a slow client before the follower waits for it.
const CLIENT_BUFFER: usize = 64;

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
    let engine = state.engine.clone();
    let follower = Follower {
        engine: engine.clone(),
        task_id,
        follow: query.follow,
        lines,
    };
    engine.spawn(async move {
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
