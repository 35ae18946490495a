//! Backend-neutral outcomes of tasks that end without their runner reporting one.

use kiln_protocol::{Outcome, OutcomeStatus};

use crate::model::{TaskState, WorkspaceState};

/// Assignments of one task that no runner took (refused, not accepted in time, or lost
/// with a runner that dropped its socket on reading it) before the task ends as `error`.
/// A task that every runner drops would otherwise be handed out forever, since only
/// attempts that started count against `max_attempts`. Five covers a flapping link or a
/// restart or two; a task no runner can read reaches it within seconds.
pub const MAX_UNTAKEN_ASSIGNMENTS: i64 = 5;

/// The task's state after one more of its assignments went untaken, given how many of
/// them no runner has taken in all: back to the queue, or `error` once there were
/// [`MAX_UNTAKEN_ASSIGNMENTS`].
pub fn after_untaken(untaken: i64) -> (TaskState, Option<Outcome>) {
    if untaken < MAX_UNTAKEN_ASSIGNMENTS {
        return (TaskState::Queued, None);
    }
    let message = format!(
        "no runner took its assignment: {untaken} assignments were refused, not accepted \
         in time, or dropped with the runner's connection"
    );
    (
        TaskState::Error,
        Some(ended_unrun(OutcomeStatus::Error, &message)),
    )
}

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
        agent_session: None,
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
