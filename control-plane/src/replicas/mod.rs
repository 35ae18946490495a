//! Several control planes on one PostgreSQL database. Each replica serves the runners and
//! clients connected to it; what one replica does that another must act on travels as a
//! PostgreSQL NOTIFY sent inside the writing transaction (`store::postgres::notify`):
//!
//! - a queued task wakes every replica's dispatcher (LISTEN/NOTIFY: no polling delay; the
//!   task itself is claimed with `FOR UPDATE SKIP LOCKED`, so exactly one replica's runner
//!   gets it);
//! - stored events wake log followers on every replica, which read on from the store;
//! - a frame for a runner held by another replica (a cancel) is relayed to it.
//!
//! One replica at a time leads (a PostgreSQL advisory lock held on its own connection): it
//! sweeps for runners that no replica has heard from and reaps expired sandboxes.

mod leader;
mod listen;

use kiln_protocol::{RunnerId, ServerMessage};
use sqlx::postgres::{PgPool, PgPoolOptions};

use crate::server::state::AppState;
use crate::store::postgres_notify::{RunnerMessage, RUNNER};
use crate::store::StoreError;

/// Connections for relaying frames: relays are rare (cancels), one connection serves them.
const RELAY_CONNECTIONS: u32 = 1;

/// This replica's link to the others.
#[derive(Clone, Debug)]
pub struct Peers {
    pool: PgPool,
}

impl Peers {
    /// Connects to the shared database at `url`.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(RELAY_CONNECTIONS)
            .connect(url)
            .await?;
        Ok(Self { pool })
    }

    /// Sends `message` to `runner` through whichever replica holds its socket. Like a
    /// local send, it is lost if no replica does: what must survive that is in the store
    /// (a cancel is re-sent when the runner reconnects).
    pub async fn relay(&self, runner: RunnerId, message: ServerMessage) -> Result<(), StoreError> {
        let payload = serde_json::to_string(&RunnerMessage { runner, message }).unwrap_or_default();
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(RUNNER)
            .bind(payload)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// Starts listening to the other replicas and campaigning to lead.
pub fn start(state: &AppState, url: &str) {
    tokio::spawn(listen::run(state.clone(), url.to_owned()));
    tokio::spawn(leader::run(state.clone(), url.to_owned()));
}
