//! Submitting, listing and showing tasks.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use kiln_protocol::{now_millis, ServerMessage, TaskId};
use serde::Deserialize;

use crate::api_types::{SubmitRequest, TaskDetail};
use crate::model::{CancelEffect, TaskRecord, TaskState};
use crate::server::auth::Admin;
use crate::server::error::ApiError;
use crate::server::state::AppState;
use crate::store::TaskFilter;
use crate::task_input;
use crate::watchers::TaskUpdate;

/// Tasks listed when the caller does not say how many.
const DEFAULT_LIST_LIMIT: u32 = 50;

/// Most tasks one list call returns.
const MAX_LIST_LIMIT: u32 = 1000;

pub async fn submit(
    _: Admin,
    State(state): State<AppState>,
    Json(request): Json<SubmitRequest>,
) -> Result<(StatusCode, Json<TaskRecord>), ApiError> {
    let task = task_input::new_task(request, now_millis())?;
    state.store.insert_task(&task).await?;
    state.hub.wake_dispatcher();
    tracing::info!(task = %task.id, repo = %task.repo, "task queued");
    let record = TaskRecord {
        updated_at: task.created_at,
        spec: task,
        state: TaskState::Queued,
        attempt: 0,
        outcome: None,
        finished_at: None,
        cancel_requested_at: None,
    };
    Ok((StatusCode::CREATED, Json(record)))
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    state: Option<String>,
    limit: Option<u32>,
}

pub async fn list(
    _: Admin,
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> Result<Json<Vec<TaskRecord>>, ApiError> {
    let task_state = query
        .state
        .map(|s| {
            s.parse::<TaskState>()
                .map_err(|e| ApiError::BadRequest(format!("state: {e}")))
        })
        .transpose()?;
    let limit = query
        .limit
        .unwrap_or(DEFAULT_LIST_LIMIT)
        .clamp(1, MAX_LIST_LIMIT);
    let filter = TaskFilter {
        state: task_state,
        limit,
    };
    Ok(Json(state.store.tasks(&filter).await?))
}

pub async fn show(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<TaskDetail>, ApiError> {
    let id = parse_task_id(&id)?;
    let task = state
        .store
        .task(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("task {id} not found")))?;
    let attempts = state.store.attempts(id).await?;
    Ok(Json(TaskDetail { task, attempts }))
}

/// Parses a task id from a path, naming the bad value.
pub fn parse_task_id(text: &str) -> Result<TaskId, ApiError> {
    text.parse()
        .map_err(|_| ApiError::BadRequest(format!("task id {text:?} is not a valid id")))
}

#[derive(Debug, Default, Deserialize)]
pub struct CancelRequest {
    /// Why, for the task's log.
    #[serde(default)]
    reason: Option<String>,
}

pub async fn cancel(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Option<Json<CancelRequest>>,
) -> Result<Json<TaskRecord>, ApiError> {
    let id = parse_task_id(&id)?;
    let reason = body
        .and_then(|Json(b)| b.reason)
        .unwrap_or_else(|| "cancelled by operator".to_owned());
    match state.store.request_cancel(id, now_millis()).await? {
        CancelEffect::StopAttempt { runner, attempt } => {
            let message = ServerMessage::Cancel {
                task_id: id,
                attempt,
                reason,
            };
            if !state.hub.send(runner, message) {
                tracing::info!(task = %id, %runner, "runner offline; it is told to cancel when it reconnects");
            }
        }
        CancelEffect::Cancelled | CancelEffect::AlreadyEnded(_) => {}
    }
    state.watchers.publish(id, TaskUpdate::StateChanged);
    let task = state
        .store
        .task(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("task {id} not found")))?;
    Ok(Json(task))
}
