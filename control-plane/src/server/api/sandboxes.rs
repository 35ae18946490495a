//! Sandboxes: listing live boxes, burning one (forging them at submit is the engine's,
//! `engine/sandboxes.rs`).

use axum::extract::{Path, State};
use axum::Json;
use kiln_protocol::{now_millis, SandboxId};

use crate::api_types::SandboxView;
use crate::model::SandboxRecord;
use crate::sandbox::manager::BurnReason;
use crate::server::auth::Admin;
use crate::server::error::ApiError;
use crate::server::state::AppState;

pub async fn list(
    _: Admin,
    State(state): State<AppState>,
) -> Result<Json<Vec<SandboxView>>, ApiError> {
    let now = now_millis();
    let live = state.engine.store.live_sandboxes().await?;
    Ok(Json(
        live.into_iter()
            .map(|sandbox| SandboxView {
                remaining_ms: (sandbox.expires_at - now).max(0),
                sandbox,
            })
            .collect(),
    ))
}

pub async fn burn(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<SandboxRecord>, ApiError> {
    let id: SandboxId = id
        .parse()
        .map_err(|_| ApiError::BadRequest(format!("sandbox id {id:?} is not a valid id")))?;
    let sandboxes =
        state.engine.sandboxes.as_ref().ok_or_else(|| {
            ApiError::BadRequest("this control plane has no sandbox provider".into())
        })?;
    sandboxes
        .burn(&state.engine, id, BurnReason::Operator)
        .await?;
    let sandbox = state
        .engine
        .store
        .sandbox(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("sandbox {id} not found")))?;
    Ok(Json(sandbox))
}
