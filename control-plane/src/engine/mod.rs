//! The control plane's domain, standing on its own: one clonable context that the
//! dispatcher, liveness, reconciliation, replicas, sandboxes and the web layer all drive.
//! Nothing here knows of HTTP (a tidy test holds it to that): `server/` parses, calls the
//! engine and renders.

mod background;
mod cancel;
mod controls;
mod error;
mod fleet;
pub mod follow;
pub mod reconcile;
mod sandboxes;
mod settings;
mod transitions;

use std::sync::Arc;

use kiln_protocol::{now_millis, RunnerId, WorkspaceId};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use background::{Background, SHUTDOWN_WAIT};
pub use error::EngineError;
pub use settings::*;

use crate::hub::Hub;
use crate::model::WorkspaceState;
use crate::store::{Store, StoreError};
use crate::watchers::{TaskUpdate, Watchers};

/// The running control plane's domain.
#[derive(Clone)]
pub struct Engine {
    /// The system of record.
    pub store: Arc<dyn Store>,
    /// Connected runners.
    pub hub: Arc<Hub>,
    /// Log followers.
    pub watchers: Arc<Watchers>,
    /// Tunables.
    pub settings: Arc<ServerSettings>,
    /// Cancelled when the control plane shuts down; every task it started ends on it.
    pub shutdown: CancellationToken,
    /// Every background task this control plane started: shutdown waits for them all.
    pub tracker: TaskTracker,
    /// File requests waiting for runners.
    pub files: Arc<crate::file_requests::FileRequests>,
    /// Sandbox forging and burning.
    pub sandboxes: Option<crate::sandbox::Sandboxes>,
    /// Counters and histograms for `/metrics`.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The other replicas on the same PostgreSQL database, if the store is shared.
    pub peers: Option<crate::replicas::Peers>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine around `store` with a fresh hub and watchers.
    pub fn new(
        store: Arc<dyn Store>,
        settings: ServerSettings,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            store,
            hub: Arc::default(),
            watchers: Arc::default(),
            settings: Arc::new(settings),
            shutdown,
            tracker: TaskTracker::new(),
            files: Arc::default(),
            sandboxes: None,
            metrics: Arc::default(),
            peers: None,
        }
    }

    /// Starts `work` on the tracker, so that shutdown waits for it.
    pub fn spawn<F>(&self, work: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.tracker.spawn(work);
    }

    /// Ends an open workspace session as `closed` or `lost`, with its queued tasks, and
    /// tells those tasks' followers. Nothing happens if the session was not open.
    pub async fn end_workspace(
        &self,
        id: WorkspaceId,
        ended_as: WorkspaceState,
    ) -> Result<(), StoreError> {
        let ended = self.store.end_workspace(id, ended_as, now_millis()).await?;
        for task in ended.into_iter().flatten() {
            self.watchers.publish(task, TaskUpdate::StateChanged);
        }
        Ok(())
    }

    /// Asks the other replicas, if any, to carry out `action` on `runner` (it is not
    /// connected here). The operator's request is already in the store, so a relay that
    /// fails is logged, not returned: the runner gets the request when it next connects.
    pub async fn relay(&self, runner: RunnerId, action: crate::replicas::RunnerAction) {
        let Some(peers) = &self.peers else {
            return;
        };
        if let Err(error) = peers.relay(runner, action).await {
            tracing::error!(%runner, %error, "cannot tell the other replicas; the runner is told when it next connects");
        }
    }
}
