//! The dispatch loop: whenever something could let a queued task start (a submit, a runner
//! connecting, a slot freeing), place what can be placed. Push, never poll.

use kiln_protocol::{now_millis, ServerMessage, TaskSpec};
use tokio_util::sync::CancellationToken;

use crate::model::TaskRecord;
use crate::scheduler::{self, QueuedTask};
use crate::server::state::AppState;
use crate::store::StoreError;
use crate::watchers::TaskUpdate;

/// Queued tasks considered per round. Bounds one round's work; a full round runs again.
const DISPATCH_BATCH: u32 = 500;

/// Runs until `shutdown`, dispatching each time the hub asks.
pub async fn run(state: AppState, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            () = state.hub.dispatch_wanted() => {}
            () = shutdown.cancelled() => return,
        }
        if let Err(error) = dispatch(&state).await {
            tracing::error!(error = %error, "dispatch failed; will retry on the next event");
        }
    }
}

/// Places queued tasks on free slots until either runs out.
pub async fn dispatch(state: &AppState) -> Result<(), StoreError> {
    loop {
        let runners = state.hub.slots();
        if runners.iter().all(|r| r.free == 0) {
            return Ok(());
        }
        let queued = state.store.queued_tasks(DISPATCH_BATCH).await?;
        let candidates: Vec<QueuedTask> = queued.iter().map(candidate).collect();
        let placements = scheduler::place(&candidates, &runners);
        if placements.is_empty() {
            return Ok(());
        }
        for placement in placements {
            let Some(task) = queued.iter().find(|t| t.spec.id == placement.task) else {
                continue;
            };
            let now = now_millis();
            let Some(attempt) = state
                .store
                .assign(placement.task, placement.runner, now)
                .await?
            else {
                continue; // cancelled or taken meanwhile
            };
            let key = (placement.task, attempt.attempt);
            state.hub.reserve(placement.runner, key);
            let assign = ServerMessage::Assign {
                task: spec(task),
                attempt: attempt.attempt,
            };
            if state.hub.send(placement.runner, assign) {
                tracing::info!(task = %placement.task, attempt = attempt.attempt,
                    runner = %placement.runner, "task assigned");
            } else {
                // The runner left between the snapshot and now: undo, keep the task queued.
                state
                    .store
                    .reject_attempt(placement.task, attempt.attempt, placement.runner, now)
                    .await?;
                state.hub.release(placement.runner, key, now);
            }
            state
                .watchers
                .publish(placement.task, TaskUpdate::StateChanged);
        }
        if queued.len() < DISPATCH_BATCH as usize {
            return Ok(());
        }
    }
}

fn candidate(task: &TaskRecord) -> QueuedTask {
    QueuedTask {
        id: task.spec.id,
        repo: task.spec.repo.clone(),
        requires: task.spec.requires.clone(),
    }
}

/// What the runner is told about a task.
pub fn spec(task: &TaskRecord) -> TaskSpec {
    TaskSpec {
        task_id: task.spec.id,
        repo: task.spec.repo.clone(),
        base_ref: task.spec.base_ref.clone(),
        branch: task.spec.branch.clone(),
        prompt: task.spec.prompt.clone(),
        command: task.spec.command.clone(),
        env: task.spec.env.clone(),
        timeout_ms: task.spec.timeout_ms,
        idle_timeout_ms: task.spec.idle_timeout_ms,
    }
}
