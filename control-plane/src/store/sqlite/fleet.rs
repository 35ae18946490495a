//! SQLite queries for fleet controls: one runner, pause, pending drain, revoke.

use kiln_protocol::{RunnerId, UnixMillis};
use sqlx::SqlitePool;

use crate::model::RunnerRecord;
use crate::store::rows;
use crate::store::StoreError;
use crate::tokens::TokenHash;

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

pub async fn request_rotation(
    pool: &SqlitePool,
    id: RunnerId,
    now: UnixMillis,
) -> Result<bool, StoreError> {
    let updated = sqlx::query(
        "UPDATE runners SET rotation_requested_at = COALESCE(rotation_requested_at, ?) WHERE id = ?",
    )
    .bind(now)
    .bind(id.to_string())
    .execute(pool)
    .await?;
    Ok(updated.rows_affected() == 1)
}

pub async fn rotate_token(
    pool: &SqlitePool,
    id: RunnerId,
    new_hash: &TokenHash,
) -> Result<(), StoreError> {
    // The token the runner held before the first unconfirmed rotation stays valid.
    sqlx::query(
        "UPDATE runners SET previous_token_hash = COALESCE(previous_token_hash, token_hash), token_hash = ?
         WHERE id = ?",
    )
    .bind(&new_hash.0)
    .bind(id.to_string())
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn confirm_rotation(pool: &SqlitePool, id: RunnerId) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE runners SET previous_token_hash = NULL, rotation_requested_at = NULL WHERE id = ?",
    )
    .bind(id.to_string())
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn runners_under_control(
    pool: &SqlitePool,
    revoked_since: UnixMillis,
) -> Result<Vec<RunnerRecord>, StoreError> {
    let found = sqlx::query(
        "SELECT * FROM runners
         WHERE drain_requested_at IS NOT NULL OR paused_at IS NOT NULL OR revoked_at > ?
         ORDER BY id",
    )
    .bind(revoked_since)
    .fetch_all(pool)
    .await?;
    found.iter().map(rows::runner).collect()
}

pub async fn set_runner_tags(
    pool: &SqlitePool,
    id: RunnerId,
    capabilities: &[String],
    labels: &std::collections::BTreeMap<String, String>,
) -> Result<bool, StoreError> {
    let updated = sqlx::query("UPDATE runners SET capabilities = ?, labels = ? WHERE id = ?")
        .bind(crate::store::rows::to_json(&capabilities))
        .bind(crate::store::rows::to_json(labels))
        .bind(id.to_string())
        .execute(pool)
        .await?;
    Ok(updated.rows_affected() == 1)
}
