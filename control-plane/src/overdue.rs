//! Timeouts and cancels that hold whatever the runner does. A runner stops its agent at the
//! task's timeout or on a cancel and reports the end; one that does not (wedged, hostile, or
//! cut off while its heartbeats still come) would keep the task running forever. Every
//! [`SWEEP_EVERY`] this ends any task whose timeout, or whose cancel, is older than the stop
//! grace while its attempt is still open. The store's conditional end makes the sweep safe
//! on every replica at once: each task is ended once.

use std::time::Duration;

use kiln_protocol::{millis_ago, now_millis, ServerMessage};
use tokio_util::sync::CancellationToken;

use crate::engine::Engine;
use crate::model::{AttemptRecord, TaskState};
use crate::store::StoreError;

/// How often the sweep runs at most: a task ends within this of its grace running out.
const SWEEP_EVERY: Duration = Duration::from_secs(5);

/// Runs the sweep until `shutdown`.
pub async fn watch(state: Engine, shutdown: CancellationToken) {
    // Short graces (tests) are swept more often, so that a task ends close to its grace.
    let period = SWEEP_EVERY
        .min(state.settings.stop_grace / 4)
        .max(Duration::from_millis(100));
    loop {
        tokio::select! {
            () = tokio::time::sleep(period) => {}
            () = shutdown.cancelled() => return,
        }
        if let Err(error) = sweep(&state).await {
            tracing::error!(%error, "could not look for tasks their runners did not stop");
        }
    }
}

/// Ends every task whose runner let its timeout or cancel pass the stop grace.
pub async fn sweep(state: &Engine) -> Result<(), StoreError> {
    let grace = state.settings.stop_grace;
    let due = millis_ago(grace);
    for attempt in state.store.timeouts_unheeded(due).await? {
        let message = format!(
            "timed out: its runner did not stop it within {} of its timeout, so the control plane ended it",
            humantime::format_duration(grace)
        );
        end(state, &attempt, TaskState::TimedOut, &message).await?;
    }
    for attempt in state.store.cancels_unheeded(due).await? {
        let message = format!(
            "cancelled: its runner did not confirm the cancel within {}, so the control plane ended it",
            humantime::format_duration(grace)
        );
        end(state, &attempt, TaskState::Cancelled, &message).await?;
    }
    Ok(())
}

async fn end(
    state: &Engine,
    attempt: &AttemptRecord,
    task_state: TaskState,
    message: &str,
) -> Result<(), StoreError> {
    let (task, number, runner) = (attempt.task_id, attempt.attempt, attempt.runner_id);
    let now = now_millis();
    if !state.store.end_task(task, task_state, message, now).await? {
        return Ok(());
    }
    tracing::warn!(%task, attempt = number, %runner, state = %task_state, "runner did not end its attempt in time; the control plane ended the task");
    // The runner may still be listening: tell it again, and stop counting the slot.
    state.hub.send(
        runner,
        ServerMessage::Cancel {
            task_id: task,
            attempt: number,
            reason: message.to_owned(),
        },
    );
    state.hub.release(runner, (task, number), now);
    state.task_moved(task, Some(task_state));
    Ok(())
}
