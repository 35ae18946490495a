//! `POST /v1/runners/{id}/update`: an operator sets the capabilities and labels a runner is
//! placed by. A runner's hello cannot change them, so a stolen token never draws tasks the
//! runner was not given.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::Json;
use kiln_protocol::limits::MAX_CAPABILITIES;
use kiln_protocol::validate;

use super::body::{JsonBody, SMALL_BODY_BYTES};
use super::fleet::{load, parse_runner_id};
use crate::api_types::UpdateRunner;
use crate::model::RunnerRecord;
use crate::replicas::RunnerAction;
use crate::server::auth::Admin;
use crate::server::error::ApiError;
use crate::server::state::AppState;

/// Checks what an operator gives a runner, naming the bad entry.
pub fn check_tags(
    capabilities: &[String],
    labels: &BTreeMap<String, String>,
) -> Result<(), ApiError> {
    let bad = |field: &str, reason: String| ApiError::BadRequest(format!("{field} {reason}"));
    if capabilities.len() > MAX_CAPABILITIES {
        return Err(bad(
            "capabilities",
            format!("has more than {MAX_CAPABILITIES} entries"),
        ));
    }
    for capability in capabilities {
        validate::name(capability)
            .map_err(|r| bad("capabilities", format!("{capability:?} {r}")))?;
    }
    if labels.len() > MAX_CAPABILITIES {
        return Err(bad(
            "labels",
            format!("has more than {MAX_CAPABILITIES} entries"),
        ));
    }
    for (key, value) in labels {
        validate::name(key).map_err(|r| bad(&format!("labels.{key}"), r))?;
        validate::name(value).map_err(|r| bad(&format!("labels.{key}"), r))?;
    }
    Ok(())
}

pub async fn update(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<UpdateRunner, SMALL_BODY_BYTES>,
) -> Result<Json<RunnerRecord>, ApiError> {
    let id = parse_runner_id(&id)?;
    let record = load(&state, id).await?;
    let capabilities = request.capabilities.unwrap_or(record.capabilities);
    let labels = request.labels.unwrap_or(record.labels);
    check_tags(&capabilities, &labels)?;
    if !state
        .engine
        .store
        .set_runner_tags(id, &capabilities, &labels)
        .await?
    {
        return Err(ApiError::NotFound(format!("runner {id} not found")));
    }
    state.engine.deliver(id, RunnerAction::Retag).await?;
    tracing::info!(runner = %id, ?capabilities, ?labels, "runner capabilities and labels set");
    Ok(Json(load(&state, id).await?))
}
