//! Runner registration, registration tokens and the runner list.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use kiln_protocol::limits::MAX_CAPABILITIES;
use kiln_protocol::{now_millis, validate, RegisterRequest, RegisterResponse, RunnerId};

use super::body::{JsonBody, SMALL_BODY_BYTES};
use crate::api_types::{CreateRegistrationToken, RegistrationTokenCreated, RunnerView};
use crate::model::{RegistrationTokenRecord, RunnerRecord};
use crate::server::auth::{Admin, Registration};
use crate::server::error::ApiError;
use crate::server::state::AppState;
use crate::store::NewRunner;
use crate::tokens::{Token, TokenKind};

/// Most slots one runner may declare; far above any one machine's sensible agent count.
pub const MAX_SLOTS_PER_RUNNER: u32 = 256;

pub async fn register(
    Registration(token): Registration,
    State(state): State<AppState>,
    JsonBody(request): JsonBody<RegisterRequest, SMALL_BODY_BYTES>,
) -> Result<(StatusCode, Json<RegisterResponse>), ApiError> {
    check_registration(&request)?;
    let runner_token = Token::generate(TokenKind::Runner);
    let now = now_millis();
    let record = RunnerRecord {
        id: RunnerId::new(),
        name: request.name,
        capabilities: request.capabilities,
        labels: request.labels,
        max_concurrent: request.max_concurrent,
        version: None,
        created_at: now,
        last_seen_at: None,
        revoked_at: None,
        paused_at: None,
        drain_requested_at: None,
        rotation_requested_at: None,
        sandbox_id: None,
    };
    let new = NewRunner {
        record,
        token_hash: runner_token.hash(),
    };
    let record = state
        .engine
        .store
        .register_runner(&token.hash(), new, now)
        .await?
        .map_err(|refusal| ApiError::Unauthorized(refusal.to_string()))?;
    tracing::info!(runner = %record.id, name = %record.name, "runner registered");
    let response = RegisterResponse {
        runner_id: record.id,
        runner_token: runner_token.expose().to_owned(),
    };
    Ok((StatusCode::CREATED, Json(response)))
}

fn check_registration(request: &RegisterRequest) -> Result<(), ApiError> {
    let bad = |field: &str, reason: String| ApiError::BadRequest(format!("{field} {reason}"));
    validate::name(&request.name).map_err(|r| bad("name", r))?;
    if request.capabilities.len() > MAX_CAPABILITIES {
        return Err(bad(
            "capabilities",
            format!("has more than {MAX_CAPABILITIES} entries"),
        ));
    }
    for capability in &request.capabilities {
        validate::name(capability).map_err(|r| bad("capabilities", r))?;
    }
    if request.labels.len() > MAX_CAPABILITIES {
        return Err(bad(
            "labels",
            format!("has more than {MAX_CAPABILITIES} entries"),
        ));
    }
    if !(1..=MAX_SLOTS_PER_RUNNER).contains(&request.max_concurrent) {
        return Err(bad(
            "max_concurrent",
            format!(
                "is {}; it must be 1 to {MAX_SLOTS_PER_RUNNER}",
                request.max_concurrent
            ),
        ));
    }
    Ok(())
}

pub async fn create_registration_token(
    _: Admin,
    State(state): State<AppState>,
    JsonBody(request): JsonBody<CreateRegistrationToken, SMALL_BODY_BYTES>,
) -> Result<(StatusCode, Json<RegistrationTokenCreated>), ApiError> {
    if request.uses == Some(0) {
        return Err(ApiError::BadRequest("uses must be at least 1".into()));
    }
    if request.ttl_ms == Some(0) {
        return Err(ApiError::BadRequest(
            "ttl_ms must be greater than zero".into(),
        ));
    }
    let now = now_millis();
    let token = Token::generate(TokenKind::Registration);
    let record = RegistrationTokenRecord {
        id: uuid::Uuid::now_v7().to_string(),
        uses_left: request.uses,
        expires_at: request
            .ttl_ms
            .map(|ttl| now.saturating_add(i64::try_from(ttl).unwrap_or(i64::MAX))),
        created_at: now,
    };
    state
        .engine
        .store
        .create_registration_token(&record, &token.hash())
        .await?;
    tracing::info!(token_id = %record.id, "registration token created");
    let created = RegistrationTokenCreated {
        record,
        token: token.expose().to_owned(),
    };
    Ok((StatusCode::CREATED, Json(created)))
}

pub async fn list(
    _: Admin,
    State(state): State<AppState>,
) -> Result<Json<Vec<RunnerView>>, ApiError> {
    let runners = state.engine.store.runners().await?;
    let views = runners
        .into_iter()
        .map(|runner| {
            let live = state.engine.hub.live(runner.id);
            let runner_state = state.engine.runner_state(&runner, live.as_ref());
            RunnerView {
                running: live.as_ref().map_or(0, |l| l.running),
                cached_projects: live
                    .map(|l| l.cached_projects.into_iter().collect())
                    .unwrap_or_default(),
                state: runner_state,
                runner,
            }
        })
        .collect();
    Ok(Json(views))
}
