//! LISTEN for the other replicas' notifications and act on them here: wake the
//! dispatcher, wake the followers of a changed task, deliver relayed frames to runners on
//! this replica.

use std::time::Duration;

use kiln_protocol::TaskId;
use sqlx::postgres::{PgListener, PgNotification};

use super::control::{self, RunnerControl};
use crate::engine::Engine;
use crate::store::postgres_notify::{self as notify, QUEUE, RUNNER, TASK};
use crate::watchers::TaskUpdate;

/// Wait before listening again after the database connection failed: long enough not to
/// spin against a database that is down, short enough that a restart is noticed quickly.
const RECONNECT_DELAY: Duration = Duration::from_secs(1);

/// Listens until shutdown, reconnecting after failures.
pub async fn run(state: Engine, url: String) {
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

async fn listen(state: &Engine, url: &str) -> Result<(), sqlx::Error> {
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
fn catch_up(state: &Engine) {
    state.hub.wake_dispatcher();
    state.watchers.publish_all_changed();
}

async fn handle(state: &Engine, notification: &PgNotification) {
    let payload = notification.payload();
    match notification.channel() {
        QUEUE => state.hub.wake_dispatcher(),
        TASK => match payload.split_once(' ') {
            Some((origin, _)) if origin == notify::origin() => {} // told from memory
            Some((_, task)) => match task.parse::<TaskId>() {
                Ok(task) => state.watchers.publish(task, TaskUpdate::Unknown),
                Err(error) => tracing::warn!(%payload, %error, "unreadable task notification"),
            },
            None => tracing::warn!(%payload, "unreadable task notification"),
        },
        RUNNER => match serde_json::from_str::<RunnerControl>(payload) {
            Ok(control) if state.hub.live(control.runner).is_some() => {
                let runner = control.runner;
                if let Err(error) = control::carry_out(state, control).await {
                    tracing::error!(%runner, %error, "cannot carry out a relayed control");
                }
            }
            Ok(_) => {} // another replica holds the runner, or none does
            Err(error) => tracing::warn!(%error, "unreadable relayed runner control"),
        },
        other => tracing::warn!(channel = %other, "notification on an unknown channel"),
    }
}
