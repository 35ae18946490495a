//! Staying connected: a loop over one fallible connect-and-serve, with capped, jittered
//! exponential backoff that resets after a connection that lasted.

mod once;

use std::time::Duration;

use backoff::backoff::Backoff as _;
use backoff::ExponentialBackoff;
use kiln_protocol::now_millis;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use once::Refused;

use crate::daemon::Runtime;
use crate::status::Link;

/// First reconnect delay. Short, so a blip costs under a second.
const INITIAL_BACKOFF: Duration = Duration::from_millis(200);

/// Longest reconnect delay. Thirty seconds keeps a fleet of thousands from hammering a
/// recovering control plane while still reconnecting promptly.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// A connection that lasted this long was healthy: the next failure starts backing off
/// from the beginning again.
const STABLE_CONNECTION: Duration = Duration::from_secs(60);

/// Randomisation of each delay (±50%), so runners cut off together do not return together.
const BACKOFF_JITTER: f64 = 0.5;

fn new_backoff() -> ExponentialBackoff {
    ExponentialBackoff {
        initial_interval: INITIAL_BACKOFF,
        max_interval: MAX_BACKOFF,
        randomization_factor: BACKOFF_JITTER,
        multiplier: 2.0,
        max_elapsed_time: None,
        ..ExponentialBackoff::default()
    }
}

/// Keeps the runner connected until `stop`, or until the control plane refuses it.
pub async fn run(runtime: &Runtime, stop: CancellationToken) -> Result<(), Refused> {
    let mut backoff = new_backoff();
    loop {
        let started = Instant::now();
        let ended = once::connect_and_serve(runtime, &stop).await;
        let reason = match ended {
            Ok(once::Ended::Stopped) => return Ok(()),
            Ok(once::Ended::Lost(reason)) => reason,
            Err(once::Failure::Refused(refused)) => {
                runtime.board.set_link(Link {
                    last_error: Some(refused.to_string()),
                    ..Link::default()
                });
                return Err(refused);
            }
            Err(once::Failure::Transient(reason)) => reason,
        };
        if started.elapsed() >= STABLE_CONNECTION {
            backoff.reset();
        }
        let delay = backoff.next_backoff().unwrap_or(MAX_BACKOFF);
        tracing::warn!(reason = %reason, retry_in_ms = delay.as_millis() as u64, "disconnected from control plane");
        runtime.board.set_link(Link {
            connected: false,
            connection_id: None,
            since: Some(now_millis()),
            last_error: Some(reason),
        });
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = stop.cancelled() => return Ok(()),
        }
    }
}
