//! Turning how an attempt ended into its `Outcome`.

use kiln_protocol::{Outcome, OutcomeStatus, StopReason, TaskSpec};

use super::agent::Halt;
use crate::shim::AgentStatus;

/// Longest prompt excerpt in a commit message subject.
const PROMPT_EXCERPT_CHARS: usize = 72;

fn outcome(status: OutcomeStatus, message: String) -> Outcome {
    Outcome {
        status,
        exit_code: None,
        signal: None,
        message,
        result: None,
        stop: None,
        iterations: None,
        usage: None,
        agent_session: None,
    }
}

/// kiln itself could not run the attempt.
pub fn error(message: impl Into<String>) -> Outcome {
    outcome(OutcomeStatus::Error, message.into())
}

/// The agent could not start.
pub fn spawn_failed(reason: &str) -> Outcome {
    outcome(
        OutcomeStatus::Failed,
        format!("agent could not start: {reason}"),
    )
}

/// Cancelled before the agent started.
pub fn cancelled_before_start() -> Outcome {
    let mut cancelled = outcome(
        OutcomeStatus::Cancelled,
        "cancelled before the agent started".into(),
    );
    cancelled.stop = Some(StopReason::Cancelled);
    cancelled
}

/// The outcome of an attempt whose overall timeout passed before its agent started (a
/// fetch or checkout that did not finish in time).
pub fn timed_out_before_start(timeout: std::time::Duration, during: &str) -> Outcome {
    let mut timed_out = outcome(
        OutcomeStatus::TimedOut,
        format!(
            "timed out after {} while {during}, before the agent started",
            humantime::format_duration(timeout)
        ),
    );
    timed_out.stop = Some(StopReason::Timeout);
    timed_out
}

/// How the last run of the agent ended, and whether the attempt is over.
#[derive(Clone, Debug)]
pub struct RunEnd<'a> {
    /// Its exit status.
    pub status: &'a AgentStatus,
    /// Why kiln stopped it, if it did.
    pub halted: Option<&'a Halt>,
    /// It printed the completion signal.
    pub signaled: bool,
    /// A completion signal was asked for.
    pub signal_wanted: bool,
    /// This was the last iteration allowed.
    pub last_iteration: bool,
    /// The agent said the run failed, in these words.
    pub failure: Option<&'a str>,
    /// It stopped itself at a budget it was given.
    pub exhausted: Option<StopReason>,
}

impl RunEnd<'_> {
    /// True when the agent should run again: it exited cleanly without reporting a failure,
    /// was asked for a signal, has not printed it, and iterations remain.
    pub fn runs_again(&self) -> bool {
        self.halted.is_none()
            && self.failure.is_none()
            && !self.signaled
            && self.signal_wanted
            && self.status.code == Some(0)
            && !self.last_iteration
    }

    /// The outcome (status, stop reason, message) of an attempt that ended with this run.
    pub fn outcome(&self, iterations: u32) -> Outcome {
        let (status, stop, message) = match self.halted {
            Some(Halt::Cancelled) => (
                OutcomeStatus::Cancelled,
                StopReason::Cancelled,
                "cancelled".to_owned(),
            ),
            Some(Halt::Timeout(limit)) => (
                OutcomeStatus::TimedOut,
                StopReason::Timeout,
                format!(
                    "ran past its timeout of {}",
                    humantime::format_duration(*limit)
                ),
            ),
            Some(Halt::IdleTimeout(limit)) => (
                OutcomeStatus::TimedOut,
                StopReason::IdleTimeout,
                format!(
                    "no output for {} (idle timeout)",
                    humantime::format_duration(*limit)
                ),
            ),
            Some(Halt::Budget(StopReason::CostLimit)) => (
                OutcomeStatus::Failed,
                StopReason::CostLimit,
                "stopped: the cost budget is used up (as the agent reported cost)".to_owned(),
            ),
            Some(Halt::Budget(reason)) => (
                OutcomeStatus::Failed,
                *reason,
                "stopped: the turn budget is used up".to_owned(),
            ),
            Some(Halt::CompletionGrace) => (
                OutcomeStatus::Succeeded,
                StopReason::CompletedAfterGrace,
                "printed the completion signal but did not exit; stopped after the grace period"
                    .to_owned(),
            ),
            None if self.signaled => (
                OutcomeStatus::Succeeded,
                StopReason::Completed,
                "printed the completion signal".to_owned(),
            ),
            None if self.exhausted.is_some() => (
                OutcomeStatus::Failed,
                self.exhausted.unwrap_or(StopReason::AgentError),
                format!(
                    "the agent stopped at the budget it was given: {}",
                    self.failure.unwrap_or("(no message)")
                ),
            ),
            // An error result is a failure whatever the exit code says (Gemini exits 0).
            None if self.failure.is_some() => (
                OutcomeStatus::Failed,
                StopReason::AgentError,
                format!(
                    "the agent reported a failure: {}",
                    self.failure.unwrap_or("(no message)")
                ),
            ),
            None if self.status.code == Some(0) && self.signal_wanted => (
                OutcomeStatus::Failed,
                StopReason::IterationsExhausted,
                format!("ran {iterations} iteration(s) without printing the completion signal"),
            ),
            None if self.status.code == Some(0) => (
                OutcomeStatus::Succeeded,
                StopReason::Exited,
                "agent exited with code 0".to_owned(),
            ),
            None => (
                OutcomeStatus::Failed,
                StopReason::Failed,
                describe_exit(self.status),
            ),
        };
        let mut ended = outcome(status, message);
        ended.exit_code = self.status.code;
        ended.signal = self.status.signal;
        ended.stop = Some(stop);
        ended.iterations = Some(iterations);
        ended
    }
}

fn describe_exit(status: &AgentStatus) -> String {
    match (status.code, status.signal) {
        (Some(code), _) => format!("agent exited with code {code}"),
        (None, Some(signal)) => format!("agent was killed by signal {signal}"),
        (None, None) => "agent ended abnormally".into(),
    }
}

/// The message of the commit kiln makes for the agent's leftovers.
pub fn commit_message(spec: &TaskSpec, attempt: u32, iteration: Option<u32>) -> String {
    let first_line = spec
        .prompt
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    let excerpt: String = first_line.chars().take(PROMPT_EXCERPT_CHARS).collect();
    let subject = if excerpt.is_empty() {
        format!("kiln: task {}", spec.task_id)
    } else {
        format!("kiln: {excerpt}")
    };
    let iteration = iteration.map_or(String::new(), |i| format!("Iteration: {i}\n"));
    format!(
        "{subject}\n\nTask: {}\nAttempt: {attempt}\n{iteration}",
        spec.task_id
    )
}
