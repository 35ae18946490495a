//! The SQLite schema's version: append-only migrations applied on open (or by
//! `kiln migrate`), and a refusal to run against a database that a newer kiln migrated.

use sqlx::migrate::Migrator;
use sqlx::SqlitePool;

use crate::store::{Migrated, StoreError};

/// The migrations this build knows, in `migrations/sqlite/`.
static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

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
    Migrated::refuse_newer(&before, known_version())?;
    MIGRATOR.run(pool).await?;
    Ok(Migrated::between(&before, &applied(pool).await?))
}
