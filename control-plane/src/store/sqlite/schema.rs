//! The SQLite schema's version: append-only migrations applied on open (or by
//! `kiln migrate`), and a refusal to run against a database that a newer kiln migrated.

use sqlx::migrate::Migrator;
use sqlx::SqlitePool;

use crate::store::StoreError;

/// The migrations this build knows, in `migrations/sqlite/`.
static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// What a migration run did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Migrated {
    /// Versions applied by this run, oldest first.
    pub applied: Vec<i64>,
    /// The schema version now.
    pub version: i64,
}

/// The newest version this build knows.
pub fn known_version() -> i64 {
    MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
}

/// Versions already applied to the database, oldest first.
async fn applied(pool: &SqlitePool) -> Result<Vec<i64>, StoreError> {
    let exists: Option<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
    )
    .fetch_optional(pool)
    .await?;
    if exists.is_none() {
        return Ok(Vec::new());
    }
    let versions =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
            .fetch_all(pool)
            .await?;
    Ok(versions)
}

/// Applies pending migrations, refusing first if the database is newer than this build.
pub async fn migrate(pool: &SqlitePool) -> Result<Migrated, StoreError> {
    let before = applied(pool).await?;
    let known = known_version();
    if let Some(&found) = before.last().filter(|&&found| found > known) {
        return Err(StoreError::NewerSchema { found, known });
    }
    MIGRATOR.run(pool).await?;
    let after = applied(pool).await?;
    Ok(Migrated {
        applied: after
            .iter()
            .copied()
            .filter(|v| !before.contains(v))
            .collect(),
        version: after.last().copied().unwrap_or(0),
    })
}
