//! Placing a task as it is submitted: when a runner has a free slot for it and nothing
//! queued goes first, the transaction that stores the task also assigns it. That saves
//! the dispatch round between a submit and its runner: the queue reads and a second
//! commit, most of the latency the control plane adds.

use std::collections::HashMap;

use kiln_protocol::now_millis;

use crate::dispatcher;
use crate::model::{NewTask, TaskRecord, TaskState, WorkspaceRecord};
use crate::scheduler;
use crate::server::state::AppState;
use crate::store::StoreError;

/// Stores a submitted task (not sandboxed) and assigns it at once when it can; otherwise
/// it waits in the queue for the dispatcher. Its record as stored.
pub async fn submit(
    state: &AppState,
    task: NewTask,
    workspace: Option<&WorkspaceRecord>,
) -> Result<TaskRecord, StoreError> {
    let queued = TaskRecord::queued(task);
    // While the dispatcher places, it reads the queue: the task joins it there.
    let Some(_turn) = state.hub.try_placement_turn() else {
        return queue(state, queued).await;
    };
    let pinned = workspace.and_then(|w| w.runner_id);
    let candidate = dispatcher::candidate(state, &queued, pinned);
    let runners = state.hub.slots(state.settings.stale_after());
    let Some(placement) = scheduler::place(&[candidate], &runners).pop() else {
        return queue(state, queued).await;
    };
    let now = now_millis();
    let assigned = state
        .store
        .insert_and_assign(&queued.spec, placement.runner, now)
        .await?;
    let Some(attempt) = assigned else {
        // Stored, but something queued goes first.
        state.hub.wake_dispatcher();
        return Ok(queued);
    };
    let workspaces: HashMap<_, _> = workspace.map(|w| (w.id, w.clone())).into_iter().collect();
    let number = attempt.attempt;
    let sent = std::slice::from_ref(&queued);
    dispatcher::send_assignments(state, sent, &workspaces, vec![attempt], now).await?;
    Ok(TaskRecord {
        state: TaskState::Assigned,
        attempt: number,
        updated_at: now,
        ..queued
    })
}

/// Stores the task queued and asks the dispatcher to place it.
async fn queue(state: &AppState, queued: TaskRecord) -> Result<TaskRecord, StoreError> {
    state.store.insert_task(&queued.spec).await?;
    state.hub.wake_dispatcher();
    Ok(queued)
}
