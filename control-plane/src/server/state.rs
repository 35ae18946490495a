//! What the web layer adds to the engine: limits on runner handshakes and the admin tokens
//! already checked. Everything else a handler needs is the engine's.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::engine::Engine;
pub use crate::engine::{
    ServerSettings, DEFAULT_ACCEPT_DEADLINE, DEFAULT_HEARTBEAT_INTERVAL, DEFAULT_LOST_AFTER,
    DEFAULT_MAX_LOG_BYTES, DEFAULT_MAX_UPLOAD_BYTES, DEFAULT_STOP_GRACE, HEARTBEAT_MISSES_ALLOWED,
};
use crate::store::Store;

/// What every handler and connection shares.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The control plane's domain.
    pub engine: Engine,
    /// Runner handshakes in progress, per address.
    pub handshakes: Arc<crate::server::per_address::PerAddress>,
    /// Admin token hashes already checked against the store (admin tokens are never
    /// revoked), so that an API call costs no store query for it.
    pub known_admins: Arc<crate::server::auth::KnownAdmins>,
}

impl AppState {
    /// The web layer around `engine`.
    pub fn around(engine: Engine) -> Self {
        Self {
            engine,
            handshakes: crate::server::per_address::PerAddress::new(
                crate::server::per_address::MAX_HANDSHAKES_PER_ADDRESS,
            ),
            known_admins: Arc::default(),
        }
    }

    /// State around `store` with a fresh engine.
    pub fn new(
        store: Arc<dyn Store>,
        settings: ServerSettings,
        shutdown: CancellationToken,
    ) -> Self {
        Self::around(Engine::new(store, settings, shutdown))
    }
}
