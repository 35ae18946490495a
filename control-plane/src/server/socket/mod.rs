//! The runner socket: `GET /v1/runners/connect`, authenticated in the HTTP upgrade.
//!
//! A bad or revoked token gets `401` before any upgrade, so a refused runner learns why
//! from an ordinary HTTP answer and stops.

mod connection;
mod handshake;
mod reader;

use std::net::SocketAddr;

use axum::extract::connect_info::ConnectInfo;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::State;
use axum::response::Response;
use kiln_protocol::limits::MAX_FRAME_BYTES;

use super::auth::Runner;
use super::error::ApiError;
use super::state::AppState;

/// Read buffer per socket. Runner frames are small; 4 KiB instead of the default 128 KiB
/// keeps thousands of idle connections cheap (see docs/performance.md).
const READ_BUFFER_BYTES: usize = 4 * 1024;

/// Upgrades an authenticated runner's request to its connection.
pub async fn connect(
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Runner(runner): Runner,
    State(state): State<AppState>,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let Some(slot) = state.handshakes.take(peer.ip()) else {
        tracing::warn!(%peer, runner = %runner.id, "too many runner handshakes in progress from this address");
        return Err(ApiError::TooMany(format!(
            "too many runner handshakes in progress from {}",
            peer.ip()
        )));
    };
    Ok(upgrade
        .read_buffer_size(READ_BUFFER_BYTES)
        .max_message_size(MAX_FRAME_BYTES)
        .max_frame_size(MAX_FRAME_BYTES)
        .on_upgrade(move |socket| connection::run(socket, runner, state, slot)))
}
