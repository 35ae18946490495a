//! Whether an agent's output is read now: the outbox's backpressure (`outbox/room.rs`),
//! bounded in time so that a control plane that never acknowledges an attempt's events
//! (it refused them) cannot freeze its agent.

use std::time::Duration;

use tokio::time::{sleep_until, Instant};

use crate::outbox::{AttemptKey, Outbox};

/// Longest wait for room. An ack normally comes within milliseconds; this long without
/// one while connected means the control plane is not taking this attempt's events, so
/// the agent runs on for the rest of its run and its events spill to disk, as they would
/// without backpressure.
const ROOM_WAIT_MAX: Duration = Duration::from_secs(30);

#[derive(Debug)]
enum State {
    /// Output is read.
    Open,
    /// The attempt has no room; output waits until then at the latest.
    Waiting { until: Instant },
    /// A wait ran out: backpressure is off for the rest of this run.
    Off,
}

/// The gate of one agent run.
#[derive(Debug)]
pub struct Gate<'a> {
    outbox: &'a Outbox,
    key: AttemptKey,
    state: State,
}

impl<'a> Gate<'a> {
    pub fn new(outbox: &'a Outbox, key: AttemptKey) -> Self {
        Self {
            outbox,
            key,
            state: State::Open,
        }
    }

    /// True unless output must wait for room.
    pub fn is_open(&self) -> bool {
        !matches!(self.state, State::Waiting { .. })
    }

    /// After events were pushed: closes the gate if the attempt has no room left.
    pub fn after_push(&mut self) {
        if matches!(self.state, State::Open) && !self.outbox.has_room(self.key) {
            self.state = State::Waiting {
                until: Instant::now() + ROOM_WAIT_MAX,
            };
        }
    }

    /// Waits until the gate opens: room was made, or the wait ran out.
    pub async fn reopened(&mut self) {
        let State::Waiting { until } = self.state else {
            return;
        };
        tokio::select! {
            () = self.outbox.room(self.key) => self.state = State::Open,
            () = sleep_until(until) => {
                tracing::warn!(task = %self.key.0, attempt = self.key.1,
                    "no acknowledgement of this attempt's events for {}s; its output is read on and spills to disk",
                    ROOM_WAIT_MAX.as_secs());
                self.state = State::Off;
            }
        }
    }
}
