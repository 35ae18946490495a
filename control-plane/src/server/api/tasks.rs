//! Submitting, listing, showing, cancelling and retrying tasks.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use kiln_protocol::{now_millis, TaskId};
use serde::Deserialize;

use super::body::JsonBody;
use crate::api_types::{SubmitRequest, TaskDetail, TaskPage};
use crate::dispatcher;
use crate::model::{AttemptState, RetryEffect, TaskRecord, TaskState};
use crate::placing;
use crate::server::auth::Admin;
use crate::server::error::ApiError;
use crate::server::state::AppState;
use crate::store::TaskFilter;
use crate::task_input;
use crate::watchers::TaskUpdate;

/// Largest submit body: a task whose assignment fits a frame (4 MiB) is far smaller, and a
/// larger prompt or env is read whole, so that the refusal names the field.
pub const SUBMIT_BODY_BYTES: usize = 16 * 1024 * 1024;

/// Tasks listed when the caller does not say how many.
const DEFAULT_LIST_LIMIT: u32 = 50;

/// Most tasks one list call returns.
const MAX_LIST_LIMIT: u32 = 1000;

pub async fn submit(
    _: Admin,
    State(state): State<AppState>,
    JsonBody(request): JsonBody<SubmitRequest, SUBMIT_BODY_BYTES>,
) -> Result<(StatusCode, Json<TaskRecord>), ApiError> {
    let workspace =
        match request.workspace_id {
            Some(id) => {
                Some(state.engine.store.workspace(id).await?.ok_or_else(|| {
                    ApiError::NotFound(format!("workspace session {id} not found"))
                })?)
            }
            None => None,
        };
    let sandbox = request.sandbox.clone();
    let task = task_input::new_task(request, workspace.as_ref(), now_millis())?;
    let record = match &sandbox {
        Some(sandbox) => {
            let task = state.engine.forge_for(task, sandbox).await?;
            state.engine.hub.wake_dispatcher();
            TaskRecord::queued(task)
        }
        None => placing::submit(&state.engine, task, workspace.as_ref()).await?,
    };
    let (id, repo) = (record.spec.id, &record.spec.repo);
    tracing::info!(task = %id, repo = %repo, state = record.state.as_str(), "task submitted");
    Ok((StatusCode::CREATED, Json(record)))
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    state: Option<String>,
    repo: Option<String>,
    runner: Option<String>,
    /// `KEY=VALUE`.
    label: Option<String>,
    before: Option<String>,
    limit: Option<u32>,
}

pub async fn list(
    _: Admin,
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> Result<Json<TaskPage>, ApiError> {
    let bad = |field: &str, value: &str, why: String| {
        ApiError::BadRequest(format!("{field} {value:?}: {why}"))
    };
    let task_state = query.state.as_deref().map(state_param).transpose()?;
    let runner = query
        .runner
        .as_deref()
        .map(|r| {
            r.parse()
                .map_err(|e: uuid::Error| bad("runner", r, e.to_string()))
        })
        .transpose()?;
    let label = query
        .label
        .as_deref()
        .map(|l| {
            l.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .ok_or_else(|| bad("label", l, "expected KEY=VALUE".into()))
        })
        .transpose()?;
    let before = query.before.as_deref().map(parse_task_id).transpose()?;
    let limit = query
        .limit
        .unwrap_or(DEFAULT_LIST_LIMIT)
        .clamp(1, MAX_LIST_LIMIT);
    let filter = TaskFilter {
        state: task_state,
        repo: query.repo,
        runner,
        label,
        before,
        limit,
    };
    let tasks = state.engine.store.tasks(&filter).await?;
    let next_before = (tasks.len() == limit as usize)
        .then(|| tasks.last().map(|t| t.spec.id))
        .flatten();
    Ok(Json(TaskPage { tasks, next_before }))
}

pub async fn show(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<TaskDetail>, ApiError> {
    let id = parse_task_id(&id)?;
    let task = load(&state, id).await?;
    let attempts = state.engine.store.attempts(id).await?;
    let workspaces = dispatcher::workspaces_of(&state.engine, std::slice::from_ref(&task)).await?;
    let pinned = dispatcher::pin(&state.engine, &task, &workspaces).await?;
    let rate_limited = attempts
        .iter()
        .find(|a| a.attempt == task.attempt && a.state == AttemptState::Running)
        .and_then(|a| a.rate_limited_until);
    let waiting_reason = match (task.state, rate_limited) {
        (TaskState::Queued, _) => {
            let runners = state.engine.hub.slots(state.engine.settings.stale_after());
            Some(crate::scheduler::explain(
                &dispatcher::candidate(&state.engine, &task, pinned),
                &runners,
            ))
        }
        (_, Some(until)) => Some(crate::model::rate_limit_wait(until)),
        _ => None,
    };
    Ok(Json(TaskDetail {
        task,
        attempts,
        waiting_reason,
    }))
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
    state.engine.cancel_task(id, reason).await?;
    Ok(Json(load(&state, id).await?))
}

pub async fn retry(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<TaskRecord>, ApiError> {
    let id = parse_task_id(&id)?;
    if let Some(sandbox) = load(&state, id).await?.spec.sandbox_id {
        return Err(ApiError::Conflict(format!(
            "task {id} ran in sandbox {sandbox}, which is burned; submit it again for a new box"
        )));
    }
    match state.engine.store.retry_task(id, now_millis()).await? {
        RetryEffect::Queued => {
            tracing::info!(task = %id, "task queued again by retry");
            state.engine.hub.wake_dispatcher();
            state.engine.watchers.publish(id, TaskUpdate::StateChanged);
            Ok(Json(load(&state, id).await?))
        }
        RetryEffect::StillLive(live) => Err(ApiError::Conflict(format!(
            "task {id} is {live}; only a finished task can be retried"
        ))),
    }
}

/// The task, or a not-found error naming it.
pub async fn load(state: &AppState, id: TaskId) -> Result<TaskRecord, ApiError> {
    state
        .engine
        .store
        .task(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("task {id} not found")))
}

/// A `state` query parameter, such as `running`.
pub fn state_param(text: &str) -> Result<TaskState, ApiError> {
    text.parse()
        .map_err(|e| ApiError::BadRequest(format!("state {text:?}: {e}")))
}

/// Parses a task id from a path, naming the bad value.
pub fn parse_task_id(text: &str) -> Result<TaskId, ApiError> {
    text.parse()
        .map_err(|_| ApiError::BadRequest(format!("task id {text:?} is not a valid id")))
}
