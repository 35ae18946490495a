//! Lost runners: a runner that stays away longer than `lost_after` has its open attempts
//! ended as `lost`, and their tasks go back to the queue while attempts remain.
//!
//! Event-driven: a disconnect (or, at start-up, a runner that holds attempts but is not
//! connected) starts a timer for that runner; a reconnect cancels it by clearing the
//! departure.

use kiln_protocol::{millis_ago, now_millis, RunnerId};
use tokio::time::sleep_until;

use crate::engine::Engine;
use crate::model::AttemptState;
use crate::store::StoreError;

/// At start-up, every runner holding open attempts is away until it reconnects.
pub async fn watch_all_absent(state: &Engine) -> Result<(), StoreError> {
    let now = tokio::time::Instant::now();
    for runner in state.store.runners_with_open_attempts().await? {
        if state.hub.live(runner).is_none() {
            state.hub.mark_departed(runner, now);
            watch(state.clone(), runner);
        }
    }
    Ok(())
}

/// Starts the timer for a runner that just went away.
pub fn watch(state: Engine, runner: RunnerId) {
    state.tracker.clone().spawn(async move {
        loop {
            let Some(departed) = state.hub.departed_at(runner) else {
                return;
            };
            let due = departed + state.settings.lost_after;
            tokio::select! {
                () = sleep_until(due) => {}
                () = state.shutdown.cancelled() => return,
            }
            if state.hub.departed_at(runner) == Some(departed) {
                break;
            }
        }
        match heard_from_lately(&state, runner).await {
            Ok(true) => {
                tracing::info!(%runner, "runner went to another replica, which watches it now; not lost");
                state.hub.forget_departure(runner);
                return;
            }
            Ok(false) => {}
            Err(error) => {
                tracing::error!(%runner, error = %error, "cannot read when a runner was last seen");
                return;
            }
        }
        if let Err(error) = declare_lost(&state, runner).await {
            tracing::error!(%runner, error = %error, "could not declare a runner's attempts lost");
        }
    });
}

/// True when some replica heard from `runner` within `lost_after` (it heartbeats into the
/// store): it left this replica for another, and is not lost. With one control plane, its
/// last heartbeat came before it went away, so this is false once the timer is due.
pub async fn heard_from_lately(state: &Engine, runner: RunnerId) -> Result<bool, StoreError> {
    let since = millis_ago(state.settings.lost_after);
    let record = state.store.runner(runner).await?;
    Ok(record.is_some_and(|r| r.heard_since(since)))
}

/// Ends every open attempt of `runner` as lost (or requeues it if never accepted).
pub async fn declare_lost(state: &Engine, runner: RunnerId) -> Result<(), StoreError> {
    let now = now_millis();
    for open in state.store.open_attempts(runner).await? {
        let (next, accepted) = match open.state {
            AttemptState::Assigned => (
                state
                    .store
                    .reject_attempt(open.task_id, open.attempt, runner, now)
                    .await?,
                " (never accepted)",
            ),
            _ => (
                state
                    .store
                    .lose_attempt(open.task_id, open.attempt, runner, now)
                    .await?,
                "",
            ),
        };
        let Some(task_now) = next else {
            continue;
        };
        tracing::warn!(%runner, task = %open.task_id, attempt = open.attempt,
            task_now = %format!("{task_now}{accepted}"), "runner stayed away; attempt lost");
        state.task_moved(open.task_id, next);
    }
    state.hub.forget_departure(runner);
    state.hub.wake_dispatcher();
    Ok(())
}
