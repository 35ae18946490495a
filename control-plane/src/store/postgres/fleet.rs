//! PostgreSQL queries for fleet controls: one runner, pause, pending drain, revoke.

use kiln_protocol::{RunnerId, UnixMillis};
use sqlx::PgPool;

use crate::model::RunnerRecord;
use crate::store::rows;
use crate::store::StoreError;
use crate::tokens::TokenHash;

pub async fn runner(pool: &PgPool, id: RunnerId) -> Result<Option<RunnerRecord>, StoreError> {
    let row = sqlx::query("SELECT * FROM runners WHERE id = $1")
        .bind(id.to_string())
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(rows::runner).transpose()
}

pub async fn set_paused(
    pool: &PgPool,
    id: RunnerId,
    paused_at: Option<UnixMillis>,
) -> Result<bool, StoreError> {
    let updated = sqlx::query("UPDATE runners SET paused_at = $1 WHERE id = $2")
        .bind(paused_at)
        .bind(id.to_string())
        .execute(pool)
        .await?;
    Ok(updated.rows_affected() == 1)
}

pub async fn set_drain_requested(
    pool: &PgPool,
    id: RunnerId,
    at: Option<UnixMillis>,
) -> Result<bool, StoreError> {
    let updated = sqlx::query("UPDATE runners SET drain_requested_at = $1 WHERE id = $2")
        .bind(at)
        .bind(id.to_string())
        .execute(pool)
        .await?;
    Ok(updated.rows_affected() == 1)
}

pub async fn revoke_runner(
    pool: &PgPool,
    id: RunnerId,
    now: UnixMillis,
) -> Result<bool, StoreError> {
    let updated =
        sqlx::query("UPDATE runners SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2")
            .bind(now)
            .bind(id.to_string())
            .execute(pool)
            .await?;
    Ok(updated.rows_affected() == 1)
}

pub async fn request_rotation(
    pool: &PgPool,
    id: RunnerId,
    now: UnixMillis,
) -> Result<bool, StoreError> {
    let updated = sqlx::query(
        "UPDATE runners SET rotation_requested_at = COALESCE(rotation_requested_at, $1) WHERE id = $2",
    )
    .bind(now)
    .bind(id.to_string())
    .execute(pool)
    .await?;
    Ok(updated.rows_affected() == 1)
}

pub async fn rotate_token(
    pool: &PgPool,
    id: RunnerId,
    new_hash: &TokenHash,
) -> Result<(), StoreError> {
    // The token the runner held before the first unconfirmed rotation stays valid.
    sqlx::query(
        "UPDATE runners SET previous_token_hash = COALESCE(previous_token_hash, token_hash), token_hash = $1
         WHERE id = $2",
    )
    .bind(&new_hash.0)
    .bind(id.to_string())
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn confirm_rotation(pool: &PgPool, id: RunnerId) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE runners SET previous_token_hash = NULL, rotation_requested_at = NULL WHERE id = $1",
    )
    .bind(id.to_string())
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn runners_under_control(
    pool: &PgPool,
    revoked_since: UnixMillis,
) -> Result<Vec<RunnerRecord>, StoreError> {
    let found = sqlx::query(
        "SELECT * FROM runners
         WHERE drain_requested_at IS NOT NULL OR paused_at IS NOT NULL OR revoked_at > $1
         ORDER BY id",
    )
    .bind(revoked_since)
    .fetch_all(pool)
    .await?;
    found.iter().map(rows::runner).collect()
}

pub async fn set_runner_tags(
    pool: &PgPool,
    id: RunnerId,
    capabilities: &[String],
    labels: &std::collections::BTreeMap<String, String>,
) -> Result<bool, StoreError> {
    let updated = sqlx::query("UPDATE runners SET capabilities = $1, labels = $2 WHERE id = $3")
        .bind(crate::store::rows::to_json(&capabilities))
        .bind(crate::store::rows::to_json(labels))
        .bind(id.to_string())
        .execute(pool)
        .await?;
    Ok(updated.rows_affected() == 1)
}
