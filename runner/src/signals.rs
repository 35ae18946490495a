//! Turning process signals into the daemon's stop triggers. Only binaries call this; the
//! daemon itself takes its triggers as arguments.

use crate::daemon::Signals;

/// First SIGTERM or SIGINT: drain (no new work; finish what runs, then exit). Second: abort
/// (cancel what runs).
pub async fn forward(signals: Signals) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    for (trigger, meaning) in [
        (
            &signals.drain,
            "draining: no new work; running attempts finish first (signal again to cancel them)",
        ),
        (&signals.abort, "cancelling running attempts"),
    ] {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::info!(signal = name, "{meaning}");
        trigger.cancel();
    }
}
