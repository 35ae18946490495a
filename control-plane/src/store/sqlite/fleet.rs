//! SQLite queries for fleet controls: one runner, pause, pending drain, revoke.

use kiln_protocol::{RunnerId, UnixMillis};
use sqlx::SqlitePool;

use super::rows;
use crate::model::RunnerRecord;
use crate::store::StoreError;

pub async fn runner(pool: &SqlitePool, id: RunnerId) -> Result<Option<RunnerRecord>, StoreError> {
    let row = sqlx::query("SELECT * FROM runners WHERE id = ?")
        .bind(id.to_string())
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(rows::runner).transpose()
}

pub async fn set_paused(
    pool: &SqlitePool,
    id: RunnerId,
    paused_at: Option<UnixMillis>,
) -> Result<bool, StoreError> {
    let updated = sqlx::query("UPDATE runners SET paused_at = ? WHERE id = ?")
        .bind(paused_at)
        .bind(id.to_string())
        .execute(pool)
        .await?;
    Ok(updated.rows_affected() == 1)
}

pub async fn set_drain_requested(
    pool: &SqlitePool,
    id: RunnerId,
    at: Option<UnixMillis>,
) -> Result<bool, StoreError> {
    let updated = sqlx::query("UPDATE runners SET drain_requested_at = ? WHERE id = ?")
        .bind(at)
        .bind(id.to_string())
        .execute(pool)
        .await?;
    Ok(updated.rows_affected() == 1)
}

pub async fn revoke_runner(
    pool: &SqlitePool,
    id: RunnerId,
    now: UnixMillis,
) -> Result<bool, StoreError> {
    let updated =
        sqlx::query("UPDATE runners SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?")
            .bind(now)
            .bind(id.to_string())
            .execute(pool)
            .await?;
    Ok(updated.rows_affected() == 1)
}
