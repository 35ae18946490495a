//! Backend-neutral outcomes of tasks that end without their runner reporting one.

use kiln_protocol::{Outcome, OutcomeStatus};

use crate::model::{TaskState, WorkspaceState};

/// The outcome of a task that ended without running.
pub fn ended_unrun(status: OutcomeStatus, message: &str) -> Outcome {
    Outcome {
        status,
        exit_code: None,
        signal: None,
        message: message.to_owned(),
        result: None,
        stop: None,
        iterations: None,
        usage: None,
    }
}

/// The outcome recorded when the control plane ends a task as `state`.
pub fn ended_as(state: TaskState, message: &str) -> Outcome {
    let status = match state {
        TaskState::TimedOut => OutcomeStatus::TimedOut,
        TaskState::Cancelled => OutcomeStatus::Cancelled,
        TaskState::Succeeded => OutcomeStatus::Succeeded,
        TaskState::Failed => OutcomeStatus::Failed,
        _ => OutcomeStatus::Error,
    };
    ended_unrun(status, message)
}

/// The state and outcome of a session's queued tasks when the session ends as `state`.
pub fn queued_of_ended_workspace(state: WorkspaceState) -> (TaskState, Outcome) {
    match state {
        WorkspaceState::Lost => (
            TaskState::Error,
            ended_unrun(
                OutcomeStatus::Error,
                "its workspace session was lost with its runner",
            ),
        ),
        _ => (
            TaskState::Cancelled,
            ended_unrun(OutcomeStatus::Cancelled, "its workspace session was closed"),
        ),
    }
}
