//! The PostgreSQL backend: a connection pool on a server that several control-plane
//! replicas may share. Every write is one transaction; rows that two replicas could both
//! change are claimed with row locks (`FOR UPDATE`, `SKIP LOCKED` where the other replica
//! should move on), so no write is lost or made twice.

mod attempts;
mod auth;
mod events;
mod fleet;
pub mod notify;
mod placing;
mod retention;
mod sandboxes;
mod schema;
mod store_impl;
mod tasks;
mod workspaces;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use super::{Migrated, StoreError};
use crate::metrics::Histogram;

/// Store connections per replica: enough for the dispatcher, event ingestion and API reads
/// to proceed together. With the listener's, the leader campaign's and the relay's, a
/// replica holds 11: eight replicas fit PostgreSQL's default 100 (97 for non-superusers).
const POOL_CONNECTIONS: u32 = 8;

/// How long a request waits for a free connection before failing, rather than queueing
/// forever behind a stuck server.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// The PostgreSQL store.
#[derive(Clone, Debug)]
pub struct PostgresStore {
    pool: PgPool,
    /// Time of each write transaction, for `/metrics`.
    latency: Arc<Histogram>,
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://...`) and applies pending migrations;
    /// refuses a database that a newer kiln migrated.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let pool = Self::connect(url).await?;
        schema::migrate(&pool).await?;
        Ok(Self {
            pool,
            latency: Arc::new(Histogram::default()),
        })
    }

    /// Applies pending migrations to the database at `url` and says what it did; `kiln
    /// migrate`.
    pub async fn migrate(url: &str) -> Result<Migrated, StoreError> {
        let pool = Self::connect(url).await?;
        let migrated = schema::migrate(&pool).await;
        pool.close().await;
        migrated
    }

    /// The newest schema version this build knows.
    pub fn known_version() -> i64 {
        schema::known_version()
    }

    async fn connect(url: &str) -> Result<PgPool, StoreError> {
        let options: PgConnectOptions = url.parse()?;
        Ok(PgPoolOptions::new()
            .max_connections(POOL_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options.application_name("kiln"))
            .await?)
    }

    /// Closes the pool, waiting for open transactions to end.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn timed<T>(
        &self,
        write: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let started = Instant::now();
        let result = write.await;
        self.latency.observe(started.elapsed());
        result
    }
}
