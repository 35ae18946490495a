//! Fleet controls: drain, pause, resume and revoke a runner.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::Json;
use kiln_protocol::{now_millis, RunnerId};

use crate::api_types::DrainRequest;
use crate::model::RunnerRecord;
use crate::replicas::RunnerAction;
use crate::server::auth::Admin;
use crate::server::error::ApiError;
use crate::server::state::AppState;

pub fn parse_runner_id(text: &str) -> Result<RunnerId, ApiError> {
    text.parse()
        .map_err(|_| ApiError::BadRequest(format!("runner id {text:?} is not a valid id")))
}

pub async fn load(state: &AppState, id: RunnerId) -> Result<RunnerRecord, ApiError> {
    state
        .engine
        .store
        .runner(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("runner {id} not found")))
}

/// Stops new work on the runner; it exits once its attempts end. At the deadline, if any,
/// what still runs is cancelled.
pub async fn drain(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Option<Json<DrainRequest>>,
) -> Result<Json<RunnerRecord>, ApiError> {
    let id = parse_runner_id(&id)?;
    let runner = load(&state, id).await?;
    if runner.revoked_at.is_some() {
        return Err(ApiError::Conflict(format!("runner {id} is revoked")));
    }
    state
        .engine
        .store
        .set_drain_requested(id, Some(now_millis()))
        .await?;
    state.engine.deliver(id, RunnerAction::Drain).await?;
    tracing::info!(runner = %id, "drain requested");
    if let Some(deadline) = body.and_then(|Json(b)| b.deadline_ms) {
        cancel_at_deadline(state.clone(), id, Duration::from_millis(deadline));
    }
    Ok(Json(load(&state, id).await?))
}

fn cancel_at_deadline(state: AppState, runner: RunnerId, deadline: Duration) {
    state.engine.tracker.clone().spawn(async move {
        tokio::select! {
            () = tokio::time::sleep(deadline) => {}
            () = state.engine.shutdown.cancelled() => return,
        }
        let open = match state.engine.store.open_attempts(runner).await {
            Ok(open) => open,
            Err(error) => {
                tracing::error!(%runner, error = %error, "drain deadline: cannot list attempts");
                return;
            }
        };
        for attempt in open {
            tracing::info!(%runner, task = %attempt.task_id, "drain deadline passed; cancelling");
            let reason = "the runner's drain deadline passed".to_owned();
            if let Err(error) = state.engine.cancel_task(attempt.task_id, reason).await {
                tracing::error!(task = %attempt.task_id, error = %error, "drain deadline: cancel failed");
            }
        }
    });
}

pub async fn pause(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<RunnerRecord>, ApiError> {
    let id = parse_runner_id(&id)?;
    if !state
        .engine
        .store
        .set_paused(id, Some(now_millis()))
        .await?
    {
        return Err(ApiError::NotFound(format!("runner {id} not found")));
    }
    state.engine.deliver(id, RunnerAction::Pause).await?;
    tracing::info!(runner = %id, "runner paused");
    Ok(Json(load(&state, id).await?))
}

pub async fn resume(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<RunnerRecord>, ApiError> {
    let id = parse_runner_id(&id)?;
    if !state.engine.store.set_paused(id, None).await? {
        return Err(ApiError::NotFound(format!("runner {id} not found")));
    }
    state.engine.store.set_drain_requested(id, None).await?;
    state.engine.deliver(id, RunnerAction::Resume).await?;
    tracing::info!(runner = %id, "runner resumed");
    Ok(Json(load(&state, id).await?))
}

/// Refuses the runner's token from now on, closes its socket at once, and sends its open
/// attempts back to the queue (they are lost with it).
pub async fn revoke(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<RunnerRecord>, ApiError> {
    let id = parse_runner_id(&id)?;
    if !state.engine.store.revoke_runner(id, now_millis()).await? {
        return Err(ApiError::NotFound(format!("runner {id} not found")));
    }
    state.engine.deliver(id, RunnerAction::Revoke).await?;
    crate::liveness::declare_lost(&state.engine, id).await?;
    tracing::warn!(runner = %id, "runner revoked");
    Ok(Json(load(&state, id).await?))
}

/// Rotates the runner's token: now if it is connected, else when it next connects. The new
/// token goes only to the runner; its old token works until the runner confirms.
pub async fn rotate(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<RunnerRecord>, ApiError> {
    let id = parse_runner_id(&id)?;
    if !state
        .engine
        .store
        .request_rotation(id, now_millis())
        .await?
    {
        return Err(ApiError::NotFound(format!("runner {id} not found")));
    }
    state.engine.deliver(id, RunnerAction::Rotate).await?;
    tracing::info!(runner = %id, "token rotation requested");
    Ok(Json(load(&state, id).await?))
}
