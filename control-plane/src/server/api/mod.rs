//! The HTTP API under `/v1`. The CLI is a client of exactly these routes.

mod artifacts;
mod batch;
mod body;
mod events;
mod files;
pub mod fleet;
pub mod runners;
mod sandboxes;
mod tags;
pub mod tasks;
mod workspaces;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};
use axum::Router;

use super::state::AppState;

/// Routes of `/v1`.
pub fn routes(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/v1/tasks", post(tasks::submit).get(tasks::list))
        .route("/v1/tasks/batch", post(batch::submit))
        .route("/v1/tasks/{id}", get(tasks::show))
        .route("/v1/tasks/{id}/cancel", post(tasks::cancel))
        .route("/v1/tasks/{id}/retry", post(tasks::retry))
        .route("/v1/tasks/{id}/events", get(events::stream))
        .route("/v1/tasks/{id}/artifacts/{kind}", get(artifacts::download))
        .route(
            "/v1/tasks/{id}/attempts/{attempt}/artifacts/{kind}",
            put(artifacts::upload).layer(DefaultBodyLimit::max(
                state.engine.settings.max_upload_bytes,
            )),
        )
        .route("/v1/workspaces", post(workspaces::create))
        .route("/v1/workspaces/{id}", get(workspaces::show))
        .route("/v1/workspaces/{id}/close", post(workspaces::close))
        .route("/v1/files/{id}", post(files::request))
        .route("/v1/sandboxes", get(sandboxes::list))
        .route("/v1/sandboxes/{id}/burn", post(sandboxes::burn))
        .route("/v1/runners", get(runners::list))
        .route("/v1/runners/{id}/drain", post(fleet::drain))
        .route("/v1/runners/{id}/pause", post(fleet::pause))
        .route("/v1/runners/{id}/resume", post(fleet::resume))
        .route("/v1/runners/{id}/revoke", post(fleet::revoke))
        .route("/v1/runners/{id}/rotate", post(fleet::rotate))
        .route("/v1/runners/{id}/update", post(tags::update))
        .route("/v1/runners/register", post(runners::register))
        .route(
            "/v1/registration-tokens",
            post(runners::create_registration_token),
        )
}
