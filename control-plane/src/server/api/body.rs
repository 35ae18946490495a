//! `JsonBody<T, MAX>`: a JSON request body of at most `MAX` bytes. Too large a body, or one
//! that is not the JSON the endpoint takes, gets an `ApiError` that says which (and the
//! limit, or where the JSON went wrong), never the framework's plain-text message.

use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_LENGTH;
use serde::de::DeserializeOwned;

use crate::server::error::ApiError;

/// Largest body of the small requests (registration, tokens): names and numbers.
pub const SMALL_BODY_BYTES: usize = 64 * 1024;

/// A request body parsed as JSON `T`, refused beyond `MAX` bytes.
#[derive(Debug)]
pub struct JsonBody<T, const MAX: usize>(pub T);

fn too_large<const MAX: usize>(size: Option<u64>) -> ApiError {
    let size = size.map_or_else(|| "over".to_owned(), |n| format!("{n} bytes,"));
    ApiError::TooLarge(format!(
        "the request body is {size} over the {MAX} bytes this endpoint accepts"
    ))
}

impl<S, T, const MAX: usize> FromRequest<S> for JsonBody<T, MAX>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, _: &S) -> Result<Self, ApiError> {
        let declared = request
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > MAX as u64) {
            return Err(too_large::<MAX>(declared));
        }
        let bytes = axum::body::to_bytes(request.into_body(), MAX)
            .await
            .map_err(|_| too_large::<MAX>(None))?;
        serde_json::from_slice(&bytes)
            .map(Self)
            .map_err(|e| ApiError::BadRequest(format!("request body: {e}")))
    }
}
