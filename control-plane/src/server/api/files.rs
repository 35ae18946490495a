//! `POST /v1/files/{id}`: a file request in the live worktree of a running task or an open
//! workspace session, relayed to the runner that holds it.

use axum::extract::{Path, State};
use axum::Json;
use kiln_protocol::limits::MAX_FILE_BYTES;
use kiln_protocol::{FileOp, FileResult, FileTarget, RunnerId};

use super::body::JsonBody;
use super::workspaces;
use crate::model::{AttemptState, WorkspaceState};
use crate::server::auth::Admin;
use crate::server::error::ApiError;
use crate::server::state::AppState;

/// Largest file request body: a file of [`MAX_FILE_BYTES`] as base64, and the rest of
/// the request.
const FILE_BODY_BYTES: usize = MAX_FILE_BYTES / 3 * 4 + 64 * 1024;

pub async fn request(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(op): JsonBody<FileOp, FILE_BODY_BYTES>,
) -> Result<Json<FileResult>, ApiError> {
    let (runner, target) = locate(&state, &id).await?;
    let result = state
        .engine
        .files
        .request(&state.engine.hub, runner, target, op)
        .await
        .map_err(|e| match e {
            // File contents do not fit a notification: with replicas, say where to ask.
            crate::file_requests::FileRequestError::Offline(_) if state.engine.peers.is_some() => ApiError::Conflict(
                format!("{e} to this replica; file requests are not relayed between replicas: send it to the replica the runner is connected to"),
            ),
            e => ApiError::Conflict(e.to_string()),
        })?;
    Ok(Json(result))
}

/// The runner and target for a task id (its running attempt) or a session id.
async fn locate(state: &AppState, id: &str) -> Result<(RunnerId, FileTarget), ApiError> {
    if let Ok(task_id) = id.parse() {
        if let Some(task) = state.engine.store.task(task_id).await? {
            let attempt = state
                .engine
                .store
                .attempt(task_id, task.attempt)
                .await?
                .filter(|a| a.state == AttemptState::Running)
                .ok_or_else(|| {
                    ApiError::Conflict(format!(
                        "task {task_id} is {}: its worktree exists only while it runs",
                        task.state
                    ))
                })?;
            return Ok((
                attempt.runner_id,
                FileTarget::Task {
                    task_id,
                    attempt: attempt.attempt,
                },
            ));
        }
    }
    let workspace_id = workspaces::parse_workspace_id(id)?;
    let workspace = workspaces::load(state, workspace_id).await?;
    if workspace.state != WorkspaceState::Open {
        return Err(ApiError::Conflict(format!(
            "workspace session {workspace_id} is {}",
            workspace.state
        )));
    }
    let runner = workspace.runner_id.ok_or_else(|| {
        ApiError::Conflict(format!(
            "workspace session {workspace_id} has no worktree yet: submit a task to it first"
        ))
    })?;
    Ok((runner, FileTarget::Workspace { workspace_id }))
}
