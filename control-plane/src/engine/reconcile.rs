//! Reconciling a runner that (re)connects: what it says it holds against what the store
//! says it was given. Announced attempts the store ended meanwhile are cancelled; attempts
//! it was given and no longer holds are lost (or requeued if never accepted); workspace
//! sessions likewise.

use std::collections::BTreeSet;

use kiln_protocol::{
    now_millis, AckedSeq, AttemptRef, ConnectionId, HeldState, Hello, ServerMessage, Welcome,
};

use super::Engine;
use crate::hub::AttemptKey;
use crate::model::{AttemptState, RunnerAnnouncement, RunnerRecord};
use crate::store::StoreError;

/// What the control plane decided about a runner's hello.
#[derive(Debug, Default)]
pub struct Reconciled {
    /// The answer to send.
    pub welcome: Option<Welcome>,
    /// Attempts the runner runs that it should stop (ended here meanwhile).
    pub cancels: Vec<ServerMessage>,
    /// Attempts that count against the runner's slots.
    pub active: BTreeSet<AttemptKey>,
}

/// Logs capabilities and labels a hello claims that the runner was not registered with:
/// they are ignored (an operator adds them with `kiln runners update`).
fn note_unregistered_claims(runner: &RunnerRecord, hello: &Hello) {
    let extra: Vec<&String> = hello
        .capabilities
        .iter()
        .filter(|c| !runner.capabilities.contains(c))
        .collect();
    let other_labels: Vec<String> = hello
        .labels
        .iter()
        .filter(|(k, v)| runner.labels.get(*k) != Some(*v))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if !extra.is_empty() || !other_labels.is_empty() {
        tracing::info!(runner = %runner.id, capabilities = ?extra, labels = ?other_labels,
            "runner claims capabilities or labels it was not registered with; ignored (kiln runners update gives them)");
    }
}

/// Compares the runner's announced attempts with the store. Announced attempts that the
/// store ended without a report (lost, cancelled) are cancelled; attempts the store gave
/// the runner that it does not announce are lost (or requeued if never accepted).
pub async fn reconcile(
    state: &Engine,
    runner: &RunnerRecord,
    hello: &Hello,
    connection_id: ConnectionId,
) -> Result<Reconciled, StoreError> {
    let now = now_millis();
    let announcement = RunnerAnnouncement {
        name: hello.name.clone(),
        max_concurrent: hello.max_concurrent,
        version: hello.version.clone(),
    };
    note_unregistered_claims(runner, hello);
    state
        .store
        .announce_runner(runner.id, &announcement, now)
        .await?;
    let mut reconciled = Reconciled::default();
    let mut acked = Vec::new();
    let mut unknown = Vec::new();
    let mut announced = BTreeSet::new();
    for running in &hello.running {
        announced.insert((running.task_id, running.attempt));
        let record = state
            .store
            .attempt(running.task_id, running.attempt)
            .await?;
        let Some(record) = record.filter(|r| r.runner_id == runner.id) else {
            tracing::warn!(runner = %runner.id, task = %running.task_id, attempt = running.attempt,
                "runner announced an attempt that is not its own");
            unknown.push(AttemptRef {
                task_id: running.task_id,
                attempt: running.attempt,
            });
            continue;
        };
        acked.push(AckedSeq {
            task_id: record.task_id,
            attempt: record.attempt,
            seq: record.acked_seq,
        });
        let open = !record.state.is_terminal();
        match running.state {
            HeldState::Running if open => {
                reconciled.active.insert((record.task_id, record.attempt));
                let task = state.store.task(record.task_id).await?;
                if task.is_some_and(|t| t.cancel_requested_at.is_some()) {
                    reconciled.cancels.push(ServerMessage::Cancel {
                        task_id: record.task_id,
                        attempt: record.attempt,
                        reason: "cancelled by operator".into(),
                    });
                }
            }
            HeldState::Running if record.outcome.is_none() => {
                reconciled.cancels.push(ServerMessage::Cancel {
                    task_id: record.task_id,
                    attempt: record.attempt,
                    reason: format!("attempt already ended as {}", record.state),
                });
            }
            // Its `finished` event is on the way and will end it.
            HeldState::Running | HeldState::Finished => {}
            HeldState::Abandoned => {
                if open {
                    tracing::warn!(runner = %runner.id, task = %record.task_id, attempt = record.attempt,
                        "runner restarted while the attempt ran; attempt lost");
                    let next = state
                        .store
                        .lose_attempt(record.task_id, record.attempt, runner.id, now)
                        .await?;
                    state.task_moved(record.task_id, next);
                }
            }
        }
    }
    reconcile_workspaces(state, runner, hello, &mut reconciled).await?;
    for open in state.store.open_attempts(runner.id).await? {
        if announced.contains(&(open.task_id, open.attempt)) {
            continue;
        }
        tracing::warn!(runner = %runner.id, task = %open.task_id, attempt = open.attempt,
            "runner no longer holds its attempt");
        let store = &state.store;
        let next = match open.state {
            // Never accepted: the assign was lost in flight. Not an attempt that ran.
            AttemptState::Assigned => {
                store
                    .reject_attempt(open.task_id, open.attempt, runner.id, now)
                    .await?
            }
            _ => {
                store
                    .lose_attempt(open.task_id, open.attempt, runner.id, now)
                    .await?
            }
        };
        state.task_moved(open.task_id, next);
    }
    reconciled.welcome = Some(Welcome {
        runner_id: runner.id,
        connection_id,
        heartbeat_interval_ms: u64::try_from(state.settings.heartbeat_interval.as_millis())
            .unwrap_or(u64::MAX),
        acked,
        unknown,
    });
    Ok(reconciled)
}

/// Sessions the runner holds that are closed here are closed there; open sessions bound to
/// it that it no longer holds (it restarted) are lost.
async fn reconcile_workspaces(
    state: &Engine,
    runner: &RunnerRecord,
    hello: &Hello,
    reconciled: &mut Reconciled,
) -> Result<(), StoreError> {
    let open = state.store.open_workspaces_of(runner.id).await?;
    for held in &hello.workspaces {
        if !open.iter().any(|w| w.id == *held) {
            reconciled.cancels.push(ServerMessage::CloseWorkspace {
                workspace_id: *held,
            });
        }
    }
    for workspace in open {
        if !hello.workspaces.contains(&workspace.id) {
            tracing::warn!(runner = %runner.id, workspace = %workspace.id, "runner no longer holds its workspace session");
            state
                .end_workspace(workspace.id, crate::model::WorkspaceState::Lost)
                .await?;
        }
    }
    Ok(())
}
