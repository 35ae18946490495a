//! Operators' controls of a runner that another replica holds: relayed by NOTIFY, and
//! carried out by the holder only when the store records the operator's request, so a
//! notification alone (from any role that may NOTIFY on the database) changes nothing.

use kiln_protocol::{RunnerId, TaskId, WorkspaceId};
use serde::{Deserialize, Serialize};

use crate::engine::Engine;
use crate::model::WorkspaceState;
use crate::store::StoreError;

/// What the replica holding a runner's socket is asked to do with it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum RunnerAction {
    /// Stop an attempt (its task's cancel is recorded).
    Cancel {
        /// The task.
        task_id: TaskId,
        /// Its attempt on this runner.
        attempt: u32,
        /// Why, for the task's log.
        reason: String,
    },
    /// Send `drain` and stop placing work on it (the drain is recorded).
    Drain,
    /// Stop placing work on it (it is recorded paused).
    Pause,
    /// Place work on it again (it is recorded not paused).
    Resume,
    /// Close its socket (its token is recorded revoked).
    Revoke,
    /// Send it a new token, made there: a token never travels between replicas (the
    /// rotation is recorded requested).
    Rotate,
    /// Place it by the capabilities and labels the store now records for it.
    Retag,
    /// Remove a session's worktree (the session is recorded ended).
    CloseWorkspace {
        /// The session.
        workspace_id: WorkspaceId,
    },
}

/// Longest cancel reason relayed: PostgreSQL refuses NOTIFY payloads of 8,000 bytes or
/// more, and the rest of the payload is ids.
const MAX_RELAYED_REASON: usize = 1000;

impl RunnerAction {
    /// A cancel, its reason cut to what a notification can carry.
    pub fn cancel(task_id: TaskId, attempt: u32, reason: &str) -> Self {
        let mut end = reason.len().min(MAX_RELAYED_REASON);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        Self::Cancel {
            task_id,
            attempt,
            reason: reason[..end].to_owned(),
        }
    }
}

/// The payload of a relayed control.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunnerControl {
    /// The runner.
    pub runner: RunnerId,
    /// What to do.
    #[serde(flatten)]
    pub action: RunnerAction,
}

/// Does what another replica's operator asked, to a runner connected here, if the store
/// bears the request out.
pub async fn carry_out(state: &Engine, control: RunnerControl) -> Result<(), StoreError> {
    let runner = control.runner;
    if !recorded(state, &control).await? {
        tracing::warn!(%runner, action = ?control.action, "relayed control not recorded in the store; ignored");
        return Ok(());
    }
    state.carry_out_here(runner, &control.action).await?;
    Ok(())
}

/// True when the store records the request behind `control`.
async fn recorded(state: &Engine, control: &RunnerControl) -> Result<bool, StoreError> {
    let runner = control.runner;
    let store = &state.store;
    Ok(match &control.action {
        RunnerAction::Cancel {
            task_id, attempt, ..
        } => {
            let asked = store.task(*task_id).await?;
            let open = store.attempt(*task_id, *attempt).await?;
            asked.is_some_and(|t| t.cancel_requested_at.is_some())
                && open.is_some_and(|a| a.runner_id == runner)
        }
        RunnerAction::CloseWorkspace { workspace_id } => {
            let session = store.workspace(*workspace_id).await?;
            session.is_some_and(|s| s.state != WorkspaceState::Open && s.runner_id == Some(runner))
        }
        runner_wide => {
            let Some(record) = store.runner(runner).await? else {
                return Ok(false);
            };
            match runner_wide {
                RunnerAction::Drain => record.drain_requested_at.is_some(),
                RunnerAction::Pause => record.paused_at.is_some(),
                RunnerAction::Resume => record.paused_at.is_none(),
                RunnerAction::Revoke => record.revoked_at.is_some(),
                RunnerAction::Rotate => record.rotation_requested_at.is_some(),
                // It applies what the store holds, whoever asked.
                RunnerAction::Retag => true,
                RunnerAction::Cancel { .. } | RunnerAction::CloseWorkspace { .. } => false,
            }
        }
    })
}
