//! The control plane's HTTP and WebSocket server.
//!
//! `run(listener, state, shutdown)` takes its stop trigger as an argument: signals are
//! handled only in `main`, and tests stop a server by cancelling the token.

pub mod api;
mod auth;
mod dashboard;
pub mod error;
mod first_read;
mod headers;
pub mod listener;
pub mod per_address;
mod socket;
pub mod state;
pub mod tls;

use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use state::AppState;

/// The whole HTTP surface, without a socket, so handlers can be tested directly.
pub fn app(state: AppState) -> Router {
    api::routes(&state)
        .merge(dashboard::routes())
        .route("/v1/runners/connect", get(socket::connect))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .layer(axum::middleware::map_response(headers::protect))
        .with_state(state)
}

/// Prometheus text format; counts only, no ids or names, so it needs no token.
async fn metrics(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> Result<([(axum::http::HeaderName, &'static str); 1], String), error::ApiError> {
    let body = crate::metrics::render(&state.engine).await?;
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    ))
}

async fn ready(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> (StatusCode, &'static str) {
    let probe = state.engine.store.probe_write(kiln_protocol::now_millis());
    match tokio::time::timeout(READY_TIMEOUT, probe).await {
        Ok(Ok(())) => (StatusCode::OK, "ready"),
        Ok(Err(error)) if error.is_disk_full() => {
            tracing::error!(error = %error, "store cannot write: its disk is full");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "store cannot write: the disk is full",
            )
        }
        Ok(Err(error)) => {
            tracing::error!(error = %error, "store cannot write");
            (StatusCode::SERVICE_UNAVAILABLE, "store unreachable")
        }
        Err(_) => {
            tracing::error!(timeout = ?READY_TIMEOUT, "store did not answer");
            (StatusCode::SERVICE_UNAVAILABLE, "store unreachable")
        }
    }
}

/// How long `/readyz` waits for the store: a load balancer's probe needs an answer within
/// its own timeout (commonly 5 s), and a store this slow is not serving anyway.
const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Serves on `listener` until `shutdown` is cancelled, then closes every connection and
/// waits (briefly) for requests in flight. The engine's background work is started and
/// stopped beside it (`serve.rs`).
pub async fn run(
    listener: TcpListener,
    state: AppState,
    options: listener::ListenOptions,
    shutdown: CancellationToken,
) {
    listener::serve(listener, app(state), options, shutdown.clone()).await;
    shutdown.cancel();
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt as _;

    use super::app;
    use super::state::{AppState, ServerSettings};
    use crate::store::SqliteStore;

    async fn status(state: &AppState, path: &str) -> StatusCode {
        let request = Request::get(path).body(Body::empty()).unwrap();
        app(state.clone()).oneshot(request).await.unwrap().status()
    }

    #[tokio::test]
    async fn readyz_fails_once_the_store_is_unreachable_and_healthz_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("kiln.db"))
            .await
            .unwrap();
        let state = AppState::new(
            Arc::new(store.clone()),
            ServerSettings::default(),
            Default::default(),
        );
        assert_eq!(status(&state, "/readyz").await, StatusCode::OK);
        store.close().await;
        assert_eq!(
            status(&state, "/readyz").await,
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(status(&state, "/healthz").await, StatusCode::OK);
    }
}
