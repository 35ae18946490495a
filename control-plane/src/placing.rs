//! Placing a task as it is submitted: when a runner has a free slot for it and nothing
//! queued goes first, the transaction that stores the task also assigns it. That saves
//! the dispatch round between a submit and its runner: the queue reads and a second
//! commit, most of the latency the control plane adds.

use std::collections::HashMap;

use kiln_protocol::{now_millis, RunnerId};
use tokio::sync::OwnedMutexGuard;

use crate::dispatcher;
use crate::engine::Engine;
use crate::model::{NewTask, TaskRecord, TaskState, WorkspaceRecord};
use crate::scheduler;
use crate::store::StoreError;

/// Stores a submitted task (not sandboxed) and assigns it at once when it can; otherwise
/// it waits in the queue for the dispatcher. Its record as stored.
pub async fn submit(
    state: &Engine,
    task: NewTask,
    workspace: Option<&WorkspaceRecord>,
) -> Result<TaskRecord, StoreError> {
    let queued = TaskRecord::queued(task);
    // While the dispatcher places, it reads the queue: the task joins it there.
    let Some(turn) = state.hub.try_placement_turn() else {
        return queue(state, queued).await;
    };
    let pinned = workspace.and_then(|w| w.runner_id);
    let candidate = dispatcher::candidate(state, &queued, pinned);
    let runners = state.hub.slots(state.settings.stale_after());
    let Some(placement) = scheduler::place(&[candidate], &runners).pop() else {
        drop(turn);
        return queue(state, queued).await;
    };
    // Once the attempt is stored, its runner must be told and the slot reserved, even if
    // the request is dropped meanwhile (the client left, the server stops): a task of its
    // own does that, and dropping this future does not cancel it.
    let placing = state.tracker.spawn(store_and_send(
        state.clone(),
        queued,
        workspace.cloned(),
        placement.runner,
        turn,
    ));
    match placing.await {
        Ok(placed) => placed,
        Err(failed) if failed.is_panic() => std::panic::resume_unwind(failed.into_panic()),
        // Cancelled: only the runtime shutting down does that.
        Err(_) => Err(StoreError::Closed),
    }
}

/// Stores the task and assigns it to `runner` unless something queued goes first, then
/// sends the assignment; `turn` is held throughout.
async fn store_and_send(
    state: Engine,
    queued: TaskRecord,
    workspace: Option<WorkspaceRecord>,
    runner: RunnerId,
    turn: OwnedMutexGuard<()>,
) -> Result<TaskRecord, StoreError> {
    let now = now_millis();
    let assigned = state
        .store
        .insert_and_assign(&queued.spec, runner, now)
        .await?;
    let Some(attempt) = assigned else {
        // Stored, but something queued goes first.
        drop(turn);
        state.hub.wake_dispatcher();
        return Ok(queued);
    };
    let workspaces: HashMap<_, _> = workspace.map(|w| (w.id, w)).into_iter().collect();
    let number = attempt.attempt;
    let sent = std::slice::from_ref(&queued);
    dispatcher::send_assignments(&state, sent, &workspaces, vec![attempt], now).await?;
    drop(turn);
    Ok(TaskRecord {
        state: TaskState::Assigned,
        attempt: number,
        updated_at: now,
        ..queued
    })
}

/// Stores the task queued and asks the dispatcher to place it.
async fn queue(state: &Engine, queued: TaskRecord) -> Result<TaskRecord, StoreError> {
    state.store.insert_task(&queued.spec).await?;
    state.hub.wake_dispatcher();
    Ok(queued)
}
