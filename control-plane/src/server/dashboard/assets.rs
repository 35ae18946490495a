//! The dashboard's static files: its style sheet and the live log's script, served from
//! `/assets` so that the content security policy allows no inline code at all.

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::IntoResponse;

/// The style sheet: small, no build step.
pub const STYLE: &str = include_str!("kiln.css");

/// The task page's live log.
pub const LIVE_LOG: &str = include_str!("live_log.js");

/// Where pages link them.
pub const STYLE_PATH: &str = "/assets/kiln.css";
/// Where the task page loads its script.
pub const LIVE_LOG_PATH: &str = "/assets/live_log.js";

/// An hour: the files change only with the binary.
const CACHE: &str = "public, max-age=3600";

pub async fn style() -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, "text/css; charset=utf-8"),
            (CACHE_CONTROL, CACHE),
        ],
        STYLE,
    )
}

pub async fn live_log() -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (CACHE_CONTROL, CACHE),
        ],
        LIVE_LOG,
    )
}
