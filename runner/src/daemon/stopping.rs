//! How the daemon stops: drain (finish what runs, flush events, exit), abort (cancel),
//! a refusal by the control plane, a sandbox's expiry, and idling out.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{DaemonError, Runtime, Signals, ABORT_FLUSH_TIMEOUT, FINAL_FLUSH_TIMEOUT};
use crate::connection::Refused;
use crate::running::Attempts;

/// The TTL inside the box: at the sandbox's expiry, stop everything, whatever happened to
/// the control plane that forged it.
pub(super) async fn stop_at_expiry(expires_at: kiln_protocol::UnixMillis, signals: Signals) {
    let left = u64::try_from(expires_at - kiln_protocol::now_millis()).unwrap_or(0);
    tokio::time::sleep(Duration::from_millis(left)).await;
    tracing::warn!("the sandbox's time is up; stopping");
    signals.drain.cancel();
    signals.abort.cancel();
}

/// Drains the runner once it has run nothing for `idle` (for `--disconnect-after-idle`).
pub(super) async fn exit_when_idle(
    attempts: Arc<Attempts>,
    idle: Duration,
    drain: CancellationToken,
) {
    loop {
        attempts.wait_idle().await;
        tokio::select! {
            () = tokio::time::sleep(idle) => {
                if attempts.count() == 0 {
                    tracing::info!(idle_s = idle.as_secs(), "--disconnect-after-idle: idle long enough; exiting");
                    drain.cancel();
                    return;
                }
            }
            () = attempts.wait_busy() => {}
            () = drain.cancelled() => return,
        }
    }
}

pub(super) async fn supervise(
    runtime: &Runtime,
    signals: &Signals,
    stop_link: &CancellationToken,
    mut link: tokio::task::JoinHandle<Result<(), Refused>>,
) -> Result<(), DaemonError> {
    let refused = tokio::select! {
        joined = &mut link => Some(joined.unwrap_or(Ok(()))),
        () = signals.drain.cancelled() => None,
        () = signals.abort.cancelled() => None,
    };
    if let Some(result) = refused {
        // The control plane refused us: results could never be delivered; stop everything.
        runtime.attempts.start_draining();
        runtime.attempts.cancel_all();
        runtime.tracker.close();
        runtime.tracker.wait().await;
        return result.map_err(DaemonError::from);
    }
    runtime.attempts.start_draining();
    runtime.draining.cancel();
    let running = runtime.attempts.count();
    if running > 0 && !signals.abort.is_cancelled() {
        tracing::info!(
            running,
            "draining: finishing running attempts; signal again to cancel them"
        );
    }
    tokio::select! {
        () = runtime.attempts.wait_idle() => {}
        () = signals.abort.cancelled() => {
            tracing::info!("cancelling running attempts");
            runtime.attempts.cancel_all();
        }
    }
    runtime.tracker.close();
    runtime.tracker.wait().await;
    let already_aborted = signals.abort.is_cancelled();
    let flush_timeout = if already_aborted {
        ABORT_FLUSH_TIMEOUT
    } else {
        FINAL_FLUSH_TIMEOUT
    };
    let unflushed = tokio::select! {
        () = runtime.outbox.wait_empty() => false,
        () = tokio::time::sleep(flush_timeout) => true,
        () = signals.abort.cancelled(), if !already_aborted => true,
        joined = &mut link => {
            return joined.unwrap_or(Ok(())).map_err(DaemonError::from);
        }
    };
    if unflushed {
        tracing::warn!("control plane has not acknowledged every event; keeping them in the spool for the next start");
        runtime.outbox.persist();
    }
    stop_link.cancel();
    link.await.unwrap_or(Ok(())).map_err(DaemonError::from)
}
