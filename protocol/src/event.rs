//! The events of one task attempt: numbered, in order, ending with `finished`.

use serde::{Deserialize, Serialize};

use crate::agent::{AgentEvent, Usage};
use crate::line::LogLine;
use crate::UnixMillis;

/// One event of an attempt. `seq` starts at 1 and grows by one per event, so the control
/// plane can store events idempotently and acknowledge a contiguous prefix. Decoded by
/// hand (`event_de.rs`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Event {
    /// Position in the attempt's stream, from 1.
    pub seq: u64,
    /// When the runner produced the event.
    pub ts: UnixMillis,
    /// What happened.
    #[serde(flatten)]
    pub body: EventBody,
}

/// What an [`Event`] reports. Tagged by `kind`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventBody {
    /// A line the agent (or the runner, on `system`) wrote.
    Log(LogLine),
    /// The attempt entered a new phase.
    Status {
        /// The phase now begun.
        phase: Phase,
        /// Until when, for a phase that waits for a time (`rate_limited`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        until: Option<UnixMillis>,
    },
    /// A step of the agent's work, parsed from its JSON stream by its preset.
    Agent(AgentEvent),
    /// The attempt is over. Always the last event of its stream.
    Finished {
        /// How it ended and what it produced.
        outcome: Outcome,
    },
}

/// The phases an attempt goes through, in this order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Fetching the repository into the runner's mirror cache.
    Fetching,
    /// Creating the attempt's worktree and branch.
    CheckingOut,
    /// The agent process is running.
    Running,
    /// Committing what the agent left uncommitted.
    Committing,
    /// Uploading the result bundle to the control plane.
    Uploading,
    /// The agent stopped at its provider's rate or usage limit; the runner waits until it
    /// resets, then resumes the agent's conversation.
    RateLimited,
}

/// How an attempt ended, as its runner saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeStatus {
    /// The agent exited with status 0 and its result was saved.
    Succeeded,
    /// The agent exited non-zero or was killed by a signal.
    Failed,
    /// The attempt was cancelled on request.
    Cancelled,
    /// The attempt ran past its overall or idle timeout.
    TimedOut,
    /// kiln itself could not run the attempt (fetch, checkout, commit or upload failed).
    Error,
}

/// The final report of an attempt.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// How it ended.
    pub status: OutcomeStatus,
    /// The agent's exit code, when it exited normally.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// The signal that ended the agent, when one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// A one-line human explanation, such as "agent exited with code 3".
    pub message: String,
    /// The commits produced, when the worktree could be committed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<TaskResult>,
    /// Why the agent stopped running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<StopReason>,
    /// How many times the agent ran (more than one with `max_iterations`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iterations: Option<u32>,
    /// Usage the agent reported, summed over its runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// The agent's conversation, as it last named it (see `AgentEvent::Session`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_session: Option<String>,
}

/// Why an agent stopped running. Each reason is distinct.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// It exited by itself (one run, no completion signal asked for).
    Exited,
    /// It printed the completion signal.
    Completed,
    /// It printed the completion signal but did not exit; kiln stopped it after the grace.
    CompletedAfterGrace,
    /// It ran `max_iterations` times without printing the completion signal.
    IterationsExhausted,
    /// It failed (non-zero exit or a signal) before completing.
    Failed,
    /// It exited but reported that its run failed (an error result).
    AgentError,
    /// Its overall time limit passed.
    Timeout,
    /// It printed nothing for the idle limit.
    IdleTimeout,
    /// It used up its turn budget.
    TurnLimit,
    /// It used up its cost budget (as the agent reported cost).
    CostLimit,
    /// Its provider's rate or usage limit would not reset within the task's timeout or
    /// the longest wait kiln allows.
    RateLimited,
    /// It was cancelled.
    Cancelled,
}

/// What an attempt left in git.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskResult {
    /// The branch holding the result, such as `kiln/<task-id>`.
    pub branch: String,
    /// The commit the branch started from.
    pub base_commit: String,
    /// The tip of the branch after the attempt.
    pub head_commit: String,
    /// Commits from `base_commit` (exclusive) to `head_commit`, oldest first.
    pub commits: Vec<String>,
    /// Size of the change from base to head.
    pub diffstat: DiffStat,
    /// True when the bundle of these commits was uploaded to the control plane.
    pub bundle_uploaded: bool,
    /// True when the branch was pushed to the repository's remote.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pushed: bool,
    /// Files left out of the commit because they are larger than the runner's limit.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped_files: Vec<String>,
}

/// Size of a change, as `git diff --stat` summarises it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiffStat {
    /// Files added, removed or modified.
    pub files_changed: u64,
    /// Lines added.
    pub insertions: u64,
    /// Lines removed.
    pub deletions: u64,
}

impl Phase {
    /// The wire name, such as `checking_out`.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Fetching => "fetching",
            Phase::CheckingOut => "checking_out",
            Phase::Running => "running",
            Phase::Committing => "committing",
            Phase::Uploading => "uploading",
            Phase::RateLimited => "rate_limited",
        }
    }
}

impl OutcomeStatus {
    /// The wire name, such as `timed_out`.
    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeStatus::Succeeded => "succeeded",
            OutcomeStatus::Failed => "failed",
            OutcomeStatus::Cancelled => "cancelled",
            OutcomeStatus::TimedOut => "timed_out",
            OutcomeStatus::Error => "error",
        }
    }
}

impl Event {
    /// True for the event that closes an attempt's stream.
    pub fn is_finished(&self) -> bool {
        matches!(self.body, EventBody::Finished { .. })
    }
}
