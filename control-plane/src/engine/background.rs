//! Every background task of a control plane, started in one place on the engine's tracker
//! (the mini-redis shape: each ends on the shutdown token, and shutdown waits for them).

use std::time::Duration;

use super::Engine;

/// Longest shutdown waits for background work after the server stopped: a burn or forge
/// in flight (a `docker rm`) takes seconds; one that takes longer is left to the reaper
/// of the next start.
pub const SHUTDOWN_WAIT: Duration = Duration::from_secs(15);

/// What runs beside the server, beyond what every control plane runs.
#[derive(Debug, Default)]
pub struct Background<'a> {
    /// The shared PostgreSQL database, when replicas share it: they listen to each other,
    /// campaign to lead and repeat what the leader must.
    pub replicas_on: Option<&'a str>,
    /// Pruning of old finished tasks.
    pub retention: Option<crate::retention::Retention>,
}

impl Engine {
    /// Starts the dispatcher, the overdue sweep, the timers of runners already away and
    /// what `background` asks for.
    pub async fn start_background(&self, background: Background<'_>) {
        if let Err(error) = crate::liveness::watch_all_absent(self).await {
            tracing::error!(error = %error, "could not look for absent runners");
        }
        self.spawn(crate::dispatcher::run(self.clone(), self.shutdown.clone()));
        self.spawn(crate::overdue::watch(self.clone(), self.shutdown.clone()));
        match (background.replicas_on, self.sandboxes.clone()) {
            // Replicas share the database: the leader burns expired sandboxes for all of
            // them, and no replica judges another's boxes by what its own engine shows.
            (Some(url), _) => crate::replicas::start(self, url),
            (None, Some(sandboxes)) => {
                let engine = self.clone();
                self.spawn(async move {
                    if let Err(error) = sandboxes.reap(&engine).await {
                        tracing::error!(error = %error, "cannot reap sandboxes");
                    }
                });
            }
            (None, None) => {}
        }
        if let Some(retention) = background.retention {
            self.spawn(crate::retention::run(
                self.clone(),
                retention,
                self.shutdown.clone(),
            ));
        }
        self.hub.wake_dispatcher();
    }

    /// Stops everything: cancels the shutdown token and waits (at most [`SHUTDOWN_WAIT`])
    /// for the background tasks to end.
    pub async fn stop_background(&self) {
        self.shutdown.cancel();
        self.tracker.close();
        if tokio::time::timeout(SHUTDOWN_WAIT, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(left = self.tracker.len(), wait = ?SHUTDOWN_WAIT,
                "background tasks still running at shutdown; leaving them");
        }
    }
}
