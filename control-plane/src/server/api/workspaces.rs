//! Workspace sessions: open one, show it, close it.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use kiln_protocol::{now_millis, validate, WorkspaceId};

use super::body::JsonBody;
use crate::api_types::CreateWorkspace;
use crate::model::{WorkspaceRecord, WorkspaceState};
use crate::server::auth::Admin;
use crate::server::error::ApiError;
use crate::server::state::AppState;

/// Most setup commands a session may have.
const MAX_SETUP_COMMANDS: usize = 32;

pub fn parse_workspace_id(text: &str) -> Result<WorkspaceId, ApiError> {
    text.parse()
        .map_err(|_| ApiError::BadRequest(format!("session id {text:?} is not a valid id")))
}

pub async fn load(state: &AppState, id: WorkspaceId) -> Result<WorkspaceRecord, ApiError> {
    state
        .engine
        .store
        .workspace(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("workspace session {id} not found")))
}

/// Largest session body: a repository, refs and setup commands.
const WORKSPACE_BODY_BYTES: usize = 1024 * 1024;

pub async fn create(
    _: Admin,
    State(state): State<AppState>,
    JsonBody(request): JsonBody<CreateWorkspace, WORKSPACE_BODY_BYTES>,
) -> Result<(StatusCode, Json<WorkspaceRecord>), ApiError> {
    let bad = |field: &str, reason: String| ApiError::BadRequest(format!("{field} {reason}"));
    validate::repo(&request.repo).map_err(|r| bad("repo", r))?;
    if let Some(base) = &request.base_ref {
        validate::git_ref(base).map_err(|r| bad("base_ref", r))?;
    }
    let id = WorkspaceId::new();
    let branch = request
        .branch
        .unwrap_or_else(|| format!("kiln/session-{id}"));
    validate::git_ref(&branch).map_err(|r| bad("branch", r))?;
    if request.setup.len() > MAX_SETUP_COMMANDS {
        return Err(bad(
            "setup",
            format!("has more than {MAX_SETUP_COMMANDS} commands"),
        ));
    }
    if request
        .setup
        .iter()
        .any(|c| c.first().is_none_or(String::is_empty))
    {
        return Err(bad("setup", "has an empty command".into()));
    }
    let record = WorkspaceRecord {
        id,
        repo: request.repo,
        base_ref: request.base_ref,
        branch,
        setup: request.setup,
        runner_id: None,
        state: WorkspaceState::Open,
        created_at: now_millis(),
        closed_at: None,
    };
    state.engine.store.create_workspace(&record).await?;
    tracing::info!(workspace = %id, repo = %record.repo, "workspace session opened");
    Ok((StatusCode::CREATED, Json(record)))
}

pub async fn show(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<WorkspaceRecord>, ApiError> {
    let id = parse_workspace_id(&id)?;
    Ok(Json(load(&state, id).await?))
}

/// Closes the session: its queued tasks are cancelled and its worktree removed (once a
/// task that still runs in it ends).
pub async fn close(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<WorkspaceRecord>, ApiError> {
    let id = parse_workspace_id(&id)?;
    let workspace = load(&state, id).await?;
    state
        .engine
        .end_workspace(id, WorkspaceState::Closed)
        .await?;
    let busy = state.engine.store.busy_workspaces().await?.contains(&id);
    if let (Some(runner), false) = (workspace.runner_id, busy) {
        let action = crate::replicas::RunnerAction::CloseWorkspace { workspace_id: id };
        state.engine.deliver(runner, action).await?;
    }
    tracing::info!(workspace = %id, "workspace session closed");
    Ok(Json(load(&state, id).await?))
}
