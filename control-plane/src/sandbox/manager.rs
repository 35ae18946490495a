//! The life of sandboxes: forge one for a task, burn it when the task ends or its TTL
//! fires, and after a restart reap boxes this control plane no longer wants.

use std::sync::Arc;
use std::time::Duration;

use kiln_protocol::{now_millis, SandboxId, ServerMessage, TaskId, UnixMillis};

use super::{ForgeSpec, Provider};
use crate::engine::Engine;
use crate::model::{SandboxRecord, SandboxState, TaskState};
use crate::store::StoreError;
use crate::watchers::TaskUpdate;

/// How long a sandbox lives when the submitter does not say.
pub const DEFAULT_SANDBOX_TTL: Duration = Duration::from_secs(30 * 60);

/// Longest TTL a sandbox may ask for: a forgotten box must not live for days.
pub const MAX_SANDBOX_TTL: Duration = Duration::from_secs(24 * 3600);

/// After the task ends, time the box's runner gets to deliver its last events and exit
/// before the box is destroyed anyway.
const BURN_GRACE: Duration = Duration::from_secs(5);

/// Why a sandbox is burned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BurnReason {
    /// Its task ended.
    TaskEnded,
    /// Its TTL ran out.
    Expired,
    /// An operator burned it.
    Operator,
    /// After a restart, its box was gone.
    BoxGone,
}

impl BurnReason {
    fn text(self) -> &'static str {
        match self {
            Self::TaskEnded => "its task ended",
            Self::Expired => "its TTL ran out",
            Self::Operator => "burned by an operator",
            Self::BoxGone => "its box was gone after a restart",
        }
    }

    /// How a task still running in the box ends.
    fn task_state(self) -> TaskState {
        match self {
            Self::Expired => TaskState::TimedOut,
            Self::TaskEnded | Self::Operator => TaskState::Cancelled,
            Self::BoxGone => TaskState::Lost,
        }
    }
}

/// Sandbox settings of a control plane.
#[derive(Clone, Debug)]
pub struct SandboxSettings {
    /// Image used when a task does not name one.
    pub default_image: String,
    /// The URL boxes reach this control plane at.
    pub server_url: String,
}

/// The sandbox provider and what to do with boxes.
#[derive(Clone)]
pub struct Sandboxes {
    provider: Arc<dyn Provider>,
    /// Settings.
    pub settings: SandboxSettings,
}

impl std::fmt::Debug for Sandboxes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandboxes")
            .field("provider", &self.provider.name())
            .field("settings", &self.settings)
            .finish()
    }
}

impl Sandboxes {
    /// Sandboxes made by `provider`.
    pub fn new(provider: Arc<dyn Provider>, settings: SandboxSettings) -> Self {
        Self { provider, settings }
    }

    /// The provider's name.
    pub fn provider_name(&self) -> &'static str {
        self.provider.name()
    }

    /// Forges the box for `sandbox` in the background; a failure ends the task.
    pub fn forge(
        &self,
        state: Engine,
        sandbox: SandboxRecord,
        token: String,
        mounts: Vec<std::path::PathBuf>,
    ) {
        let this = self.clone();
        state.tracker.clone().spawn(async move {
            let spec = ForgeSpec {
                sandbox_id: sandbox.id,
                image: sandbox.image.clone(),
                env: vec![
                    ("KILN_RUNNER_MODE".into(), "sandbox".into()),
                    ("KILN_SERVER_URL".into(), this.settings.server_url.clone()),
                    ("KILN_RUNNER_ID".into(), sandbox.runner_id.to_string()),
                    ("KILN_RUNNER_TOKEN".into(), token),
                    ("KILN_SANDBOX_ID".into(), sandbox.id.to_string()),
                    (
                        "KILN_SANDBOX_EXPIRES_AT".into(),
                        sandbox.expires_at.to_string(),
                    ),
                ],
                expires_at: sandbox.expires_at,
                read_only_mounts: mounts,
            };
            // The TTL counts from submit, forging included.
            this.watch_ttl(state.clone(), sandbox.id, sandbox.expires_at);
            match this.provider.forge(&spec).await {
                Ok(handle) => match state.store.sandbox_forged(sandbox.id, &handle).await {
                    Ok(true) => {
                        tracing::info!(sandbox = %sandbox.id, task = %sandbox.task_id, %handle, "sandbox forged");
                    }
                    outcome => {
                        // Burned while it was being forged, or not recordable: do not
                        // leave a box nobody will burn.
                        if let Err(error) = outcome {
                            tracing::error!(sandbox = %sandbox.id, error = %error, "cannot record a forged sandbox");
                        }
                        tracing::info!(sandbox = %sandbox.id, %handle, "sandbox ended while it was forged; burning its box");
                        if let Err(error) = this.provider.burn(&handle).await {
                            tracing::error!(sandbox = %sandbox.id, %handle, error = %error, "burning the sandbox failed");
                        }
                    }
                },
                Err(error) => {
                    tracing::error!(sandbox = %sandbox.id, error = %error, "sandbox could not be forged");
                    let message = format!("its sandbox could not be forged: {error}");
                    let now = now_millis();
                    let _ = state
                        .store
                        .end_sandbox(sandbox.id, SandboxState::Failed, &message, now)
                        .await;
                    let _ = state
                        .store
                        .end_task(sandbox.task_id, TaskState::Error, &message, now)
                        .await;
                    state
                        .watchers
                        .publish(sandbox.task_id, TaskUpdate::StateChanged);
                }
            }
        });
    }

    /// Burns the sandbox when its TTL runs out.
    pub fn watch_ttl(&self, state: Engine, id: SandboxId, expires_at: UnixMillis) {
        let this = self.clone();
        state.tracker.clone().spawn(async move {
            let left = u64::try_from(expires_at - now_millis()).unwrap_or(0);
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(left)) => {}
                () = state.shutdown.cancelled() => return,
            }
            if let Err(error) = this.burn(&state, id, BurnReason::Expired).await {
                tracing::error!(sandbox = %id, error = %error, "cannot burn an expired sandbox");
            }
        });
    }

    /// Destroys a sandbox and revokes its runner; a task still running in it ends as the
    /// reason says.
    pub async fn burn(
        &self,
        state: &Engine,
        id: SandboxId,
        reason: BurnReason,
    ) -> Result<bool, StoreError> {
        let Some(sandbox) = state.store.sandbox(id).await? else {
            return Ok(false);
        };
        let now = now_millis();
        let burned = state
            .store
            .end_sandbox(id, SandboxState::Burned, reason.text(), now)
            .await?;
        if !burned {
            return Ok(false);
        }
        if !state.hub.send(sandbox.runner_id, ServerMessage::Drain) {
            // Held by another replica (or none): its token is revoked now; close its socket.
            let revoke = crate::replicas::RunnerAction::Revoke;
            state.relay(sandbox.runner_id, revoke).await;
        }
        let message = format!("its sandbox was burned: {}", reason.text());
        let task_ended = state
            .store
            .end_task(sandbox.task_id, reason.task_state(), &message, now)
            .await?;
        if task_ended {
            state
                .watchers
                .publish(sandbox.task_id, TaskUpdate::StateChanged);
        }
        // Read again: the forge may have recorded the handle since the first read (if it
        // had not, it sees the sandbox ended and burns the box itself).
        let handle = state.store.sandbox(id).await?.and_then(|s| s.handle);
        if let Some(handle) = &handle {
            if let Err(error) = self.provider.burn(handle).await {
                tracing::error!(sandbox = %id, %handle, error = %error, "burning the sandbox failed");
            }
        }
        tracing::info!(sandbox = %id, reason = reason.text(), "sandbox burned");
        Ok(true)
    }

    /// Burns the sandbox of a task that ended, after a short grace for its last events.
    pub fn task_ended(&self, state: Engine, task: TaskId) {
        let this = self.clone();
        state.tracker.clone().spawn(async move {
            let sandbox = match state.store.sandbox_of_task(task).await {
                Ok(Some(sandbox)) => sandbox,
                _ => return,
            };
            state.hub.send(sandbox.runner_id, ServerMessage::Drain);
            tokio::select! {
                () = tokio::time::sleep(BURN_GRACE) => {}
                () = state.shutdown.cancelled() => {}
            }
            if let Err(error) = this.burn(&state, sandbox.id, BurnReason::TaskEnded).await {
                tracing::error!(sandbox = %sandbox.id, error = %error, "cannot burn a finished task's sandbox");
            }
        });
    }

    /// After a start: burn boxes that are not live sandboxes any more (or expired), and
    /// watch the TTL of the rest; sandboxes whose box is gone are burned in the store.
    pub async fn reap(&self, state: &Engine) -> Result<(), StoreError> {
        let started = now_millis();
        // Only sandboxes from before this start: newer ones are this process's own forges.
        let live: Vec<SandboxRecord> = state
            .store
            .live_sandboxes()
            .await?
            .into_iter()
            .filter(|s| s.created_at < started)
            .collect();
        // Every live sandbox gets its TTL timer back, whatever the provider says.
        for sandbox in &live {
            self.watch_ttl(state.clone(), sandbox.id, sandbox.expires_at);
        }
        let boxes = match self.provider.live().await {
            Ok(boxes) => boxes,
            Err(error) => {
                tracing::warn!(error = %error, "cannot list sandboxes to reap; their TTLs still apply");
                return Ok(());
            }
        };
        for found in &boxes {
            // Read again: a sandbox submitted since the list was read is wanted too.
            let record = match found.sandbox_id {
                Some(id) => state.store.sandbox(id).await?,
                None => None,
            };
            match record {
                Some(sandbox) if sandbox.is_live() && sandbox.expires_at > now_millis() => {
                    if sandbox.handle.is_none() && sandbox.created_at < started {
                        // Forged by the previous process, which died before recording it.
                        state
                            .store
                            .sandbox_forged(sandbox.id, &found.handle)
                            .await?;
                    }
                }
                _ => {
                    tracing::warn!(handle = %found.handle, "reaping an orphaned sandbox");
                    if let Err(error) = self.provider.burn(&found.handle).await {
                        tracing::error!(handle = %found.handle, error = %error, "cannot reap a sandbox");
                    }
                }
            }
        }
        for sandbox in live {
            let has_box = boxes.iter().any(|b| b.sandbox_id == Some(sandbox.id));
            if !has_box && sandbox.expires_at > now_millis() {
                self.burn(state, sandbox.id, BurnReason::BoxGone).await?;
            }
        }
        Ok(())
    }
}
