//! Result artifacts: runners upload an attempt's git bundle and diff; operators download
//! them (`kiln fetch`, `kiln diff`).

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use kiln_protocol::now_millis;
use serde::Deserialize;

use super::tasks::parse_task_id;
use crate::server::auth::{Admin, Runner};
use crate::server::error::ApiError;
use crate::server::state::AppState;

/// The kinds of artifact an attempt may have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArtifactKind {
    /// `git bundle` of the result commits.
    Bundle,
    /// Unified diff from base to head.
    Diff,
}

impl ArtifactKind {
    fn parse(text: &str) -> Result<Self, ApiError> {
        match text {
            "bundle" => Ok(Self::Bundle),
            "diff" => Ok(Self::Diff),
            other => Err(ApiError::NotFound(format!(
                "artifact kind {other:?} does not exist (expected bundle or diff)"
            ))),
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Bundle => "bundle",
            Self::Diff => "diff",
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Self::Bundle => "application/x-git-bundle",
            Self::Diff => "text/x-diff; charset=utf-8",
        }
    }
}

pub async fn upload(
    Runner(runner): Runner,
    State(state): State<AppState>,
    Path((id, attempt, kind)): Path<(String, u32, String)>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let task = parse_task_id(&id)?;
    let kind = ArtifactKind::parse(&kind)?;
    let record = state
        .engine
        .store
        .attempt(task, attempt)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("attempt {attempt} of task {task} not found")))?;
    if record.runner_id != runner.id {
        tracing::warn!(runner = %runner.id, %task, attempt, "upload for an attempt of another runner refused");
        return Err(ApiError::Forbidden(format!(
            "attempt {attempt} of task {task} is not assigned to runner {}",
            runner.id
        )));
    }
    state
        .engine
        .store
        .put_artifact(task, attempt, kind.as_str(), &body, now_millis())
        .await?;
    tracing::info!(%task, attempt, kind = kind.as_str(), bytes = body.len(), "artifact stored");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
pub struct DownloadQuery {
    attempt: Option<u32>,
}

pub async fn download(
    _: Admin,
    State(state): State<AppState>,
    Path((id, kind)): Path<(String, String)>,
    Query(query): Query<DownloadQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let task_id = parse_task_id(&id)?;
    let kind = ArtifactKind::parse(&kind)?;
    let task = state
        .engine
        .store
        .task(task_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("task {task_id} not found")))?;
    let attempt = query.attempt.unwrap_or(task.attempt);
    if let Some(pruned_at) = task.pruned_at {
        return Err(ApiError::NotFound(format!(
            "task {task_id}'s events and results were pruned by retention at {pruned_at} (ms since the epoch)"
        )));
    }
    let data = state
        .engine
        .store
        .artifact(task_id, attempt, kind.as_str())
        .await?
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "task {task_id} attempt {attempt} has no {} (it made no commits, or has not finished)",
                kind.as_str()
            ))
        })?;
    Ok(([(header::CONTENT_TYPE, kind.content_type())], data))
}
