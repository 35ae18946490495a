//! Controls that may not have arrived. An operator's control given to one replica reaches
//! a runner held by another through a notification, which is lost if that replica was not
//! listening at that moment. So each replica regularly compares what the store records
//! with the runners it holds and acts on the difference: it repeats cancels of attempts
//! still open, delivers drains, applies pauses and resumes, and closes revoked runners'
//! sockets. A runner ignores a repeated cancel.

use std::time::Duration;

use kiln_protocol::{millis_ago, ServerMessage};

use super::control::RunnerAction;
use crate::engine::Engine;
use crate::store::StoreError;

/// How often a replica compares: two indexed queries.
const CHECK_EVERY: Duration = Duration::from_secs(5);

/// How long after the request a control counts as not arrived: long enough for a relayed
/// control to arrive, short enough that an operator's control is never lost for long.
const UNHEEDED_AFTER: Duration = Duration::from_secs(5);

/// How far back revocations are looked at: a revoked runner still connected is closed
/// within a check; older revocations were acted on (and keep the query small, as every
/// burned sandbox leaves a revoked runner behind).
const REVOKED_WITHIN: Duration = Duration::from_secs(600);

/// Compares and repeats until shutdown.
pub async fn run(state: Engine) {
    let mut checks = tokio::time::interval(CHECK_EVERY);
    loop {
        tokio::select! {
            _ = checks.tick() => {}
            () = state.shutdown.cancelled() => return,
        }
        if let Err(error) = repeat_cancels(&state).await {
            tracing::warn!(%error, "cannot look for unheeded cancels");
        }
        if let Err(error) = reconcile_runners(&state).await {
            tracing::warn!(%error, "cannot compare runners with the store");
        }
    }
}

async fn repeat_cancels(state: &Engine) -> Result<(), StoreError> {
    for open in state
        .store
        .cancels_unheeded(millis_ago(UNHEEDED_AFTER))
        .await?
    {
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

async fn reconcile_runners(state: &Engine) -> Result<(), StoreError> {
    let due = millis_ago(UNHEEDED_AFTER);
    for record in state
        .store
        .runners_under_control(millis_ago(REVOKED_WITHIN))
        .await?
    {
        let Some(live) = state.hub.live(record.id) else {
            continue;
        };
        if record.revoked_at.is_some() {
            tracing::warn!(runner = %record.id, "closing a revoked runner's socket");
            state
                .carry_out_here(record.id, &RunnerAction::Revoke)
                .await?;
            continue;
        }
        if record.drain_requested_at.is_some_and(|at| at < due) && !live.draining {
            state
                .carry_out_here(record.id, &RunnerAction::Drain)
                .await?;
        }
        if record.paused_at.is_some() && !live.paused {
            state
                .carry_out_here(record.id, &RunnerAction::Pause)
                .await?;
        }
    }
    for runner in state.hub.paused() {
        let resumed = state
            .store
            .runner(runner)
            .await?
            .is_some_and(|record| record.paused_at.is_none());
        if resumed {
            state.carry_out_here(runner, &RunnerAction::Resume).await?;
        }
    }
    Ok(())
}
