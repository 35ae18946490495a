//! PostgreSQL queries for sandboxes.

use kiln_protocol::{SandboxId, TaskId, UnixMillis};
use sqlx::PgPool;

use super::tasks::insert_task;
use crate::model::{NewTask, SandboxRecord, SandboxState};
use crate::store::rows::{self, to_json};
use crate::store::{NewRunner, StoreError};

/// Saves a sandboxed task, the sandbox's runner identity and the sandbox, atomically.
pub async fn create_sandbox(
    pool: &PgPool,
    task: &NewTask,
    sandbox: &SandboxRecord,
    runner: &NewRunner,
) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    let record = &runner.record;
    sqlx::query(
        "INSERT INTO runners (id, name, token_hash, capabilities, labels, max_concurrent, version,
                              created_at, sandbox_id)
         VALUES ($1, $2, $3, $4, $5, $6, NULL, $7, $8)",
    )
    .bind(record.id.to_string())
    .bind(&record.name)
    .bind(&runner.token_hash.0)
    .bind(to_json(&record.capabilities))
    .bind(to_json(&record.labels))
    .bind(i64::from(record.max_concurrent))
    .bind(record.created_at)
    .bind(sandbox.id.to_string())
    .execute(&mut *tx)
    .await?;
    insert_task(&mut *tx, task).await?;
    sqlx::query(
        "INSERT INTO sandboxes (id, task_id, runner_id, provider, image, handle, state, expires_at, created_at)
         VALUES ($1, $2, $3, $4, $5, NULL, 'forging', $6, $7)",
    )
    .bind(sandbox.id.to_string())
    .bind(task.id.to_string())
    .bind(record.id.to_string())
    .bind(&sandbox.provider)
    .bind(&sandbox.image)
    .bind(sandbox.expires_at)
    .bind(sandbox.created_at)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

pub async fn sandbox(pool: &PgPool, id: SandboxId) -> Result<Option<SandboxRecord>, StoreError> {
    let row = sqlx::query("SELECT * FROM sandboxes WHERE id = $1")
        .bind(id.to_string())
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(rows::sandbox).transpose()
}

pub async fn sandbox_of_task(
    pool: &PgPool,
    task: TaskId,
) -> Result<Option<SandboxRecord>, StoreError> {
    let row = sqlx::query("SELECT * FROM sandboxes WHERE task_id = $1")
        .bind(task.to_string())
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(rows::sandbox).transpose()
}

pub async fn live_sandboxes(pool: &PgPool) -> Result<Vec<SandboxRecord>, StoreError> {
    let found = sqlx::query(
        "SELECT * FROM sandboxes WHERE state IN ('forging', 'running') ORDER BY created_at",
    )
    .fetch_all(pool)
    .await?;
    found.iter().map(rows::sandbox).collect()
}

pub async fn sandbox_forged(
    pool: &PgPool,
    id: SandboxId,
    handle: &str,
) -> Result<bool, StoreError> {
    let updated = sqlx::query(
        "UPDATE sandboxes SET state = 'running', handle = $1 WHERE id = $2 AND state = 'forging'",
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
    pool: &PgPool,
    id: SandboxId,
    state: SandboxState,
    reason: &str,
    now: UnixMillis,
) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await?;
    let ended = sqlx::query(
        "UPDATE sandboxes SET state = $1, reason = $2, burned_at = $3
         WHERE id = $4 AND state IN ('forging', 'running')",
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
    sqlx::query("UPDATE runners SET revoked_at = COALESCE(revoked_at, $1) WHERE sandbox_id = $2")
        .bind(now)
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(true)
}
