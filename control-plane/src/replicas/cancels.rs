//! Cancels that may not have arrived: a cancel given to one replica reaches a runner held
//! by another through a notification, which is lost if that replica was not listening at
//! that moment. Each replica repeats, to the runners it holds, the cancels of attempts
//! still open a while after they were requested; a runner ignores a repeated cancel.

use std::time::Duration;

use kiln_protocol::{now_millis, ServerMessage};

use crate::server::state::AppState;
use crate::store::StoreError;

/// How often a replica looks for unheeded cancels: one indexed query.
const CHECK_EVERY: Duration = Duration::from_secs(5);

/// How long after the request an open attempt counts as unheeded: long enough for a
/// relayed cancel to arrive, short enough that an operator's cancel is never lost for long.
const UNHEEDED_AFTER: Duration = Duration::from_secs(5);

/// Repeats unheeded cancels until shutdown.
pub async fn run(state: AppState) {
    let mut checks = tokio::time::interval(CHECK_EVERY);
    loop {
        tokio::select! {
            _ = checks.tick() => {}
            () = state.shutdown.cancelled() => return,
        }
        if let Err(error) = repeat(&state).await {
            tracing::warn!(%error, "cannot look for unheeded cancels");
        }
    }
}

async fn repeat(state: &AppState) -> Result<(), StoreError> {
    let window = i64::try_from(UNHEEDED_AFTER.as_millis()).unwrap_or(i64::MAX);
    let before = now_millis().saturating_sub(window);
    for open in state.store.cancels_unheeded(before).await? {
        let message = ServerMessage::Cancel {
            task_id: open.task_id,
            attempt: open.attempt,
            reason: "cancel requested".to_owned(),
        };
        if state.hub.send(open.runner_id, message) {
            tracing::info!(task = %open.task_id, attempt = open.attempt, runner = %open.runner_id,
                "cancel repeated to a runner still running its attempt");
        }
    }
    Ok(())
}
