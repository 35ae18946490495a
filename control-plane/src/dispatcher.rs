//! The dispatch loop: whenever something could let a queued task start (a submit, a runner
//! connecting, a slot freeing), place what can be placed. Push, never poll.
//!
//! Each round reads the queue head, asks the pure scheduler for placements, records all of
//! them in one transaction, and only then sends the `assign`s. An assignment not accepted
//! within the accept deadline goes back to the queue.

use std::collections::{HashMap, HashSet};

use kiln_protocol::{now_millis, RunnerId, ServerMessage, UnixMillis, WorkspaceId};
use tokio_util::sync::CancellationToken;

use crate::engine::Engine;
use crate::model::{AttemptRecord, AttemptState, TaskRecord, WorkspaceRecord};
use crate::scheduler::{self, QueuedTask};
use crate::store::StoreError;
use crate::watchers::TaskUpdate;

/// Most queued tasks considered per round. Bounds one round's work; a full round runs again.
const DISPATCH_BATCH: u32 = 2000;

/// Queued tasks read per free slot: room for tasks no free runner can take (capabilities,
/// refusals) without reading the whole backlog each time a slot frees.
const WINDOW_PER_FREE_SLOT: u32 = 4;

/// Wait before a failed round (store unreachable, a transaction aborted) runs again.
const RETRY_AFTER_FAILURE: std::time::Duration = std::time::Duration::from_secs(1);

/// Fewest queued tasks read per round.
const MIN_WINDOW: u32 = 64;

/// Runs until `shutdown`, dispatching each time the hub asks.
pub async fn run(state: Engine, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            () = state.hub.dispatch_wanted() => {}
            () = shutdown.cancelled() => return,
        }
        if let Err(error) = dispatch(&state).await {
            // The wake that started this round is spent: ask again, after a pause so that a
            // store that is down is not hammered.
            tracing::error!(error = %error, retry_in = ?RETRY_AFTER_FAILURE, "dispatch failed");
            let hub = std::sync::Arc::clone(&state.hub);
            state.tracker.spawn(async move {
                tokio::time::sleep(RETRY_AFTER_FAILURE).await;
                hub.wake_dispatcher();
            });
        }
    }
}

/// The scheduler's view of a queued task; a session or sandbox task is pinned to its runner.
pub fn candidate(state: &Engine, task: &TaskRecord, pinned: Option<RunnerId>) -> QueuedTask {
    QueuedTask {
        id: task.spec.id,
        repo: task.spec.repo.clone(),
        requires: task.spec.requires.clone(),
        labels: task.spec.labels.clone(),
        refused_by: state.hub.rejected_by(task.spec.id),
        pinned,
    }
}

/// The runner a task must run on, if any: its session's, or its sandbox's.
pub async fn pin(
    state: &Engine,
    task: &TaskRecord,
    workspaces: &HashMap<WorkspaceId, WorkspaceRecord>,
) -> Result<Option<RunnerId>, StoreError> {
    if let Some(workspace) = task.spec.workspace_id.and_then(|w| workspaces.get(&w)) {
        return Ok(workspace.runner_id);
    }
    match task.spec.sandbox_id {
        Some(_) => Ok(state
            .store
            .sandbox_of_task(task.spec.id)
            .await?
            .map(|s| s.runner_id)),
        None => Ok(None),
    }
}

/// The workspace sessions of the queued tasks, by id.
pub async fn workspaces_of(
    state: &Engine,
    tasks: &[TaskRecord],
) -> Result<HashMap<WorkspaceId, WorkspaceRecord>, StoreError> {
    let mut found = HashMap::new();
    for id in tasks.iter().filter_map(|t| t.spec.workspace_id) {
        if let std::collections::hash_map::Entry::Vacant(slot) = found.entry(id) {
            if let Some(workspace) = state.store.workspace(id).await? {
                slot.insert(workspace);
            }
        }
    }
    Ok(found)
}

/// Places queued tasks on free slots until either runs out.
pub async fn dispatch(state: &Engine) -> Result<(), StoreError> {
    loop {
        let runners = state.hub.slots(state.settings.stale_after());
        if !runners.iter().any(|r| r.free > 0) {
            return Ok(());
        }
        // Read the queue head in proportion to the free slots, and further only when none
        // of what was read could be placed.
        let free: u32 = runners.iter().map(|r| r.free).sum();
        let mut window = free
            .saturating_mul(WINDOW_PER_FREE_SLOT)
            .clamp(MIN_WINDOW, DISPATCH_BATCH);
        let (queued, workspaces, candidates) = loop {
            let queued = state.store.queued_tasks(window).await?;
            let (workspaces, candidates) = plan(state, &queued).await?;
            let read_all = queued.len() < window as usize;
            let placeable = !scheduler::place(&candidates, &runners).is_empty();
            if !placeable && !read_all && window < DISPATCH_BATCH {
                window = window
                    .saturating_mul(WINDOW_PER_FREE_SLOT)
                    .min(DISPATCH_BATCH);
                continue;
            }
            if !placeable {
                return Ok(());
            }
            break (queued, workspaces, candidates);
        };
        // The reads above ran without the turn, so that a submit placing its own task need
        // not wait for them. The slots are read again under it: that submit may have taken
        // one. Its task is not among the candidates, and it only places a session's task
        // when none of the session's is queued.
        let turn = state.hub.placement_turn().await;
        let runners = state.hub.slots(state.settings.stale_after());
        let placements = scheduler::place(&candidates, &runners);
        let pairs: Vec<_> = placements.iter().map(|p| (p.task, p.runner)).collect();
        if pairs.is_empty() {
            continue;
        }
        let now = now_millis();
        let attempts = state.store.assign(&pairs, now).await?;
        send_assignments(state, &queued, &workspaces, attempts, now).await?;
        drop(turn);
        if queued.len() < window as usize {
            return Ok(());
        }
    }
}

/// The scheduler's candidates among `queued`, with the sessions of the queued tasks.
async fn plan(
    state: &Engine,
    queued: &[TaskRecord],
) -> Result<(HashMap<WorkspaceId, WorkspaceRecord>, Vec<QueuedTask>), StoreError> {
    // A session runs one task at a time: skip sessions that are busy, and all but the
    // first queued task of each idle one. Without session tasks there is nothing to read.
    let (workspaces, mut busy) = if queued.iter().any(|t| t.spec.workspace_id.is_some()) {
        let (workspaces, busy) =
            tokio::try_join!(workspaces_of(state, queued), state.store.busy_workspaces())?;
        (workspaces, busy.into_iter().collect())
    } else {
        (HashMap::new(), HashSet::new())
    };
    let mut candidates = Vec::with_capacity(queued.len());
    for task in queued
        .iter()
        .filter(|t| t.spec.workspace_id.is_none_or(|w| busy.insert(w)))
    {
        let pinned = pin(state, task, &workspaces).await?;
        candidates.push(candidate(state, task, pinned));
    }
    Ok((workspaces, candidates))
}

/// Sends the recorded attempts to their runners; one whose runner left meanwhile goes back
/// to the queue. The caller holds the placement turn.
pub async fn send_assignments(
    state: &Engine,
    queued: &[TaskRecord],
    workspaces: &HashMap<WorkspaceId, WorkspaceRecord>,
    attempts: Vec<AttemptRecord>,
    now: UnixMillis,
) -> Result<(), StoreError> {
    for attempt in attempts {
        let Some(task) = queued.iter().find(|t| t.spec.id == attempt.task_id) else {
            continue;
        };
        let (runner, key) = (attempt.runner_id, (attempt.task_id, attempt.attempt));
        state.hub.reserve(runner, key);
        let workspace = task.spec.workspace_id.and_then(|w| workspaces.get(&w));
        let assign = ServerMessage::Assign {
            task: Box::new(crate::assignment::spec(&task.spec, workspace)),
            attempt: attempt.attempt,
        };
        if state.hub.send(runner, assign) {
            if attempt.attempt == 1 {
                let waited = now.saturating_sub(task.spec.created_at).max(0);
                let waited = std::time::Duration::from_millis(waited.unsigned_abs());
                state.metrics.dispatch_latency.observe(waited);
            }
            tracing::info!(task = %attempt.task_id, attempt = attempt.attempt, %runner, "task assigned");
            expire_unaccepted(state.clone(), attempt.task_id, attempt.attempt, runner);
        } else {
            // The runner left between the snapshot and now: undo, keep the task queued.
            let next = state
                .store
                .reject_attempt(attempt.task_id, attempt.attempt, runner, now)
                .await?;
            state.hub.release(runner, key, now);
            state.task_moved(attempt.task_id, next);
            continue;
        }
        state
            .watchers
            .publish(attempt.task_id, TaskUpdate::StateChanged);
    }
    Ok(())
}

/// Sends the attempt back to the queue if its runner has not accepted it by the deadline.
fn expire_unaccepted(
    state: Engine,
    task: kiln_protocol::TaskId,
    attempt: u32,
    runner: kiln_protocol::RunnerId,
) {
    state.tracker.clone().spawn(async move {
        tokio::select! {
            () = tokio::time::sleep(state.settings.accept_deadline) => {}
            () = state.shutdown.cancelled() => return,
        }
        let still_assigned = matches!(
            state.store.attempt(task, attempt).await,
            Ok(Some(record)) if record.state == AttemptState::Assigned
        );
        if !still_assigned {
            return;
        }
        tracing::warn!(%task, attempt, %runner, "assignment not accepted in time; back to the queue");
        let now = now_millis();
        let next = match state.store.reject_attempt(task, attempt, runner, now).await {
            Ok(next) => next,
            Err(error) => {
                tracing::error!(error = %error, "could not requeue an unaccepted assignment");
                return;
            }
        };
        state.hub.note_rejection(task, runner);
        state.hub.release(runner, (task, attempt), now);
        state.task_moved(task, next);
        let reason = "assignment was not accepted in time".to_owned();
        state.hub.send(
            runner,
            ServerMessage::Cancel {
                task_id: task,
                attempt,
                reason,
            },
        );
        state.watchers.publish(task, TaskUpdate::StateChanged);
    });
}
