//! Sandboxes: a fresh box forged for one task (forge, run, burn). The provider is a trait,
//! so Docker (here), Hetzner, Kubernetes, E2B or gibil providers can follow; docs/sandboxes.md
//! states the contract.

mod docker;
pub mod manager;

use std::path::PathBuf;

use async_trait::async_trait;
use kiln_protocol::{SandboxId, UnixMillis};

pub use docker::DockerProvider;
pub use manager::{SandboxSettings, Sandboxes};

/// What to forge.
#[derive(Clone, Debug)]
pub struct ForgeSpec {
    /// The sandbox.
    pub sandbox_id: SandboxId,
    /// Image (or template) to forge it from.
    pub image: String,
    /// Environment the box's runner boots from: `KILN_RUNNER_MODE=sandbox`,
    /// `KILN_SERVER_URL`, `KILN_RUNNER_ID`, `KILN_RUNNER_TOKEN`, `KILN_SANDBOX_ID`,
    /// `KILN_SANDBOX_EXPIRES_AT`.
    pub env: Vec<(String, String)>,
    /// When the box must be gone; providers enforce it themselves where they can.
    pub expires_at: UnixMillis,
    /// Host paths the box needs to read at the same path (local repositories).
    pub read_only_mounts: Vec<PathBuf>,
}

/// A box the provider has, found when reaping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveBox {
    /// The provider's name for it.
    pub handle: String,
    /// The sandbox it belongs to, from its label.
    pub sandbox_id: Option<SandboxId>,
}

/// A provider failed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ProviderError(pub String);

/// What a sandbox provider must do. All methods may be retried; `burn` must be idempotent
/// (burning a box that is gone succeeds).
#[async_trait]
pub trait Provider: Send + Sync + 'static {
    /// Its name, as in `kiln submit --sandbox NAME`.
    fn name(&self) -> &'static str;
    /// Makes a box running `kiln-runner run --sandbox-mode` with `spec.env`; returns its handle.
    async fn forge(&self, spec: &ForgeSpec) -> Result<String, ProviderError>;
    /// Destroys the box.
    async fn burn(&self, handle: &str) -> Result<(), ProviderError>;
    /// Every box this control plane owns, to reap orphans after a restart.
    async fn live(&self) -> Result<Vec<LiveBox>, ProviderError>;
}
