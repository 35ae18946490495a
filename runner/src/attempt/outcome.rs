//! Turning how an attempt ended into its `Outcome`.

use kiln_protocol::{Outcome, OutcomeStatus, TaskSpec};

use super::agent::{AgentEnd, StopReason};

/// Longest prompt excerpt in a commit message subject.
const PROMPT_EXCERPT_CHARS: usize = 72;

fn outcome(status: OutcomeStatus, message: String) -> Outcome {
    Outcome {
        status,
        exit_code: None,
        signal: None,
        message,
        result: None,
    }
}

/// kiln itself could not run the attempt.
pub fn error(message: impl Into<String>) -> Outcome {
    outcome(OutcomeStatus::Error, message.into())
}

/// Cancelled before the agent started.
pub fn cancelled_before_start() -> Outcome {
    outcome(
        OutcomeStatus::Cancelled,
        "cancelled before the agent started".into(),
    )
}

/// The outcome an agent's end implies (before its result is saved).
pub fn from_agent(end: &AgentEnd) -> Outcome {
    let (status, stopped) = match end {
        AgentEnd::SpawnFailed(reason) => {
            return outcome(
                OutcomeStatus::Failed,
                format!("agent could not start: {reason}"),
            );
        }
        AgentEnd::Exited { status, stopped } => (status, stopped),
    };
    let (mut result, describe_exit) = match stopped {
        Some(StopReason::Cancelled) => {
            (outcome(OutcomeStatus::Cancelled, "cancelled".into()), false)
        }
        Some(StopReason::Timeout(limit)) => (
            outcome(
                OutcomeStatus::TimedOut,
                format!(
                    "ran past its timeout of {}",
                    humantime::format_duration(*limit)
                ),
            ),
            false,
        ),
        Some(StopReason::IdleTimeout(limit)) => (
            outcome(
                OutcomeStatus::TimedOut,
                format!(
                    "no output for {} (idle timeout)",
                    humantime::format_duration(*limit)
                ),
            ),
            false,
        ),
        None if status.code == Some(0) => (
            outcome(OutcomeStatus::Succeeded, "agent exited with code 0".into()),
            false,
        ),
        None => (outcome(OutcomeStatus::Failed, String::new()), true),
    };
    result.exit_code = status.code;
    result.signal = status.signal;
    if describe_exit {
        result.message = match (status.code, status.signal) {
            (Some(code), _) => format!("agent exited with code {code}"),
            (None, Some(signal)) => format!("agent was killed by signal {signal}"),
            (None, None) => "agent ended abnormally".into(),
        };
    }
    result
}

/// The message of the commit kiln makes for the agent's leftovers.
pub fn commit_message(spec: &TaskSpec, attempt: u32) -> String {
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
    format!("{subject}\n\nTask: {}\nAttempt: {attempt}\n", spec.task_id)
}
