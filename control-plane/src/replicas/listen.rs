//! LISTEN for the other replicas' notifications and act on them here: wake the
//! dispatcher, wake the followers of a changed task, deliver relayed frames to runners on
//! this replica.

use std::time::Duration;

use kiln_protocol::TaskId;
use sqlx::postgres::{PgListener, PgNotification};

use super::{RunnerAction, RunnerControl};
use crate::server::state::AppState;
use crate::store::postgres_notify::{QUEUE, RUNNER, TASK};
use crate::watchers::TaskUpdate;

/// Wait before listening again after the database connection failed: long enough not to
/// spin against a database that is down, short enough that a restart is noticed quickly.
const RECONNECT_DELAY: Duration = Duration::from_secs(1);

/// Listens until shutdown, reconnecting after failures.
pub async fn run(state: AppState, url: String) {
    loop {
        if let Err(error) = listen(&state, &url).await {
            tracing::warn!(error = %error, "lost the database's notifications; listening again");
        }
        tokio::select! {
            () = tokio::time::sleep(RECONNECT_DELAY) => {}
            () = state.shutdown.cancelled() => return,
        }
    }
}

async fn listen(state: &AppState, url: &str) -> Result<(), sqlx::Error> {
    let mut listener = PgListener::connect(url).await?;
    listener.listen_all([QUEUE, TASK, RUNNER]).await?;
    // Whatever was notified before we listened is in the store: look at it now.
    catch_up(state);
    loop {
        tokio::select! {
            received = listener.try_recv() => match received? {
                Some(notification) => handle(state, &notification).await,
                // The connection dropped and was re-established: notifications of the gap
                // are lost, their effects are not.
                None => catch_up(state),
            },
            () = state.shutdown.cancelled() => return Ok(()),
        }
    }
}

/// Acts as if everything changed: the dispatcher looks at the queue and followers re-read.
fn catch_up(state: &AppState) {
    state.hub.wake_dispatcher();
    state.watchers.publish_all_changed();
}

async fn handle(state: &AppState, notification: &PgNotification) {
    let payload = notification.payload();
    match notification.channel() {
        QUEUE => state.hub.wake_dispatcher(),
        TASK => match payload.parse::<TaskId>() {
            Ok(task) => state.watchers.publish(task, TaskUpdate::StateChanged),
            Err(error) => tracing::warn!(%payload, %error, "unreadable events notification"),
        },
        RUNNER => match serde_json::from_str::<RunnerControl>(payload) {
            Ok(control) if state.hub.live(control.runner).is_some() => {
                if let Err(error) = carry_out(state, control.runner, control.action).await {
                    tracing::error!(runner = %control.runner, %error, "cannot carry out a relayed control");
                }
            }
            Ok(_) => {} // another replica holds the runner, or none does
            Err(error) => tracing::warn!(%error, "unreadable relayed runner control"),
        },
        other => tracing::warn!(channel = %other, "notification on an unknown channel"),
    }
}

/// Does what another replica's operator asked, to a runner connected here.
async fn carry_out(
    state: &AppState,
    runner: kiln_protocol::RunnerId,
    action: RunnerAction,
) -> Result<(), crate::store::StoreError> {
    match action {
        RunnerAction::Send { message } => {
            state.hub.send(runner, message);
        }
        RunnerAction::Drain => {
            if state.hub.send(runner, kiln_protocol::ServerMessage::Drain) {
                state.hub.set_draining(runner);
                // Delivered: it must not drain again on its next start, as with a local drain.
                state.store.set_drain_requested(runner, None).await?;
            }
        }
        RunnerAction::Pause => state.hub.set_paused(runner, true),
        RunnerAction::Resume => state.hub.set_paused(runner, false),
        RunnerAction::Revoke => {
            state.hub.close(
                runner,
                kiln_protocol::CloseCode::Revoked,
                "runner token revoked",
            );
        }
        RunnerAction::Rotate => crate::server::api::fleet::send_new_token(state, runner).await?,
    }
    Ok(())
}
