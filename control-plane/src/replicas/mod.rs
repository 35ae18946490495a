//! Several control planes on one PostgreSQL database. Each replica serves the runners and
//! clients connected to it; what one replica does that another must act on travels as a
//! PostgreSQL NOTIFY sent inside the writing transaction (`store::postgres::notify`):
//!
//! - a queued task wakes every replica's dispatcher (LISTEN/NOTIFY: no polling delay; the
//!   task itself is claimed with `FOR UPDATE SKIP LOCKED`, so exactly one replica's runner
//!   gets it);
//! - stored events wake log followers on every replica, which read on from the store;
//! - an operator's control of a runner held by another replica (cancel, drain, pause,
//!   resume, revoke, rotate, session close) is carried out by the replica that holds it;
//!   one that may have been lost on the way is made up for (`resync.rs`).
//!
//! One replica at a time leads (a PostgreSQL advisory lock held on its own connection): it
//! sweeps for runners that no replica has heard from and reaps expired sandboxes.

mod control;
mod leader;
mod listen;
mod resync;

pub use control::{RunnerAction, RunnerControl};

use kiln_protocol::RunnerId;
use sqlx::postgres::{PgPool, PgPoolOptions};

use crate::engine::Engine;
use crate::store::postgres_notify::RUNNER;
use crate::store::StoreError;

/// Connections for relaying controls: operators' commands are rare; one connection serves.
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

    /// Asks whichever replica holds `runner`'s socket to carry out `action`. Like a local
    /// send, it does nothing if no replica does: what must survive that is in the store
    /// (a cancel, a drain, a pause, a rotation reach the runner when it connects).
    pub async fn relay(&self, runner: RunnerId, action: RunnerAction) -> Result<(), StoreError> {
        let payload = serde_json::to_string(&RunnerControl { runner, action }).unwrap_or_default();
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(RUNNER)
            .bind(payload)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// Starts listening to the other replicas and campaigning to lead.
pub fn start(state: &Engine, url: &str) {
    state.spawn(listen::run(state.clone(), url.to_owned()));
    state.spawn(leader::run(state.clone(), url.to_owned()));
    state.spawn(resync::run(state.clone()));
}
