//! SQLite queries for sandboxes.

use kiln_protocol::{SandboxId, TaskId, UnixMillis};
use sqlx::SqlitePool;

use crate::model::{SandboxRecord, SandboxState};
use crate::store::rows;
use crate::store::StoreError;

pub async fn sandbox(
    pool: &SqlitePool,
    id: SandboxId,
) -> Result<Option<SandboxRecord>, StoreError> {
    let row = sqlx::query("SELECT * FROM sandboxes WHERE id = ?")
        .bind(id.to_string())
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(rows::sandbox).transpose()
}

pub async fn sandbox_of_task(
    pool: &SqlitePool,
    task: TaskId,
) -> Result<Option<SandboxRecord>, StoreError> {
    let row = sqlx::query("SELECT * FROM sandboxes WHERE task_id = ?")
        .bind(task.to_string())
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(rows::sandbox).transpose()
}

pub async fn live_sandboxes(pool: &SqlitePool) -> Result<Vec<SandboxRecord>, StoreError> {
    let found = sqlx::query(
        "SELECT * FROM sandboxes WHERE state IN ('forging', 'running') ORDER BY created_at",
    )
    .fetch_all(pool)
    .await?;
    found.iter().map(rows::sandbox).collect()
}

pub async fn sandbox_forged(
    pool: &SqlitePool,
    id: SandboxId,
    handle: &str,
) -> Result<bool, StoreError> {
    let updated = sqlx::query(
        "UPDATE sandboxes SET state = 'running', handle = ? WHERE id = ? AND state = 'forging'",
    )
    .bind(handle)
    .bind(id.to_string())
    .execute(pool)
    .await?;
    Ok(updated.rows_affected() == 1)
}

/// Ends a live sandbox as burned or failed, revoking its runner identity. False if it had
/// already ended.
pub async fn end_sandbox(
    pool: &SqlitePool,
    id: SandboxId,
    state: SandboxState,
    reason: &str,
    now: UnixMillis,
) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await?;
    let ended = sqlx::query(
        "UPDATE sandboxes SET state = ?, reason = ?, burned_at = ?
         WHERE id = ? AND state IN ('forging', 'running')",
    )
    .bind(state.as_str())
    .bind(reason)
    .bind(now)
    .bind(id.to_string())
    .execute(&mut *tx)
    .await?;
    if ended.rows_affected() == 0 {
        return Ok(false);
    }
    sqlx::query("UPDATE runners SET revoked_at = COALESCE(revoked_at, ?) WHERE sandbox_id = ?")
        .bind(now)
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(true)
}
