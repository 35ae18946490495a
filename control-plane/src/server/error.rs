//! `ApiError`: the one error type of every handler. It answers with a JSON `{"error": ...}`
//! body and never shows internals: store failures are logged and reported as "internal
//! error".

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::api_types::ErrorBody;
use crate::store::StoreError;
use crate::task_input::InvalidField;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No credentials, or credentials that are not valid here.
    #[error("{0}")]
    Unauthorized(String),
    /// Valid credentials that do not allow this.
    #[error("{0}")]
    Forbidden(String),
    /// The named thing does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request is malformed; the message names the field.
    #[error("{0}")]
    BadRequest(String),
    /// The body is larger than allowed.
    #[error("{0}")]
    TooLarge(String),
    /// The request conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    /// The store cannot write: its disk is full.
    #[error("{0}")]
    DiskFull(String),
    /// The caller has too many requests of this kind in progress.
    #[error("{0}")]
    TooMany(String),
    /// Something failed inside; the details go to the log only.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::TooMany(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::DiskFull(_) => StatusCode::INSUFFICIENT_STORAGE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// What a client is told when the store's disk is full.
const DISK_FULL: &str =
    "the control plane's disk is full: nothing was stored; free space where it keeps its data";

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound { what, id } => Self::NotFound(format!("{what} {id} not found")),
            StoreError::NotYours { .. } => Self::Forbidden(error.to_string()),
            StoreError::Ended { .. } => Self::Conflict(error.to_string()),
            ref full if full.is_disk_full() => {
                tracing::error!(error = %full, "the store cannot write: its disk is full");
                Self::DiskFull(DISK_FULL.to_owned())
            }
            other => Self::Internal(other.into()),
        }
    }
}

impl From<crate::engine::EngineError> for ApiError {
    fn from(error: crate::engine::EngineError) -> Self {
        match error {
            crate::engine::EngineError::Refused(reason) => Self::BadRequest(reason),
            crate::engine::EngineError::Store(store) => store.into(),
        }
    }
}

impl From<InvalidField> for ApiError {
    fn from(error: InvalidField) -> Self {
        Self::BadRequest(error.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            Self::Internal(source) => {
                tracing::error!(error = format!("{source:#}"), "request failed")
            }
            Self::Unauthorized(reason) | Self::Forbidden(reason) => {
                tracing::warn!(%reason, "request refused");
            }
            _ => {}
        }
        let body = ErrorBody {
            error: self.to_string(),
        };
        (self.status(), Json(body)).into_response()
    }
}
