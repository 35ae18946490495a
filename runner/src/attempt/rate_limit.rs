//! Waiting out an agent's rate limit: the attempt says until when it waits (an event the
//! control plane shows), sleeps until the reset (cancel and the task's timeout still stop
//! it), then the agent resumes its conversation. The wait is not a new attempt.

use std::time::Duration;

use kiln_protocol::{EventBody, Outcome, OutcomeStatus, Phase, StopReason, UnixMillis};

use super::outcome;
use super::{Attempt, Stopped};
use crate::presets::RateLimit;

/// Longest single wait: Claude's and Gemini's windows reset within five hours, so a reset
/// further out (a weekly limit) fails the attempt rather than park its slot for days.
pub const MAX_RATE_LIMIT_WAIT: Duration = Duration::from_secs(6 * 60 * 60);

/// Wait when the agent gave no reset time: long enough not to hammer the provider, short
/// enough to waste little of a window that has already reset.
pub const UNKNOWN_RESET_WAIT: Duration = Duration::from_secs(5 * 60);

/// Added to the reset the agent named: its provider's clock and this machine's differ.
pub const RESET_MARGIN: Duration = Duration::from_secs(1);

/// Most waits in one attempt: an agent limited again after every reset fails.
pub const MAX_RATE_LIMIT_WAITS: u32 = 20;

/// What a resumed conversation is told after the wait.
pub const RESUME_PROMPT: &str =
    "The rate limit that stopped you has reset. Continue the task where you left off.\n";

/// How a wait ended.
#[derive(Debug)]
pub enum Waited {
    /// The limit has reset: run the agent again.
    Reset,
    /// The attempt ends here.
    Ended(Box<Outcome>),
}

/// How long to wait for `limit`, or why not to.
pub fn plan(
    limit: &RateLimit,
    now: UnixMillis,
    time_left: Option<Duration>,
    waits_so_far: u32,
) -> Result<Duration, String> {
    if waits_so_far >= MAX_RATE_LIMIT_WAITS {
        return Err(format!(
            "the agent hit its rate limit {} times in this attempt",
            waits_so_far + 1
        ));
    }
    let wait = match limit.resets_at {
        Some(at) => Duration::from_millis(u64::try_from(at - now).unwrap_or(0)) + RESET_MARGIN,
        None => UNKNOWN_RESET_WAIT,
    };
    if wait > MAX_RATE_LIMIT_WAIT {
        return Err(format!(
            "the agent's rate limit resets in {}, past the longest wait ({})",
            humantime::format_duration(round(wait)),
            humantime::format_duration(MAX_RATE_LIMIT_WAIT)
        ));
    }
    if time_left.is_some_and(|left| wait >= left) {
        return Err(format!(
            "the agent's rate limit resets in {}, after the task's timeout",
            humantime::format_duration(round(wait))
        ));
    }
    Ok(wait)
}

fn round(wait: Duration) -> Duration {
    Duration::from_secs(wait.as_secs())
}

impl Attempt {
    /// Waits until `limit` resets, saying so. `waits` counts this attempt's waits.
    pub(super) async fn wait_out(&self, limit: &RateLimit, waits: &mut u32) -> Waited {
        let now = kiln_protocol::now_millis();
        let time_left = self
            .deadline
            .map(|at| at.saturating_duration_since(tokio::time::Instant::now()));
        let wait = match plan(limit, now, time_left, *waits) {
            Ok(wait) => wait,
            Err(reason) => return Waited::Ended(Box::new(given_up(&reason, &limit.message))),
        };
        *waits += 1;
        let until = now + i64::try_from(wait.as_millis()).unwrap_or(i64::MAX);
        self.shared
            .attempts
            .set_phase(self.key(), Phase::RateLimited);
        self.emit(EventBody::Status {
            phase: Phase::RateLimited,
            until: Some(until),
        });
        self.say(format!(
            "waiting for the agent's rate limit until {} ({}): {}",
            jiff::Timestamp::from_millisecond(until)
                .map_or_else(|_| until.to_string(), |t| t.to_string()),
            humantime::format_duration(round(wait)),
            limit.message
        ));
        tokio::select! {
            () = tokio::time::sleep(wait) => {
                self.phase(Phase::Running);
                self.say("the rate limit has reset; resuming the agent");
                Waited::Reset
            }
            why = self.stopped() => Waited::Ended(Box::new(stopped_waiting(why, self.spec.timeout_ms))),
        }
    }
}

fn given_up(reason: &str, message: &str) -> Outcome {
    let mut ended = outcome::error(format!("{reason}: {message}"));
    ended.status = OutcomeStatus::Failed;
    ended.stop = Some(StopReason::RateLimited);
    ended
}

fn stopped_waiting(why: Stopped, timeout_ms: Option<u64>) -> Outcome {
    let (status, stop, message) = match (why, timeout_ms) {
        (Stopped::TimedOut, Some(ms)) => (
            OutcomeStatus::TimedOut,
            StopReason::Timeout,
            format!(
                "ran past its timeout of {} while waiting for the agent's rate limit",
                humantime::format_duration(Duration::from_millis(ms))
            ),
        ),
        _ => (
            OutcomeStatus::Cancelled,
            StopReason::Cancelled,
            "cancelled while waiting for the agent's rate limit".to_owned(),
        ),
    };
    let mut ended = outcome::error(message);
    ended.status = status;
    ended.stop = Some(stop);
    ended
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(resets_at: Option<UnixMillis>) -> RateLimit {
        RateLimit {
            resets_at,
            message: "You've hit your usage limit.".into(),
        }
    }

    #[test]
    fn a_named_reset_is_waited_for_with_a_margin() {
        let wait = plan(&limit(Some(61_000)), 1_000, None, 0).unwrap();
        assert_eq!(wait, Duration::from_secs(60) + RESET_MARGIN);
        let past = plan(&limit(Some(0)), 1_000, None, 0).unwrap();
        assert_eq!(
            past, RESET_MARGIN,
            "a reset already past still waits the margin"
        );
        let unknown = plan(&limit(None), 1_000, None, 0).unwrap();
        assert_eq!(unknown, UNKNOWN_RESET_WAIT);
    }

    #[test]
    fn resets_past_the_timeout_or_the_cap_end_the_attempt() {
        let in_an_hour = Some(3_600_000);
        let refused = plan(&limit(in_an_hour), 0, Some(Duration::from_secs(60)), 0);
        assert!(refused.unwrap_err().contains("after the task's timeout"));
        let next_week = Some(7 * 24 * 3_600_000);
        let refused = plan(&limit(next_week), 0, None, 0).unwrap_err();
        assert!(refused.contains("past the longest wait"), "{refused}");
        let again = plan(&limit(Some(1)), 0, None, MAX_RATE_LIMIT_WAITS).unwrap_err();
        assert!(again.contains("21 times"), "{again}");
    }
}
