//! The PostgreSQL schema's version: append-only migrations in `migrations/postgres/`,
//! applied on connect (or by `kiln migrate`) under sqlx's advisory lock, so replicas that
//! start together migrate once; and a refusal to run against a newer schema.

use sqlx::migrate::Migrator;
use sqlx::PgPool;

use crate::store::{Migrated, StoreError};

/// The migrations this build knows.
static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// The newest version this build knows.
pub fn known_version() -> i64 {
    MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
}

/// Versions already applied to the database, oldest first.
async fn applied(pool: &PgPool) -> Result<Vec<i64>, StoreError> {
    let exists: Option<String> = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations')::TEXT")
        .fetch_one(pool)
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
pub async fn migrate(pool: &PgPool) -> Result<Migrated, StoreError> {
    let before = applied(pool).await?;
    Migrated::refuse_newer(&before, known_version())?;
    MIGRATOR.run(pool).await?;
    Ok(Migrated::between(&before, &applied(pool).await?))
}
